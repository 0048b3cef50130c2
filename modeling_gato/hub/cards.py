"""Hub cards: the dataset card `collect` writes, the project's model card, and pushing a model directory.

- `write_dataset_card(data_dir, manifest, scores, command)`: `<data_dir>/README.md`, a huggingface_hub
  `DatasetCard` (YAML: license note, tags, task category reinforcement-learning, one `configs` entry per
  source so `load_dataset(<dir or repo>, "<task>")` works) with, per task, the expert and its origin, episodes,
  steps, tokens counted with `GatoProcessor`, the expert/random references, package versions, seeds and the
  command that regenerates the directory.
- Evaluation results reach a model card through `evaluation.report.update_model_card` (the Hub's `model-index`);
  this module keeps whatever card a directory has when it is pushed.
- `push_model_directory(model_dir, repo_id)`: `HfApi.create_repo` + `upload_folder` of the whole directory
  (not `checkpoint-*` nor `ranks/`), card included after `prepare_card_for_push` points its usage snippet and
  model-index name at `repo_id`.
- transformers' own uploads keep the card too: `GatoForCausalModeling.push_to_hub` calls `card_for_push` on the
  folder it is about to upload (the card of the directory the model was loaded from, else the card already on the
  Hub, else `base_model_card` instead of transformers' generic template), and `train.GatoTrainer.create_model_card`
  (which `Trainer.push_to_hub` calls) keeps the card in the output directory or writes the training card.
- `usage_snippet(repo_id)`, `card_front_matter()`: the parts every model card of the project starts with.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

VISION_LANGUAGE_SOURCES = ("text", "captions", "vqa")
SOURCE_DESCRIPTIONS = {
    "text": "paragraphs of Python's documentation",
    "captions": "BabyAI agent views captioned from the level's objects",
    "vqa": "questions about BabyAI agent views, answered from the level's objects",
}
PUSH_IGNORE_PATTERNS = ("checkpoint-*", "ranks/*")  # training checkpoints and per-rank training logs
USAGE_REPO_ID = re.compile(r'^(repo_id = )"(?:[^"\\]|\\.)*"', re.MULTILINE)  # train.usage_snippet's line


def format_number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _license(package: str) -> str:
    try:
        info = metadata.metadata(package)
    except metadata.PackageNotFoundError:
        return "not installed"
    return info.get("License-Expression") or info.get("License") or "see the package"


# ---------------------------------------------------------------------------- tokens
def count_tokens(rows: Iterable[Mapping[str, Any]], processor=None) -> int:
    """Tokens of `rows` (episodes, text, caption or VQA rows) as `GatoProcessor.tokenize_sample` lays them out:
    every image patch counts as one token, as do separators; rewards only if the processor includes them."""
    if processor is None:
        from ..processing_gato import GatoProcessor

        processor = GatoProcessor()
    return int(sum(len(processor.tokenize_sample(row, index)["input_ids"]) for index, row in enumerate(rows)))


def count_directory_tokens(data_dir: str, processor=None) -> dict[str, dict[str, int]]:
    """{source: {"rows", "tokens"}} for every dataset of a `collect` directory (episodes/<task>, text, ...)."""
    from datasets import load_from_disk

    if processor is None:
        from ..processing_gato import GatoProcessor

        processor = GatoProcessor()
    paths = {}
    episodes = os.path.join(data_dir, "episodes")
    if os.path.isdir(episodes):
        paths.update({task: os.path.join(episodes, task) for task in sorted(os.listdir(episodes))})
    paths.update({kind: os.path.join(data_dir, kind) for kind in VISION_LANGUAGE_SOURCES
                  if os.path.isdir(os.path.join(data_dir, kind))})
    counts = {}
    for source, path in paths.items():
        dataset = load_from_disk(path)
        counts[source] = {"rows": len(dataset), "tokens": count_tokens(dataset, processor)}
    return counts


# ---------------------------------------------------------------------------- dataset card
def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def dataset_card_text(manifest: Mapping[str, Any], scores: Mapping[str, Any], command: str | None,
                      tokens: Mapping[str, Mapping[str, int]]) -> str:
    """The markdown body of the dataset card (without YAML)."""
    tasks = manifest.get("tasks", {})
    lines = [
        "# Gato expert episodes, text, captions and VQA (modeling_gato)",
        "",
        "Expert episodes from real environments, each played by the expert that ships with (or is trained here for) "
        "the environment, with the expert and seeded uniform-random reference scores that the expert-normalized "
        "score `(R - R_random) / (R_expert - R_random)` needs, plus text, captions and VQA rows: the data of "
        "`python -m modeling_gato train` (modeling_gato, after Reed et al., *A Generalist Agent*, 2022).",
        "",
        "Load one task with `datasets.load_from_disk(\"<dir>/episodes/<task>\")`, or with "
        "`datasets.load_dataset(\"<dir or repo>\", \"<task>\", split=\"train\")` (one config per task and source). "
        "Columns follow the SPEC: `image_observations`, `text_observations`, `discrete_observations`, "
        "`continuous_observations`, `discrete_actions`, `continuous_actions`, `rewards` (one entry per step), "
        "and `task`. Continuous actions are stored mapped from the action space's bounds to [-1, 1].",
        "",
        "## Contents",
        "",
        "| task | domain | environment | expert (origin) | episodes | steps | tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, info in tasks.items():
        score = scores.get(task, {})
        environment = score.get("environment") or f"{info.get('env_id', task)}"
        origin = score.get("expert_origin") or info.get("expert", "n/a")
        count = tokens.get(task, {}).get("tokens")
        lines.append(f"| {task} | {info.get('domain', 'n/a')} | {environment} | {origin} | {info.get('episodes')} | "
                     f"{info.get('steps')} | {'n/a' if count is None else f'{count:,}'} |")
    for kind in VISION_LANGUAGE_SOURCES:
        if kind in manifest and manifest[kind].get("rows"):
            count = tokens.get(kind, {}).get("tokens")
            source = manifest[kind].get("source", SOURCE_DESCRIPTIONS[kind])
            lines.append(f"| {kind} | vision/language | {source} | | {manifest[kind]['rows']} rows | | "
                         f"{'n/a' if count is None else f'{count:,}'} |")
    perturbations = (  # manifest key, what each task's value is, what the episodes then execute
        ("action_noise", "noise", "the expert's action plus Gaussian noise of that many half action ranges and record "
         "the expert's own action (`collect --action-noise`, noise injection as in DART, Laskey et al. 2017)"),
        ("action_epsilon", "probability", "a random action instead of the expert's at each step with that "
         "probability and record the expert's own action (`collect --action-epsilon`)"),
    )
    for key, unit, executed in perturbations:
        perturbed = {task: info[key] for task, info in tasks.items() if info.get(key)}
        if perturbed:
            lines += ["", "Episodes of " + ", ".join(f"{task} ({unit} {value:g})" for task, value in perturbed.items())
                      + f" execute {executed}; their reference scores are the noise-free expert's, on the same seeds."]
    cut = {task: info["steps_after_success"] for task, info in tasks.items()
           if info.get("steps_after_success") is not None}
    if cut:
        lines += ["", "Episodes of " + ", ".join(f"{task} ({steps} steps)" for task, steps in cut.items())
                  + " end that many steps after their first successful step (`collect --steps-after-success`); "
                  "their reference scores are the expert's whole episodes, on the same seeds."]
    total = sum(v.get("tokens", 0) for v in tokens.values())
    lines += [
        "",
        f"Tokens ({total:,} in all) are counted with `GatoProcessor()` (the shipped tokenizer, default settings): "
        "`tokenize_sample(row)` per row, every image patch one token, one separator per step, rewards not "
        "included; text rows end with EOS.",
        "",
        "## Reference scores",
        "",
        "| task | expert return | expert success | random return | random success | episodes (expert / random) | "
        "seeds (expert / random) |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = {}
    for task, score in scores.items():
        expert, random = score["expert"], score["random"]

        def seeds(stats):
            last = stats.get("last_seed", stats["seed"] + stats["episodes"] - 1)
            return f"{stats['seed']}-{last}"

        lines.append(
            f"| {task} | {format_number(expert['mean_return'])} ± {format_number(expert.get('std_return'))} | "
            f"{format_percent(expert.get('success_rate'))} | {format_number(random['mean_return'])} ± "
            f"{format_number(random.get('std_return'))} | {format_percent(random.get('success_rate'))} | "
            f"{expert['episodes']} / {random['episodes']} | {seeds(expert)} / {seeds(random)} |"
        )
        if score.get("note"):
            notes[score["domain"]] = score["note"]
    measured = sorted({s.get("measured") for s in scores.values() if s.get("measured")})
    lines += [
        "",
        "Expert returns are the mean (± standard deviation) over the episodes listed; the random policy samples the "
        "action space uniformly (seeded). A table where the expert does not beat random is refused when it is "
        "written. Success is `info[\"success\"]` where the environment reports it (BabyAI: a positive return), "
        "n/a otherwise."
        + (f" Measured {measured[0]}" + (f" to {measured[-1]}." if len(measured) > 1 else ".") if measured else ""),
        "",
    ]
    lines += [f"- **{domain}**: {note}" for domain, note in sorted(notes.items())]
    lines += ["", "## Reproduce", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines.append(
        f"Seed {manifest.get('seed', 'n/a')}: expert episode `i` of a task is played with `reset(seed=seed + i)`; "
        "the random references with seeds from `seed + 1000000`. `python -m modeling_gato scores --data <dir>` "
        "re-measures the references (use more episodes for tighter ones)."
    )
    versions = manifest.get("versions", {})
    if versions:
        lines += ["", "| package | version |", "|---|---|"]
        lines += [f"| {name} | {version} |" for name, version in versions.items()]
    if manifest.get("created"):
        lines += ["", f"Created {manifest['created']}."]
    packages = [p for p in ("gymnasium", "minigrid", "metaworld", "mujoco", "stable-baselines3")
                if versions.get(p, "not installed") != "not installed"]
    lines += [
        "",
        "## License",
        "",
        "The episodes are generated here by running these packages' environments and experts: "
        + ", ".join(f"{p} ({_license(p)})" for p in packages)
        + ". The text rows are paragraphs of Python's documentation (`pydoc_data.topics`, PSF License). "
        "Check these licenses before redistributing.",
        "",
    ]
    return "\n".join(lines)


def write_dataset_card(data_dir: str, manifest: Mapping[str, Any], scores: Mapping[str, Any],
                       command: str | None) -> str:
    """Write `<data_dir>/README.md` as a Hub dataset card; returns its path.

    Token counts come from `manifest` (`tasks[task]["tokens"]`, `text["tokens"]`, ...) where `collect` stored them,
    and are counted from the data otherwise.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    tokens: dict[str, dict[str, int]] = {}
    for task, info in manifest.get("tasks", {}).items():
        if info.get("tokens") is not None:
            tokens[task] = {"tokens": int(info["tokens"])}
    for kind in VISION_LANGUAGE_SOURCES:
        if manifest.get(kind, {}).get("tokens") is not None:
            tokens[kind] = {"tokens": int(manifest[kind]["tokens"])}
    expected = set(manifest.get("tasks", {})) | {k for k in VISION_LANGUAGE_SOURCES if manifest.get(k, {}).get("rows")}
    if not expected <= set(tokens):
        tokens = {**count_directory_tokens(data_dir), **tokens}
    configs = [{"config_name": task, "data_files": f"episodes/{task}/data-*.arrow"} for task in manifest.get("tasks", {})]
    configs += [{"config_name": kind, "data_files": f"{kind}/data-*.arrow"} for kind in VISION_LANGUAGE_SOURCES
                if os.path.isdir(os.path.join(data_dir, kind))]
    domains = sorted({info.get("domain") for info in manifest.get("tasks", {}).values() if info.get("domain")})
    rows = sum(info.get("episodes", 0) for info in manifest.get("tasks", {}).values())
    rows += sum(manifest.get(kind, {}).get("rows", 0) for kind in VISION_LANGUAGE_SOURCES)
    data = DatasetCardData(
        license="other",
        license_name="environment-licenses",
        task_categories=["reinforcement-learning"],
        tags=["gato", "imitation-learning", "generalist-agent", "offline-rl", *domains],
        size_categories=[_size_category(rows)],
        pretty_name="Gato expert episodes (modeling_gato)",
        configs=configs,
    )
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{dataset_card_text(manifest, scores, command, tokens)}")
    path = os.path.join(data_dir, "README.md")
    card.save(path)
    return path


