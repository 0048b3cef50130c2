"""A saved directory loads with trust_remote_code=True in a fresh process where modeling_gato cannot be imported."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from gato_testing import HIDE_MODELING_GATO, make_episode, tiny_config

from modeling_gato import GatoForCausalModeling, GatoProcessor

CHILD = HIDE_MODELING_GATO + textwrap.dedent(
    """
    import json

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

    directory = sys.argv[1]
    episode = torch.load(directory + "/episode.pt", weights_only=False)
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(directory, trust_remote_code=True)
    batch = processor(episodes=episode)
    result = {"config": type(config).__name__, "model_type": config.model_type, "processor": type(processor).__name__,
              "image_processor": type(processor.image_processor).__name__}
    for auto in (AutoModel, AutoModelForCausalLM):
        model = auto.from_pretrained(directory, trust_remote_code=True).eval()
        with torch.no_grad():
            out = model(**batch)
        result[auto.__name__] = {"class": type(model).__name__, "module": type(model).__module__}
        torch.save({"logits": out.logits, "batch": dict(batch)}, f"{directory}/{auto.__name__}.pt")
    text = processor(text="hello there")
    result["generated"] = model.generate(**text, max_new_tokens=3, do_sample=False)[0].tolist()
    print(json.dumps(result))
    """
)


@pytest.mark.parametrize("continuous_embedding", ["table", "table+fourier"])
def test_auto_classes_load_a_saved_directory_in_a_fresh_process(tmp_path, continuous_embedding):
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(continuous_embedding=continuous_embedding)).eval()
    processor = GatoProcessor()
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    processor.save_pretrained(saved)
    for name in ("modeling_gato.py", "configuration_gato.py", "processing_gato.py", "image_processing_gato.py"):
        assert (saved / name).exists(), name
    saved_config = json.loads((saved / "config.json").read_text())
    assert saved_config["continuous_embedding"] == continuous_embedding
    auto_map = saved_config["auto_map"]
    assert set(auto_map) >= {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}

    copied = tmp_path / "elsewhere" / "gato-copy"
    shutil.copytree(saved, copied)
    episode = make_episode()
    torch.save(episode, copied / "episode.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(copied)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["config"] == "GatoConfig" and report["model_type"] == "gato"
    assert report["processor"] == "GatoProcessor" and report["image_processor"] == "GatoImageProcessor"

    batch = processor(episodes=episode)
    with torch.no_grad():
        expected = model(**batch).logits
        text = processor(text="hello there")
        expected_tokens = model.generate(**text, max_new_tokens=3, do_sample=False)[0].tolist()
    for auto in ("AutoModel", "AutoModelForCausalLM"):
        assert report[auto]["class"] == "GatoForCausalModeling"
        assert report[auto]["module"].startswith("transformers_modules."), report[auto]
        child = torch.load(copied / f"{auto}.pt", weights_only=False)
        for key, value in batch.items():
            assert torch.equal(child["batch"][key], value), key  # the remote processor tokenizes identically
        torch.testing.assert_close(child["logits"], expected, rtol=0, atol=0)
    assert report["generated"] == expected_tokens
