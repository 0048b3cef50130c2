"""Every command-line argument is checked before work starts: a bad one ends the command with one line naming it."""

import argparse
import json

import pytest

from modeling_gato.cli.commands import main
from modeling_gato.training.train import TrainConfig
from modeling_gato.utils.arguments import model_directory, non_negative_float, positive_int


@pytest.fixture
def dirs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"tasks": {}}))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    unweighted = tmp_path / "unweighted"
    unweighted.mkdir()
    (unweighted / "config.json").write_text("{}")
    return {"data": str(data), "model": str(model), "unweighted": str(unweighted), "empty": str(tmp_path),
            "missing": str(tmp_path / "no" / "such" / "dir"), "out": str(tmp_path / "out")}


CASES = [
    (["train", "--data", "{data}", "--max-steps", "-5"], "--max-steps: expected an integer in [1, inf), got -5"),
    (["train", "--data", "{data}", "--learning-rate", "0"], "--learning-rate: expected a number in (0, inf), got 0.0"),
    (["train", "--data", "{data}", "--max-minutes", "0"], "--max-minutes: expected a number in (0, inf)"),
    (["train", "--data", "{data}", "--batch-size", "0"], "--batch-size: expected an integer in [1, inf)"),
    (["train", "--data", "{data}", "--dataloader-num-workers", "-1"],
     "--dataloader-num-workers: expected an integer in [0, inf), got -1"),
    (["train", "--data", "{data}", "--short-context-probability", "1.5"],
     "--short-context-probability: expected a number in [0, 1], got 1.5"),
    (["train", "--data", "{data}", "--short-context-prompt-tokens", "1024"],
     "--short-context-prompt-tokens: expected fewer tokens than the context (1024), got 1024"),
    (["train", "--data", "{data}", "--variant", "huge"], "--variant: expected tiny, small, baseline or large"),
    (["train", "--data", "{data}", "--weights", '{"text": -1}'], "--weights: expected a finite number >= 0 for 'text'"),
    (["train", "--data", "{missing}"], "--data: no such directory"),
    (["train", "--data", "{empty}"], "has no manifest.json"),
    (["train", "--data", "{data}", "--init-from", "{unweighted}"], "--init-from: {unweighted} has no weights"),
    (["collect", "--output-dir", "{out}", "--episodes", "0"], "argument --episodes: expected an integer >= 1, got 0"),
    (["collect", "--output-dir", "{out}", "--tasks", "Nope-v0"], "argument --tasks: unknown task 'Nope-v0'"),
    (["collect", "--output-dir", "{out}", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    (["collect", "--output-dir", "{out}", "--action-noise", "-0.1"],
     "argument --action-noise: expected a number >= 0, got -0.1"),
    (["collect", "--output-dir", "{out}", "--action-noise", '{"mujoco": "x"}'],
     "argument --action-noise: expected a finite number >= 0 (half action ranges) for 'mujoco', got 'x'"),
    (["collect", "--output-dir", "{out}", "--task-episodes", '{"babyai": 1.5}'],
     "argument --task-episodes: expected an integer >= 1 for 'babyai', got 1.5"),
    (["collect", "--output-dir", "{out}", "--task-episodes", "1000"],
     "argument --task-episodes: expected a mapping task name or domain -> episodes, got 1000"),
    (["evaluate", "--model", "{unweighted}", "--data", "{data}"], "argument --model: {unweighted} has no weights"),
    (["evaluate", "--model", "{missing}", "--data", "{data}"], "argument --model: no such model directory"),
    (["evaluate", "--model", "{empty}", "--data", "{data}"], "argument --model: {empty} has no config.json"),
    (["evaluate", "--model", "{model}", "--data", "{empty}"], "argument --data: {empty} has no manifest.json"),
    (["evaluate", "--model", "{model}", "--data", "{data}", "--num-envs", "0"], "argument --num-envs: expected an"),
    (["evaluate", "--model", "{model}", "--data", "{data}", "--episodes", "many"],
     "argument --episodes: expected an integer, got 'many'"),
    (["evaluate", "--model", "{model}", "--data", "{data}", "--temperature", "-1"],
     "argument --temperature: expected a number >= 0, got -1"),
    (["evaluate", "--model", "{model}", "--data", "{data}", "--tasks", "CartPole-v9"], "unknown task 'CartPole-v9'"),
    (["offline", "--model", "{model}", "--data", "{data}", "--batch-size", "0"], "argument --batch-size"),
    (["offline", "--model", "{model}", "--data", "{data}", "--stride", "-3"], "argument --stride"),
    (["act", "--model", "{model}", "--task", "Nope"], "argument --task: unknown task 'Nope'"),
    (["act", "--model", "{model}", "--task", "CartPole-v1", "--episodes", "0"], "argument --episodes"),
    (["adapt", "--model", "{model}", "--task", "CartPole-v1", "--output-dir", "{out}", "--steps", "-1"],
     "argument --steps: expected an integer >= 1, got -1"),
    (["adapt", "--model", "{model}", "--task", "CartPole-v1", "--output-dir", "{out}", "--max-minutes", "nan"],
     "argument --max-minutes: expected a finite number, got 'nan'"),
    (["scores", "--data", "{data}", "--episodes", "0"], "argument --episodes"),
    (["scores", "--data", "{missing}"], "argument --data: no such directory"),
    (["push", "--model", "org/name", "--repo-id", "org/name"], "argument --model: no such model directory: org/name"),
    (["demo", "--minutes", "0"], "argument --minutes: expected a number > 0, got 0"),
    (["demo", "--action-noise", '{"mujoco": -1}'],
     "argument --action-noise: expected a finite number >= 0 (half action ranges) for 'mujoco', got -1"),
    (["demo", "--task-episodes", '{"babyai": 0}'],
     "argument --task-episodes: expected an integer >= 1 for 'babyai', got 0"),
    (["demo", "--data", "{empty}"], "argument --data: {empty} has no manifest.json"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_a_bad_argument_ends_the_command_in_one_line_naming_it(argv, message, dirs, capsys):
    argv = [dirs[word[1:-1]] if word[1:-1] in dirs else word for word in argv]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith(f"python -m modeling_gato {argv[0]}: error: "), error
    for name, path in dirs.items():
        message = message.replace("{" + name + "}", path)
    assert message in error


def test_the_checks_accept_what_is_valid(dirs):
    assert positive_int("3") == 3 and non_negative_float("0") == 0.0
    assert model_directory(dirs["model"]) == dirs["model"]
    assert model_directory("org/gato-small") == "org/gato-small"  # a Hub id
    with pytest.raises(argparse.ArgumentTypeError, match="expected an integer >= 1, got 0"):
        positive_int("0")
    TrainConfig(data=[dirs["data"]], variant="tiny", save_total_limit=None, max_minutes=None).check()
    TrainConfig(data=[dirs["data"]], init_from=dirs["model"], warmup_steps=0, prompt_probability=0).check()


def test_train_settings_from_a_file_are_checked_too(dirs, tmp_path, capsys):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"data": [dirs["data"]], "eval_steps": 0}))
    with pytest.raises(SystemExit):
        main(["train", "--config", str(settings)])
    assert "--eval-steps: expected an integer in [1, inf), got 0" in capsys.readouterr().err