# ---------------------------------------------------------------------------- push
def require_model_directory(model_dir: str) -> None:
    """Refuse a directory that is not a saved model (no config.json)."""
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise FileNotFoundError(
            f"{model_dir} is not a saved model directory: config.json is missing (expected the output directory of "
            "`python -m modeling_gato train` or of `save_pretrained`)."
        )


def prepare_card_for_push(model_dir: str, repo_id: str) -> str | None:
    """Point `<model_dir>/README.md` at `repo_id` before it is uploaded; returns the card's path, None if there is none.

    The "How to use" snippet's `repo_id = "..."` line (`train.usage_snippet`, written with the local output
    directory) gets `repo_id`, and so does the model-index name (`card.data.model_name`) when the card has
    evaluation results; everything else in the card is kept.
    """
    from huggingface_hub import ModelCard

    path = os.path.join(model_dir, "README.md")
    if not os.path.isfile(path):
        return None
    card = ModelCard(_read(path))  # a local file: read it as text (`ModelCard.load` also answers for Hub ids)
    card.text = USAGE_REPO_ID.sub(lambda match: match.group(1) + json.dumps(repo_id), card.text)
    if card.data.eval_results:
        card.data.model_name = repo_id
    card.save(path)
    return path


def push_model_directory(model_dir: str, repo_id: str, token: str | None = None, private: bool | None = None,
                         commit_message: str = "Upload Gato model (modeling_gato)",
                         ignore_patterns: tuple[str, ...] = PUSH_IGNORE_PATTERNS) -> str:
    """Create `repo_id` (if needed) and upload the whole saved model directory, card included (first pointed at
    `repo_id` by `prepare_card_for_push`); returns the commit URL. Training checkpoints (`checkpoint-*`) and
    per-rank training logs (`ranks/`) are left out; evaluation results are uploaded."""
    require_model_directory(model_dir)
    from huggingface_hub import HfApi

    prepare_card_for_push(model_dir, repo_id)

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(repo_id=repo_id, folder_path=model_dir, commit_message=commit_message,
                               ignore_patterns=list(ignore_patterns), repo_type="model")
    return commit.commit_url


