"""The loading snippets users copy run as written: README.md's and the model card's that `train` writes.

Each python block that calls `from_pretrained(..., trust_remote_code=True)` is cut out of the markdown and executed
in a fresh interpreter, with the working directory outside the repository, PYTHONPATH cleared, the Hub offline and
`modeling_gato` made unimportable (the snippets promise that only torch and transformers are needed).

Where the snippets point, made explicit:
- README.md's block loads "gato", the directory the block before it saves: the test saves a tiny model and processor
  as `gato/` in the snippet's working directory.
- The card's block starts from one line `repo_id = "<hub_model_id or output_dir>"`; the card here comes from a real
  tiny `python -m modeling_gato train --hub-model-id someone/gato-tiny` run (no push), and the test rewrites that
  line, and only that line, to a copy of the trained directory elsewhere.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from gato_testing import HIDE_MODELING_GATO, tiny_config

from modeling_gato import GatoForCausalModeling, GatoProcessor

ROOT = Path(__file__).resolve().parents[1]
HIDE_PACKAGE = HIDE_MODELING_GATO + textwrap.dedent(
    """
    import runpy
    runpy.run_path(sys.argv[1], run_name="__main__")
    """
)


def loading_snippets(markdown: str) -> list[str]:
    """The ```python blocks whose code (not comments) calls from_pretrained with trust_remote_code=True."""
    blocks = re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)
    found = []
    for block in blocks:
        code = "\n".join(line.split("#", 1)[0] for line in block.splitlines())
        if re.search(r"from_pretrained\([^)]*trust_remote_code=True", code):
            found.append(block)
    return found


def run_snippet(code: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Execute `code` in a fresh interpreter in `cwd` where modeling_gato cannot be imported."""
    assert ROOT not in cwd.resolve().parents and cwd.resolve() != ROOT
    script = cwd / "snippet.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", HIDE_PACKAGE, str(script)], capture_output=True, text=True,
                            cwd=cwd, env=env, timeout=300)
    if check:
        assert result.returncode == 0, f"snippet failed:\n{code}\n{result.stderr[-3000:]}"
    return result


def expected_generation(directory: Path, new_tokens_only: bool) -> list[str]:
    """What the snippets print, computed here with this package's classes."""
    model = GatoForCausalModeling.from_pretrained(directory).eval()
    processor = GatoProcessor.from_pretrained(directory)
    inputs = processor(text="The agent picks up the")
    with torch.no_grad():
        tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    if new_tokens_only:
        return processor.batch_decode(tokens[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return processor.batch_decode(tokens)


def test_snippet_extraction_skips_comments_and_other_blocks():
    markdown = ("```python\n# AutoModel.from_pretrained('x', trust_remote_code=True)\nx = 1\n```\n"
                "```bash\nfrom_pretrained(x, trust_remote_code=True)\n```\n"
                "```python\nm = AutoModel.from_pretrained(\n```\n"
                "```python\nm = AutoModel.from_pretrained('x', trust_remote_code=True)  # load\n```\n")
    assert loading_snippets(markdown) == ["m = AutoModel.from_pretrained('x', trust_remote_code=True)  # load\n"]


def test_the_snippet_process_cannot_import_the_package(tmp_path):
    result = run_snippet("import modeling_gato\n", tmp_path, check=False)
    assert result.returncode != 0 and "modeling_gato is hidden from this process" in result.stderr
    assert run_snippet("import transformers, torch\nprint('ok')\n", tmp_path).stdout == "ok\n"


def test_readme_loading_snippet_runs_in_a_fresh_process(tmp_path):
    snippets = loading_snippets((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(snippets) == 1, snippets
    snippet = snippets[0]
    assert 'from_pretrained("gato", trust_remote_code=True)' in snippet
    torch.manual_seed(0)
    saved = tmp_path / "gato"  # the directory README's previous block saves
    GatoForCausalModeling(tiny_config()).save_pretrained(saved)
    GatoProcessor().save_pretrained(saved)
    printed = run_snippet(snippet, tmp_path).stdout
    assert printed.strip().splitlines()[-1] == repr(expected_generation(saved, new_tokens_only=False))


def test_model_card_snippet_from_a_real_training_run_runs_as_written(tmp_path):
    pytest.importorskip("minigrid")
    from modeling_gato.data.collect import collect

    data, output = tmp_path / "data", tmp_path / "trained"
    collect(str(data), tasks=["BabyAI-GoToObj-v0"], episodes=3, score_episodes=3, text_paragraphs=4,
            captions_per_task=0, progress=False)
    command = [sys.executable, "-m", "modeling_gato", "train", "--data", str(data), "--output-dir", str(output),
               "--variant", "tiny", "--context-length", "128", "--batch-size", "2", "--max-steps", "2",
               "--warmup-steps", "1", "--eval-episodes", "1", "--logging-steps", "1", "--save-steps", "100",
               "--hub-model-id", "someone/gato-tiny"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    card = (output / "README.md").read_text(encoding="utf-8")
    snippets = loading_snippets(card)
    assert len(snippets) == 1, card
    snippet = snippets[0]
    repo_lines = [line for line in snippet.splitlines() if line.startswith("repo_id = ")]
    assert repo_lines == ['repo_id = "someone/gato-tiny"  # a Hub repo id or a local directory']

    elsewhere = tmp_path / "elsewhere" / "gato-tiny"
    shutil.copytree(output, elsewhere)
    rewritten = snippet.replace(repo_lines[0], f"repo_id = {json.dumps(str(elsewhere))}")
    assert rewritten.count(str(elsewhere)) == 1 and "someone/gato-tiny" not in rewritten
    printed = run_snippet(rewritten, tmp_path / "elsewhere").stdout
    assert printed.strip().splitlines()[-1] == repr(expected_generation(output, new_tokens_only=True))
