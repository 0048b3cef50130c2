"""Hub cards: the dataset card `collect` writes, model-index metrics in the model card, and the push guard."""

import json
import os
import shlex
from pathlib import Path

import pytest
from conftest import COLLECT_EPISODES
from huggingface_hub import DatasetCard, ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from modeling_gato import GatoProcessor
from modeling_gato.evaluation.metrics import score_episodes, summarize
from modeling_gato.evaluation.report import update_model_card
from modeling_gato.hub.cards import PUSH_IGNORE_PATTERNS, prepare_card_for_push, push_model_directory

TRAIN_CARD = """---
library_name: transformers
tags: [gato, generalist-agent]
pipeline_tag: text-generation
---

# Gato (modeling_gato)

## Training data

| task | domain | episodes |
|---|---|---|
| CartPole-v1 | classic | 40 |
"""


def make_results(scale: float = 1.0) -> dict:
    """evaluate's result format, with per-episode scores and summarize's summary."""
    references = {"BabyAI-GoToLocal-v0": ("babyai", 0.9, 0.2, [0.9, 0.55, 0.0, 0.2]),
                  "CartPole-v1": ("classic", 500.0, 20.0, [500.0, 260.0, 20.0])}
    tasks = {}
    for task, (domain, expert, random, returns) in references.items():
        returns = [r * scale for r in returns]
        episodes = score_episodes(returns, expert, random, task)
        successes = [r > 0 for r in returns] if domain == "babyai" else None
        tasks[task] = {
            "domain": domain, "mean_return": sum(returns) / len(returns), "std_return": 1.5,
            "success_rate": None if successes is None else sum(successes) / len(successes),
            "normalized_score": sum(episodes) / len(episodes), "episode_scores": episodes,
            "expert_return": expert, "random_return": random,
        }
    return {"tasks": tasks, "summary": summarize(tasks, resamples=200), "episodes": 4, "seed": 1000, "env_seed": 1,
            "temperature": 0.0}


def card_values(path) -> dict:
    card = ModelCard.load(path)
    return {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}


def test_model_card_gets_model_index_and_keeps_its_body(tmp_path):
    (tmp_path / "README.md").write_text(TRAIN_CARD)
    results = make_results()
    path = update_model_card(str(tmp_path), results, model_name="gato-test", dataset_name="someone/gato-data")
    text = open(path).read()
    assert "## Training data" in text and "| CartPole-v1 | classic | 40 |" in text  # train's body is kept
    assert text.count("## Evaluation") == 1
    values = card_values(path)
    local = results["tasks"]["BabyAI-GoToLocal-v0"]
    assert values[("BabyAI-GoToLocal-v0", "mean_reward")] == round(local["mean_return"], 4) == 0.4125
    assert values[("BabyAI-GoToLocal-v0", "success_rate")] == 0.75
    assert values[("BabyAI-GoToLocal-v0", "expert_normalized_score")] == pytest.approx(round((0.4125 - 0.2) / 0.7, 4))
    assert values[("CartPole-v1", "expert_normalized_score")] == pytest.approx(round((260 - 20) / 480, 4))
    assert ("CartPole-v1", "success_rate") not in values  # None values are left out, never printed as 0
    assert values[("modeling_gato-all", "iqm_expert_normalized_score")] == round(results["summary"]["overall"]["iqm"], 4)
    assert values[("modeling_gato-babyai", "mean_expert_normalized_score")] == pytest.approx(
        round(results["summary"]["domains"]["babyai"]["mean"], 4))
    # the raw YAML parses back through the Hub's own model-index reader to the same numbers
    metadata = metadata_load(path)
    name, parsed = model_index_to_eval_results(metadata["model-index"])
    assert name == "gato-test" and metadata["datasets"] == ["someone/gato-data"]
    assert {(r.dataset_type, r.metric_type): r.metric_value for r in parsed} == values
    assert all(r.task_type == "reinforcement-learning" for r in parsed)
    assert metadata["library_name"] == "transformers" and "reinforcement-learning" in metadata["tags"]


