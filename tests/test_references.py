"""Reference scores with provenance (modeling_gato.envs.references, `python -m modeling_gato scores`)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("minigrid")
pytest.importorskip("metaworld")
pytest.importorskip("stable_baselines3")

from datasets import load_from_disk  # noqa: E402

from modeling_gato.data.collect import measure_policy  # noqa: E402
from modeling_gato.data.scores import add_arguments, measure_references, write_references  # noqa: E402
from modeling_gato.envs.references import (  # noqa: E402
    RANDOM_SEED_OFFSET,
    expert_steps_for,
    recorded_expert_steps,
    reference_entry,
    references_from_description,
)
from modeling_gato.envs.tasks import get_task, make_env  # noqa: E402
from modeling_gato.utils.jobs import write_json_atomic  # noqa: E402

PROVENANCE = {"domain", "env_id", "make_kwargs", "environment", "expert_policy", "expert_origin", "expert_steps",
              "random_policy", "expert", "random", "versions", "measured"}
STATS = {"episodes", "seed", "last_seed", "env_seed", "mean_return", "std_return", "mean_length", "success_rate"}


def test_a_table_where_the_expert_does_not_beat_random_is_refused(tmp_path):
    spec = get_task("CartPole-v1")
    # a real measurement (the random policy, 3 episodes) used as both references: expert == random
    _, random = measure_policy(spec, "random", 3, 5, str(tmp_path), progress=False)
    with pytest.raises(ValueError, match=r"task CartPole-v1: the expert's mean return [\d.]+ is not above the random"):
        reference_entry(spec, random, random)
    worse = {**random, "mean_return": random["mean_return"] - 1.0}
    with pytest.raises(ValueError, match="task CartPole-v1"):
        reference_entry(spec, worse, random)
    better = {**random, "mean_return": random["mean_return"] + 1.0}
    assert reference_entry(spec, better, random)["expert"]["mean_return"] == random["mean_return"] + 1.0


def test_measured_references_carry_provenance_and_babyai_return_formula(tmp_path):
    tasks = ["BabyAI-GoToRedBallGrey-v0", "metaworld-reach-v3"]
    references = measure_references(tasks, episodes=2, seed=7, cache_dir=str(tmp_path), progress=False)
    assert list(references) == tasks
    for task, entry in references.items():
        assert PROVENANCE <= set(entry), task
        assert STATS <= set(entry["expert"]) and STATS <= set(entry["random"])
        assert (entry["expert"]["seed"], entry["expert"]["last_seed"], entry["expert"]["episodes"]) == (7, 8, 2)
        assert entry["random"]["seed"] == 7 + RANDOM_SEED_OFFSET
        assert {"python", "gymnasium", "minigrid", "metaworld"} <= set(entry["versions"])
        assert entry["expert"]["mean_return"] > entry["random"]["mean_return"]
        assert entry["expert"]["success_rate"] == 1.0  # both environments report success
    babyai, reach = references["BabyAI-GoToRedBallGrey-v0"], references["metaworld-reach-v3"]
    assert babyai["expert_origin"] == "minigrid.utils.baby_ai_bot.BabyAIBot (ships with minigrid 3.2.0)"
    assert reach["expert_origin"] == "metaworld.policies.SawyerReachV3Policy (ships with metaworld 3.1.1)"
    assert reach["make_kwargs"] == {"env_name": "reach-v3"} and "reach-v3" in reach["environment"]
    assert "1 - 0.9 * steps / max_steps" in babyai["note"]
    # BabyAI pays 1 - 0.9 * steps / max_steps on success: the bot's mean return follows from its mean length
    env = make_env("BabyAI-GoToRedBallGrey-v0")
    env.reset(seed=7)
    max_steps = env.unwrapped.max_steps  # set by the level at reset (64 here)
    assert babyai["expert"]["mean_return"] == pytest.approx(1 - 0.9 * babyai["expert"]["mean_length"] / max_steps)
    assert babyai["expert"]["mean_return"] < 1.0
    assert reach["expert"]["mean_length"] == 500  # Meta-World v3: no termination on success
    # same seeds, same numbers
    again = measure_references(tasks[:1], episodes=2, seed=7, progress=False)
    assert again[tasks[0]]["expert"] == babyai["expert"] and again[tasks[0]]["random"] == babyai["random"]


def test_collect_writes_references_with_provenance(collected):
    output, _ = collected
    scores = json.loads((output / "scores.json").read_text())
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["scores"] == scores
    origins = {task: entry["expert_origin"] for task, entry in scores.items()}
    assert origins["CartPole-v1"].startswith("stable-baselines3 PPO trained here, 40000 steps, seed 0")
    assert origins["metaworld-push-v3"].startswith("metaworld.policies.SawyerPushV3Policy (ships with metaworld ")
    # the expert's training steps: the task's default for the PPO experts, None for experts shipped with a package
    steps = {task: entry["expert_steps"] for task, entry in scores.items()}
    assert steps["CartPole-v1"] == 40000 and steps["InvertedPendulum-v5"] == 60000
    assert steps["metaworld-push-v3"] is None and steps["BabyAI-GoToRedBallGrey-v0"] is None
    assert {task: info["expert_steps"] for task, info in manifest["tasks"].items()} == steps
    assert recorded_expert_steps(str(output), "CartPole-v1") == 40000
    for task, entry in scores.items():
        assert PROVENANCE <= set(entry), task
        assert STATS <= set(entry["expert"]) and STATS <= set(entry["random"])
        # what evaluate reads
        assert {"mean_return", "success_rate"} <= set(entry["expert"]) and "domain" in entry
        # the dataset's own metadata carries the same reference
        description = load_from_disk(str(output / "episodes" / task)).info.description
        assert task in description and references_from_description(description) == entry


def test_expert_steps_are_recorded_and_reused(tmp_path):
    import argparse

    cartpole, reach = get_task("CartPole-v1"), get_task("metaworld-reach-v3")
    expert = {"episodes": 2, "seed": 0, "mean_return": 50.0, "std_return": 1.0, "mean_length": 50.0,
              "success_rate": None}
    random = {**expert, "seed": RANDOM_SEED_OFFSET, "mean_return": 20.0}
    small = reference_entry(cartpole, expert, random, expert_steps=2048, versions={})
    assert small["expert_steps"] == 2048 and "trained here, 2048 steps" in small["expert_origin"]
    assert reference_entry(cartpole, expert, random, versions={})["expert_steps"] == 40000  # the task's default
    assert reference_entry(reach, expert, random, expert_steps=2048, versions={})["expert_steps"] is None

    # a directory recorded with a small expert: `scores` re-measures with that expert unless told otherwise
    data = tmp_path / "data"
    data.mkdir()
    (data / "scores.json").write_text(json.dumps({"CartPole-v1": small}))
    (data / "manifest.json").write_text(json.dumps({"tasks": {"CartPole-v1": {"expert_steps": 2048},
                                                              "metaworld-reach-v3": {"expert_steps": None}}}))
    assert recorded_expert_steps(str(data), "CartPole-v1") == 2048
    assert recorded_expert_steps(str(data), "metaworld-reach-v3") is None
    tasks = ["CartPole-v1", "metaworld-reach-v3"]
    assert expert_steps_for(str(data), tasks) == {"CartPole-v1": 2048, "metaworld-reach-v3": None}
    assert expert_steps_for(str(data), tasks, 5000) == {"CartPole-v1": 5000, "metaworld-reach-v3": 5000}
    # the manifest alone, and a directory written before the field existed (the steps are in the origin's text)
    (data / "scores.json").unlink()
    assert recorded_expert_steps(str(data), "CartPole-v1") == 2048
    legacy = {key: value for key, value in small.items() if key != "expert_steps"}
    (data / "manifest.json").write_text(json.dumps({"tasks": {"CartPole-v1": {}}, "scores": {"CartPole-v1": legacy}}))
    assert recorded_expert_steps(str(data), "CartPole-v1") == 2048
    # --expert-cache is the same option as --cache-dir
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for flag in ("--cache-dir", "--expert-cache"):
        assert parser.parse_args(["--data", str(data), flag, "/tmp/x"]).cache_dir == "/tmp/x"


def test_write_json_atomic_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "scores.json"
    write_json_atomic(str(path), {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(TypeError):
        write_json_atomic(str(path), {"a": object()})  # fails half-way through serializing
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["scores.json"]  # no temporary file left behind


def test_scores_command_rewrites_references_everywhere(collected, tmp_path):
    output, _ = collected
    data = tmp_path / "data"
    shutil.copytree(output, data)
    before = json.loads((data / "scores.json").read_text())
    task = "BabyAI-GoToRedBallGrey-v0"
    result = subprocess.run(
        [sys.executable, "-m", "modeling_gato", "scores", "--data", str(data), "--tasks", task, "--episodes", "4",
         "--seed", "11"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"| {task} | babyai |" in result.stdout
    scores = json.loads((data / "scores.json").read_text())
    assert scores[task]["expert"]["episodes"] == 4 and scores[task]["expert"]["seed"] == 11
    assert {t: s for t, s in scores.items() if t != task} == {t: s for t, s in before.items() if t != task}
    assert json.loads((data / "manifest.json").read_text())["scores"] == scores
    description = load_from_disk(str(data / "episodes" / task)).info.description
    assert references_from_description(description) == scores[task]
    card = (data / "README.md").read_text()
    assert f"{scores[task]['expert']['mean_return']:.3f} ±" in card and "4 / 4 | 11-14 / 1000011-1000014" in card
    assert not [name for name in os.listdir(data) if name.endswith(".tmp")]
    # a refused table writes nothing
    bad = {task: {**scores[task], "expert": {**scores[task]["expert"], "mean_return": -1.0}}}
    with pytest.raises(ValueError, match=f"task {task}: the expert's mean return -1 is not above"):
        write_references(str(data), bad)
    assert json.loads((data / "scores.json").read_text()) == scores
