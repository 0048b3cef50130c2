"""Few-shot adaptation (`python -m modeling_gato adapt`): held-out tasks, a real tiny run and its reported numbers."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from gato_testing import tiny_config
from safetensors.torch import load_file

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.data.collect import DEFAULT_TASKS
from modeling_gato.envs.tasks import HELD_OUT_TASKS, TASKS
from modeling_gato.training.fewshot import RESULT_KEYS, adapt, relative_weight_change

TASK = "BabyAI-GoToObj-v0"


def save_tiny_model(directory) -> None:
    torch.manual_seed(0)
    GatoForCausalModeling(tiny_config()).save_pretrained(directory)  # context 256
    GatoProcessor().save_pretrained(directory)


def test_held_out_tasks_stay_out_of_the_default_collection():
    from modeling_gato.cli.demo import QUICK_TASKS

    assert HELD_OUT_TASKS == ["BabyAI-GoToObj-v0", "metaworld-button-press-v3"]
    assert all(TASKS[name].held_out for name in HELD_OUT_TASKS)
    assert not set(HELD_OUT_TASKS) & set(DEFAULT_TASKS)
    assert set(DEFAULT_TASKS) | set(HELD_OUT_TASKS) == set(TASKS)
    assert not set(HELD_OUT_TASKS) & set(QUICK_TASKS)


def test_relative_weight_change_by_hand():
    before = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([[0.0, 4.0]])}
    after = {"a": torch.tensor([3.0, 3.0]), "b": torch.tensor([[0.0, 0.0]])}
    assert relative_weight_change(before, after) == pytest.approx(1.0)  # sqrt(9 + 16) / sqrt(9 + 16)
    assert relative_weight_change(before, before) == 0.0
    with pytest.raises(ValueError, match="keys"):
        relative_weight_change(before, {"a": before["a"]})


def test_overlapping_seeds_and_a_used_output_directory_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"demonstration seeds 0\.\.5 overlap evaluation seeds 3\.\.4"):
        adapt(str(tmp_path / "no-model"), TASK, str(tmp_path / "out"), demonstrations=5, eval_episodes=2, eval_seed=3)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "adapt_results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        adapt(str(tmp_path / "no-model"), TASK, str(tmp_path / "used"))
    with pytest.raises(ValueError, match="unknown task"):
        adapt(str(tmp_path / "no-model"), "BabyAI-NoSuchLevel-v0", str(tmp_path / "out"))


def test_adapt_fine_tunes_a_saved_model_and_reports_the_evaluations_numbers(tmp_path):
    pytest.importorskip("minigrid")
    model_dir, output = tmp_path / "tiny", tmp_path / "adapted"
    save_tiny_model(model_dir)
    command = [sys.executable, "-m", "modeling_gato", "adapt", "--model", str(model_dir), "--task", TASK,
               "--output-dir", str(output), "--demonstrations", "3", "--steps", "6", "--eval-episodes", "2",
               "--reference-episodes", "10", "--learning-rate", "1e-3", "--batch-size", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| model before |" in result.stdout

    for name in ("adapt_results.json", "adapt_results.md", "before/eval_results.json", "after/eval_results.json",
                 "data/scores.json", "model/model.safetensors", "model/README.md", "model/training_config.json",
                 "model/modeling_gato.py"):
        assert (output / name).exists(), name
    results = json.loads((output / "adapt_results.json").read_text())
    assert results["task"] == TASK and results["held_out"] is True and results["demonstrations"] == 3
    assert results["demonstration_seeds"] == [0, 2] and results["prompt_episode_seed"] == 3
    assert results["evaluation"]["seeds"] == [1000, 1001]
    assert results["training"]["steps"] == 6 and results["training"]["context_length"] == 256
    assert np.isfinite(results["training"]["prompt_episode_loss"])

    # K demonstrations + the prompt episode, all solved by the bot; the prompt episode is held out of training
    from datasets import load_from_disk

    episodes = load_from_disk(str(output / "data" / "episodes" / TASK))
    assert len(episodes) == 4 and all(sum(row["rewards"]) > 0 for row in episodes)
    training = json.loads((output / "model" / "training_config.json").read_text())
    assert training["init_from"] == str(model_dir) and training["max_steps"] == 6 and training["eval_episodes"] == 1

    # before / after rows are the evaluation's own numbers, and agree with its per-episode records
    scores = json.loads((output / "data" / "scores.json").read_text())[TASK]
    expert, random = scores["expert"]["mean_return"], scores["random"]["mean_return"]
    assert results["expert"]["mean_return"] == expert and results["random"]["mean_return"] == random
    assert results["expert"]["success_rate"] == 1.0 and results["random"]["episodes"] == 10
    for name in ("before", "after"):
        evaluated = json.loads((output / name / "eval_results.json").read_text())["tasks"][TASK]
        assert results[name] == {key: evaluated[key] for key in RESULT_KEYS}
        returns = [episode["return"] for episode in evaluated["episodes"]]
        assert [episode["seed"] for episode in evaluated["episodes"]] == [1000, 1001]
        assert results[name]["mean_return"] == pytest.approx(np.mean(returns))
        assert results[name]["success_rate"] == pytest.approx(np.mean([r > 0 for r in returns]))
        assert results[name]["normalized_score"] == pytest.approx((np.mean(returns) - random) / (expert - random))
    table = (output / "adapt_results.md").read_text()
    assert f"| model after 6 steps | {results['after']['mean_return']:.3f} ± " in table
    assert f"| expert reference (babyai_bot, 4 episodes) | {expert:.3f} | 100% | 100% |" in table
    assert f"| random reference (uniform, 10 episodes) | {random:.3f} | " in table
    # the baselines played the same evaluation seeds once, beside "before"
    evaluated = json.loads((output / "before" / "eval_results.json").read_text())
    assert set(results["baselines"]) == set(evaluated["baselines"]) >= {"random", "expert"}
    for name, row in results["baselines"].items():
        assert row == {key: evaluated["baselines"][name][TASK][key] for key in RESULT_KEYS}
    assert results["baselines"]["expert"]["success_rate"] == 1.0
    assert not json.loads((output / "after" / "eval_results.json").read_text()).get("baselines")
    card = (output / "model" / "README.md").read_text()
    assert "model-index" in card and "## How to use" in card
    assert results["command"] in table

    # the weights moved, and the reported change is the one between the two saved directories
    initial, adapted = load_file(model_dir / "model.safetensors"), load_file(output / "model" / "model.safetensors")
    assert initial.keys() == adapted.keys()
    assert any(not torch.equal(initial[k], adapted[k]) for k in initial)
    change = relative_weight_change(GatoForCausalModeling.from_pretrained(model_dir).state_dict(),
                                    GatoForCausalModeling.from_pretrained(output / "model").state_dict())
    assert results["weights_relative_change"] == pytest.approx(change) and change > 0


def test_held_out_metaworld_task_collects_and_plays(tmp_path):
    pytest.importorskip("metaworld")
    from modeling_gato.data.collect import collect
    from modeling_gato.evaluation.evaluate import evaluate

    task = "metaworld-button-press-v3"
    manifest = collect(str(tmp_path / "data"), tasks=[task], episodes=1, score_episodes=1, text_paragraphs=1,
                       captions_per_task=0, progress=False)
    score = manifest["scores"][task]
    assert score["expert"]["success_rate"] == 1.0 and score["random"]["success_rate"] == 0.0
    assert score["expert"]["mean_return"] > score["random"]["mean_return"]
    assert manifest["tasks"][task]["steps"] == 500 and manifest["tasks"][task]["action_space"]["shape"] == [4]
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config()).eval()
    results = evaluate(model, GatoProcessor(), str(tmp_path / "data"), str(tmp_path / "eval"), tasks=[task],
                       episodes=1, max_episode_steps=3, progress=False)
    assert [e["length"] for e in results["tasks"][task]["episodes"]] == [3]