def test_rerun_replaces_rather_than_duplicates(tmp_path):
    (tmp_path / "README.md").write_text(TRAIN_CARD)
    first = update_model_card(str(tmp_path), make_results())
    count = len(ModelCard.load(first).data.eval_results)
    second = update_model_card(str(tmp_path), make_results(scale=0.5))
    text = open(second).read()
    assert text.count("## Evaluation") == 1 and text.count("modeling_gato:evaluation:start") == 1
    card = ModelCard.load(second)
    assert len(card.data.eval_results) == count
    assert card_values(second)[("CartPole-v1", "mean_reward")] == round((250 + 130 + 10) / 3, 4)
    assert "| CartPole-v1 | classic | 130.000 ± 1.500 |" in text and "| CartPole-v1 | classic | 260.000" not in text


def test_missing_card_is_created_and_old_results_format_is_accepted(tmp_path):
    results = make_results()
    results["summary"] = {"tasks": 2, "mean_normalized_score": 0.4}  # evaluate's older summary: no domain table
    path = update_model_card(str(tmp_path), results)
    card = ModelCard.load(path)
    assert card.data.model_name == tmp_path.name
    assert {r.dataset_type for r in card.data.eval_results} == {"BabyAI-GoToLocal-v0", "CartPole-v1"}
    with pytest.raises(ValueError, match="'tasks' mapping"):
        update_model_card(str(tmp_path), {"summary": {}})


def test_push_refuses_a_directory_without_config(tmp_path, capsys):
    (tmp_path / "README.md").write_text(TRAIN_CARD)
    with pytest.raises(FileNotFoundError, match=r"is not a saved model directory: config.json is missing"):
        push_model_directory(str(tmp_path), "someone/gato")
    from modeling_gato.cli.commands import main

    with pytest.raises(SystemExit) as exited:  # the command line reports the error in one line, status 2
        main(["push", "--model", str(tmp_path), "--repo-id", "someone/gato", "--results", "unused.json"])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and "push: error: " in error and "has no config.json" in error
    assert len(error.strip().splitlines()) == 1
    assert (tmp_path / "README.md").read_text() == TRAIN_CARD  # nothing was written before the refusal


def test_card_is_pointed_at_the_pushed_repo(tmp_path):
    from huggingface_hub.utils import filter_repo_objects

    from modeling_gato.training.train import usage_snippet

    assert prepare_card_for_push(str(tmp_path), "someone/gato-small") is None  # no card: nothing to rewrite
    local = str(tmp_path / "outputs" / "run")
    (tmp_path / "README.md").write_text(TRAIN_CARD + "\n" + "\n".join(usage_snippet(local)))
    path = update_model_card(str(tmp_path), make_results())
    before = ModelCard.load(path)
    assert before.data.model_name == tmp_path.name and f'repo_id = "{local}"  # a Hub repo id' in before.text
    assert prepare_card_for_push(str(tmp_path), "someone/gato-small") == path
    after = ModelCard.load(path)
    assert 'repo_id = "someone/gato-small"  # a Hub repo id or a local directory' in after.text
    assert after.text == before.text.replace(f'"{local}"', '"someone/gato-small"')  # the only change to the body
    name, parsed = model_index_to_eval_results(metadata_load(path)["model-index"])
    assert name == "someone/gato-small"
    assert {(r.dataset_type, r.metric_type): r.metric_value for r in parsed} == card_values(path) != {}
    assert len(parsed) == len(before.data.eval_results)
    # a second push to another repo rewrites it again; a card without evaluation gets no model-index name
    prepare_card_for_push(str(tmp_path), "other/gato")
    assert 'repo_id = "other/gato"' in ModelCard.load(path).text
    (tmp_path / "README.md").write_text(TRAIN_CARD + "\n" + "\n".join(usage_snippet(local)))
    prepare_card_for_push(str(tmp_path), "other/gato")
    metadata = metadata_load(path)
    assert "model-index" not in metadata and "model_name" not in metadata
    assert 'repo_id = "other/gato"' in ModelCard.load(path).text
    # what the upload leaves out: checkpoints and per-rank logs, not the evaluation results
    files = ["config.json", "README.md", "checkpoint-100/model.safetensors", "ranks/rank0.json",
             "eval_results.json", "evaluation/videos/CartPole-v1.gif"]
    kept = list(filter_repo_objects(files, ignore_patterns=list(PUSH_IGNORE_PATTERNS)))
    assert kept == ["config.json", "README.md", "eval_results.json", "evaluation/videos/CartPole-v1.gif"]