# ---------------------------------------------------------------------------- the project's model card
def card_front_matter() -> list[str]:
    """The YAML metadata and title every model card of the project starts with."""
    return [
        "---",
        "library_name: transformers",
        "tags: [gato, generalist-agent, reinforcement-learning, imitation-learning, multimodal]",
        "pipeline_tag: text-generation",
        "---",
        "",
        "# Gato (modeling_gato)",
        "",
    ]


def usage_snippet(repo_id: str) -> list[str]:
    """The card's "How to use" section: a snippet that runs as written (the test suite executes it) where only
    torch and transformers are installed; `repo_id` is the Hub id, or the local directory the card was written in."""
    return [
        "## How to use",
        "",
        "The model's code ships in this repository (`trust_remote_code=True`); only `torch` and `transformers` are "
        "needed. The pipelines ship too: `pipeline(\"gato-agent\", model=repo_id, trust_remote_code=True)` acts in a "
        "gymnasium environment (observation in, action out) and `pipeline(\"gato-image-to-text\", ...)` captions "
        "images; the `modeling_gato` package (with its `envs` extra) has the environments and the evaluation.",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoProcessor",
        "",
        f"repo_id = {json.dumps(repo_id)}  # a Hub repo id or a local directory",
        "model = AutoModelForCausalLM.from_pretrained(repo_id, trust_remote_code=True).eval()",
        "processor = AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)",
        "",
        'inputs = processor(text="The agent picks up the")',
        "tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)",
        "print(processor.batch_decode(tokens[:, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))",
        "```",
        "",
    ]