def test_dataset_card_written_by_collect(collected, tmp_path):
    from datasets import load_dataset, load_from_disk

    output, _ = collected
    manifest = json.loads((output / "manifest.json").read_text())
    scores = json.loads((output / "scores.json").read_text())
    card = DatasetCard.load(output / "README.md")
    assert card.data.task_categories == ["reinforcement-learning"] and card.data.license == "other"
    assert {"gato", "babyai", "metaworld"} <= set(card.data.tags)
    # the exact command that regenerates the directory, rebuilt from the fixture's arguments
    command = shlex.join(["python", "-m", "modeling_gato", "collect", "--output-dir", str(output), "--episodes",
                          str(COLLECT_EPISODES), "--score-episodes", "3", "--seed", "0", "--text-paragraphs", "40",
                          "--captions-per-task", "8"])
    assert manifest["command"] == command and f"```bash\n{command}\n```" in card.text
    # tokens of one task, counted independently with the processor
    processor = GatoProcessor()
    task = "BabyAI-GoToLocal-v0"
    rows = load_from_disk(str(output / "episodes" / task))
    tokens = sum(len(processor.tokenize_episode(row)["input_ids"]) for row in rows)
    steps = manifest["tasks"][task]["steps"]
    assert manifest["tasks"][task]["tokens"] == tokens > 16 * steps  # 16 patches a step, plus mission and action
    info = manifest["tasks"][task]
    origin = scores[task]["expert_origin"]
    assert f"| {task} | babyai | {scores[task]['environment']} | {origin} | {info['episodes']} | {steps} | {tokens:,} |" \
        in card.text
    for name, entry in scores.items():  # every task's reference is in the table
        assert f"| {name} | {entry['expert']['mean_return']:.3f} ±" in card.text
    assert "1 - 0.9 * steps / max_steps" in card.text and "| minigrid | 3.2.0 |" in card.text
    # the YAML configs let `load_dataset` read the directory like a Hub repository
    loaded = load_dataset(str(output), "CartPole-v1", split="train", cache_dir=str(tmp_path / "cache"))
    saved = load_from_disk(str(output / "episodes" / "CartPole-v1"))
    assert len(loaded) == COLLECT_EPISODES and loaded[0]["discrete_actions"] == saved[0]["discrete_actions"]


# ---------------------------------------------------------------------------- transformers' own uploads keep the card
@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The Hub calls of `model.push_to_hub` and `Trainer.push_to_hub`, intercepted at the upload: `uploaded()` gives
    the files of the last upload (path in repo -> bytes); `hub_card` is the card the Hub repository has (None: none)."""
    import huggingface_hub
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError

    state = {"files": None, "hub_card": None}

    def create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, **kwargs):  # model.push_to_hub's upload
        state["files"] = {op.path_in_repo: open(op.path_or_fileobj, "rb").read() for op in operations
                          if hasattr(op, "path_or_fileobj")}

    def upload_folder(self, repo_id, folder_path, ignore_patterns=None, **kwargs):  # Trainer.push_to_hub's upload
        from huggingface_hub.utils import filter_repo_objects

        paths = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
        kept = filter_repo_objects(paths, ignore_patterns=ignore_patterns)
        state["files"] = {p: (Path(folder_path) / p).read_bytes() for p in kept}

    def load_card(cls, repo_id_or_path, *args, **kwargs):
        if os.path.exists(str(repo_id_or_path)):
            return original_load.__func__(cls, repo_id_or_path, *args, **kwargs)
        if state["hub_card"] is None:
            raise EntryNotFoundError("no card yet")
        return ModelCard(state["hub_card"])

    original_load = ModelCard.load
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(ModelCard, "load", classmethod(load_card))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    state["uploaded"] = lambda: state["files"]
    return state


def _tiny_model():
    from gato_testing import tiny_config

    from modeling_gato import GatoForCausalModeling

    return GatoForCausalModeling(tiny_config())


def test_model_push_to_hub_keeps_the_project_card(tmp_path, hub):
    from modeling_gato import GatoForCausalModeling
    from modeling_gato.hub.cards import base_model_card
    from modeling_gato.training.train import usage_snippet

    # a trained model's directory: the training card with its model-index (push --results / update_model_card)
    saved = tmp_path / "model"
    _tiny_model().save_pretrained(saved)
    (saved / "README.md").write_text(TRAIN_CARD + "\n" + "\n".join(usage_snippet(str(saved))))
    update_model_card(str(saved), make_results())
    card_before = (saved / "README.md").read_text()
    GatoForCausalModeling.from_pretrained(saved).push_to_hub("someone/gato-small")
    files = hub["uploaded"]()
    assert {"model.safetensors", "config.json", "modeling_gato.py", "pipelines.py", "README.md"} <= set(files)
    uploaded = files["README.md"].decode()
    assert "automatically generated" not in uploaded
    assert "## Training data" in uploaded and "| CartPole-v1 | classic | 40 |" in uploaded
    assert 'repo_id = "someone/gato-small"  # a Hub repo id' in uploaded
    (tmp_path / "uploaded.md").write_text(uploaded)
    name, results = model_index_to_eval_results(metadata_load(tmp_path / "uploaded.md")["model-index"])
    assert name == "someone/gato-small"
    assert {(r.dataset_type, r.metric_type): r.metric_value for r in results} == card_values(saved / "README.md")
    assert (saved / "README.md").read_text() == card_before  # the model's own directory is left as it was

    # a model built in memory: the project's card instead of transformers' generic one...
    _tiny_model().push_to_hub("someone/gato-new")
    uploaded = hub["uploaded"]()["README.md"].decode()
    card, expected = ModelCard(uploaded), ModelCard(base_model_card("someone/gato-new"))
    assert card.text == expected.text and card.data.to_dict() == expected.data.to_dict()
    assert "automatically generated" not in uploaded and "gato" in card.data.tags
    # ...unless the Hub repository already has a card, which transformers keeps (and so do we)
    hub["hub_card"] = TRAIN_CARD + "\nsomeone's own words\n"
    _tiny_model().push_to_hub("someone/gato-small")
    assert "someone's own words" in hub["uploaded"]()["README.md"].decode()


def test_trainer_push_to_hub_keeps_the_project_card(tmp_path, hub):
    from transformers import TrainingArguments

    from modeling_gato.training.train import GatoTrainer, TrainConfig, usage_snippet

    output = tmp_path / "run"
    args = TrainingArguments(output_dir=str(output), hub_model_id="someone/gato-run", report_to=[], use_cpu=True,
                             save_strategy="no")
    manifests = {"data": {"tasks": {"CartPole-v1": {"domain": "classic", "episodes": 40, "steps": 900}}}}
    trainer = GatoTrainer(model=_tiny_model(), args=args, gato_config=TrainConfig(output_dir=str(output)),
                          manifests=manifests)
    # no card yet (e.g. `save_model` with push_to_hub=True, before `train` writes it): the training card, not the generic one
    trainer.push_to_hub()
    files = hub["uploaded"]()
    uploaded = files["README.md"].decode()
    assert "automatically generated" not in uploaded and "This model was trained from scratch" not in uploaded
    card = ModelCard(uploaded)
    assert card.data.library_name == "transformers" and "gato" in card.data.tags
    assert "| CartPole-v1 | classic | 40 | 900 |" in uploaded
    assert 'repo_id = "someone/gato-run"  # a Hub repo id' in uploaded
    assert {"config.json", "model.safetensors", "pipelines.py"} <= set(files)
    # the card in the output directory, with its evaluation, is the one uploaded
    (output / "README.md").write_text(TRAIN_CARD + "\n" + "\n".join(usage_snippet(str(output))))
    update_model_card(str(output), make_results())
    trainer.push_to_hub()
    uploaded = hub["uploaded"]()["README.md"].decode()
    assert "## Training data" in uploaded and "| CartPole-v1 | classic | 40 |" in uploaded
    assert 'repo_id = "someone/gato-run"  # a Hub repo id' in uploaded
    (tmp_path / "uploaded.md").write_text(uploaded)
    name, results = model_index_to_eval_results(metadata_load(tmp_path / "uploaded.md")["model-index"])
    assert name == "someone/gato-run" and len(results) == len(card_values(output / "README.md")) > 0