def base_model_card(repo_id: str) -> str:
    """The project's card for a model that has none yet (e.g. `model.push_to_hub` of a model built in memory)."""
    lines = [
        *card_front_matter(),
        "A generalist agent after Reed et al., *A Generalist Agent* (2022), implemented with transformers by "
        "modeling_gato. Load it with `AutoModelForCausalLM.from_pretrained(repo_id, trust_remote_code=True)` and "
        "`AutoProcessor.from_pretrained(repo_id, trust_remote_code=True)`.",
        "",
        *usage_snippet(repo_id),
    ]
    return "\n".join(lines)


# The description transformers puts in the card it creates when the Hub repository has none
# (`transformers.utils.hub.create_and_tag_model_card`, `Trainer.create_model_card`).
GENERIC_CARD_MARKERS = ("This model card has been automatically generated", "This model is a fine-tuned version of",
                        "This model was trained from scratch on")


def is_generic_card(text: str) -> bool:
    """Whether a card is one of transformers' generated ones (and so carries none of the project's metadata)."""
    return any(marker in text for marker in GENERIC_CARD_MARKERS)


def card_for_push(folder: str, repo_id: str, source: str | None = None) -> str:
    """Make `<folder>/README.md` (a folder about to be uploaded to `repo_id`) the project's card; returns its path.

    The card is, in this order: the README.md of `source` (the directory the model was loaded from: the card
    `train` wrote, with its `model-index` if `push --results` or `update_model_card` added one); the card already in
    `folder` unless it is transformers' generic one (transformers puts the Hub repository's current card there);
    `base_model_card(repo_id)`. The usage snippet and the model-index name are then pointed at `repo_id`
    (`prepare_card_for_push`).
    """
    path = os.path.join(folder, "README.md")
    source_card = os.path.join(source, "README.md") if source and os.path.isdir(source) else None
    if source_card and os.path.isfile(source_card) and not is_generic_card(_read(source_card)):
        if os.path.abspath(source_card) != os.path.abspath(path):
            shutil.copyfile(source_card, path)
    elif not os.path.isfile(path) or is_generic_card(_read(path)):
        with open(path, "w", encoding="utf-8") as f:
            f.write(base_model_card(repo_id))
    prepare_card_for_push(folder, repo_id)
    return path


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


