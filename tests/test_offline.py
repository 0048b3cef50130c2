"""Offline action prediction: windows by hand, the batched scorer against a slow full-forward reference, metrics
on a model whose prediction is known, directories (ours without a manifest, and a converted Minari one), the CLI."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from gato_testing import tiny_config

from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.data.sequences import _slice_sample
from modeling_gato.evaluation.offline import (
    action_prediction_metrics,
    action_space_from_description,
    offline_metrics_for_directory,
    offline_table,
    scoring_windows,
)

CONTINUOUS_IDS = (32000, 33024)
BOX = {"type": "Box", "shape": [2], "low": [0.0, -2.0], "high": [10.0, 2.0]}


@pytest.fixture(scope="module")
def processor() -> GatoProcessor:
    return GatoProcessor()


@pytest.fixture(scope="module")
def lively() -> GatoForCausalModeling:
    """A random model with large weights (greedy predictions vary), in float64 so that no argmax is a near tie."""
    torch.manual_seed(0)
    return GatoForCausalModeling(tiny_config(initializer_range=0.5)).double().eval()


def constant_model(continuous_bin: int, discrete_value: int) -> GatoForCausalModeling:
    """A model whose output is the same at every position: the final LayerNorm has zero gain and bias e_0, so the
    logits are column 0 of the (tied) token table, which is 1 at one continuous bin and one discrete value."""
    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config()).eval()
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.bias.zero_()
        model.model.norm.bias[0] = 1.0
        table = model.get_output_embeddings().weight
        table[:, 0] = 0.0
        table[CONTINUOUS_IDS[0] + continuous_bin, 0] = 1.0
        table[discrete_value, 0] = 1.0
    return model


def continuous_episode(steps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"continuous_observations": rng.normal(0, 2, size=(steps, 3)).tolist(),
            "continuous_actions": rng.uniform(-1, 1, size=(steps, 2)).tolist(), "task": "box"}


def image_text_episode(steps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"image_observations": [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(steps)],
            "text_observations": ["go to the red ball"] * steps,
            "discrete_observations": rng.integers(0, 4, size=(steps, 1)).tolist(),
            "discrete_actions": rng.integers(0, 7, size=steps).tolist(), "task": "grid"}


# ---------------------------------------------------------------------------- windows
def test_scoring_windows_by_hand():
    starts, total = np.arange(0, 60, 10), 60  # six timesteps of 10 tokens
    assert scoring_windows(starts, total, 30, 10) == [(0, 0, 30), (10, 30, 40), (20, 40, 50), (30, 50, 60)]
    assert scoring_windows(starts, total, 30, 20) == [(0, 0, 30), (20, 30, 50), (40, 50, 60)]
    assert scoring_windows(starts, total, 30, 30) == [(0, 0, 30), (30, 30, 60)]  # disjoint windows
    assert scoring_windows(starts, total, 100, 50) == [(0, 0, 60)]  # fits: one window
    # uneven timesteps (lengths 5, 20, 5, 5, 20): 25 tokens of history are carried over
    starts = np.array([0, 5, 25, 30, 35])
    assert scoring_windows(starts, 55, 30, 5) == [(0, 0, 30), (5, 30, 35), (25, 35, 55)]
    # ... unless the new timestep (24 tokens) would not fit beside them: then less history (5 tokens)
    assert scoring_windows(starts, 59, 30, 5) == [(0, 0, 30), (5, 30, 35), (30, 35, 59)]
    total = 55
    with pytest.raises(ValueError, match="timestep 1 has 20 tokens, more than the context of 16"):
        scoring_windows(starts, total, 16, 8)
    with pytest.raises(ValueError, match="stride=0 is invalid"):
        scoring_windows(starts, total, 30, 0)


# ---------------------------------------------------------------------------- against a slow reference
def reference_ids(model, processor, episode, ranges, context_length, stride=None):
    """One full forward pass (the whole output layer) per action token, argmax over the slot's valid ids.

    With `stride=None` the history is built independently of `scoring_windows`: the earliest whole timestep such
    that everything up to the end of the action's timestep fits in the context (what `stride=1` promises)."""
    tokens = processor.tokenize_episode(episode)
    starts, total = tokens["timestep_starts"], len(tokens["input_ids"])
    ends = np.append(starts[1:], total)
    positions = np.flatnonzero(tokens["action_mask"])
    if stride is not None:
        windows = scoring_windows(starts, total, context_length, stride)
    predicted = []
    for index, position in enumerate(positions):
        step = int(np.searchsorted(starts, position, side="right") - 1)
        if stride is None:
            first = int(starts[np.flatnonzero(ends[step] - starts <= context_length)[0]])
        else:
            first = next(a for a, scored, end in windows if scored <= position < end)
        batch = processor.collate([_slice_sample(tokens, first, int(position))], max_length=context_length)
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "loss_mask"}).logits[0, -1]
        low, high = ranges[index % len(ranges)]
        predicted.append(low + int(torch.argmax(logits[low:high])))
    return np.asarray(predicted).reshape(len(starts), -1)


@pytest.mark.parametrize("stride", [None, 20])
def test_continuous_matches_the_slow_reference(lively, processor, stride):
    episodes = [continuous_episode(30, seed=0), continuous_episode(4, seed=1)]  # 180 tokens (3 windows+), and 24
    result = action_prediction_metrics(lively, processor, episodes, BOX, context_length=64,
                                       stride=1 if stride is None else stride, batch_size=3, progress=False,
                                       return_predictions=True)
    expected = [reference_ids(lively, processor, e, [CONTINUOUS_IDS] * 2, 64, stride) for e in episodes]
    for got, want in zip(result["predictions"], expected):
        np.testing.assert_array_equal(got, want)
    assert len({int(v) for v in expected[0].reshape(-1)}) > 5, "the test needs predictions that vary"
    assert result["timesteps"] == 34 and result["action_tokens"] == result["continuous_tokens"] == 68
    # the metrics follow from the predictions: bin centres against the stored values, scaled to the Box
    centres = processor.discretizer.decode(np.concatenate(expected), mu_law=False)
    stored = np.concatenate([np.asarray(e["continuous_actions"]) for e in episodes])
    errors = (centres - stored) * np.array([5.0, 2.0])  # (high - low) / 2 per dimension
    assert result["mae"] == pytest.approx(np.abs(errors).mean())
    assert result["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert result["mae_per_dimension"] == pytest.approx(np.abs(errors).mean(0).tolist())
    assert result["units"] == "box" and result["token_accuracy"] is None


def test_discrete_image_text_matches_the_slow_reference(lively, processor):
    episodes = [image_text_episode(12, seed=2), image_text_episode(3, seed=3)]
    space = {"type": "Discrete", "n": 7, "start": 0}
    result = action_prediction_metrics(lively, processor, episodes, space, context_length=64, stride=1, batch_size=2,
                                       progress=False, return_predictions=True)
    expected = [reference_ids(lively, processor, e, [(0, 7)], 64) for e in episodes]
    for got, want in zip(result["predictions"], expected):
        np.testing.assert_array_equal(got, want)
    assert len(processor.tokenize_episode(episodes[0])["input_ids"]) > 64  # the long episode needs several windows
    truth = np.concatenate([e["discrete_actions"] for e in episodes])
    accuracy = float(np.mean(np.concatenate(expected).reshape(-1) == truth))
    assert result["token_accuracy"] == pytest.approx(accuracy) and result["action_accuracy"] == pytest.approx(accuracy)
    assert result["discrete_tokens"] == 15 and result["mae"] is None
    # a datasets.Dataset gives the same answer as the list of rows
    from datasets import Dataset

    again = action_prediction_metrics(lively, processor, Dataset.from_list(episodes), space, context_length=64,
                                      stride=1, progress=False)
    assert again["token_accuracy"] == result["token_accuracy"]


def test_default_stride_scores_every_token_once(lively, processor):
    episode = continuous_episode(40, seed=4)  # 240 tokens
    result = action_prediction_metrics(lively, processor, episode, BOX, context_length=64, progress=False,
                                       return_predictions=True)
    assert result["stride"] == 32 and result["action_tokens"] == 80
    np.testing.assert_array_equal(result["predictions"][0],
                                  reference_ids(lively, processor, episode, [CONTINUOUS_IDS] * 2, 64, stride=32))
    assert lively.training is False


# ---------------------------------------------------------------------------- a model whose prediction is known
def test_box_units_by_hand(processor):
    model = constant_model(continuous_bin=768, discrete_value=3).train()
    episode = {"continuous_observations": [[0.0], [1.0]], "continuous_actions": [[0.5, 1.0], [-1.0, 0.0]]}
    # bin 768's centre is -1 + 1537 / 1024 = 0.5009765625 -> Box [0, 10] x [-2, 2]: (7.5048828125, 1.001953125);
    # the true actions are (7.5, 2.0) and (0.0, 0.0)
    errors = [7.5048828125 - 7.5, 7.5048828125 - 0.0, 2.0 - 1.001953125, 1.001953125 - 0.0]
    result = action_prediction_metrics(model, processor, [episode], BOX, progress=False)
    assert result["mae"] == pytest.approx(sum(errors) / 4, abs=1e-12)  # 2.37744140625
    assert result["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 4), abs=1e-12)
    assert result["mae_per_dimension"] == pytest.approx([(errors[0] + errors[1]) / 2, (errors[2] + errors[3]) / 2])
    assert result["units"] == "box" and result["timesteps"] == 2 and result["action_tokens"] == 4
    assert model.training  # the mode is restored
    gymnasium = pytest.importorskip("gymnasium")
    box = gymnasium.spaces.Box(np.array([0.0, -2.0], np.float32), np.array([10.0, 2.0], np.float32))
    assert action_prediction_metrics(model, processor, [episode], box, progress=False)["mae"] == result["mae"]
    # without a space: the stored [-1, 1] units
    centre = 0.5009765625
    plain = action_prediction_metrics(model, processor, [episode], progress=False)
    normalized = [abs(centre - 0.5), abs(centre + 1.0), abs(centre - 1.0), abs(centre - 0.0)]
    assert plain["units"] == "normalized" and plain["mae"] == pytest.approx(sum(normalized) / 4, abs=1e-12)


def test_discrete_accuracy_by_hand(processor):
    model = constant_model(continuous_bin=0, discrete_value=3)  # always predicts 3 where 3 is allowed
    observations = [[0], [1], [2]]
    multi = {"discrete_observations": observations, "discrete_actions": [[3, 3], [3, 0], [1, 1]]}
    result = action_prediction_metrics(model, processor, multi, {"type": "MultiDiscrete", "nvec": [4, 5]},
                                       progress=False)
    assert result["token_accuracy"] == pytest.approx(3 / 6) and result["action_accuracy"] == pytest.approx(1 / 3)
    single = {"discrete_observations": observations, "discrete_actions": [0, 1, 2]}
    # without a space the slot is [0, 1 + largest value seen) = [0, 3): 3 is not allowed, the argmax of the
    # remaining (equal) logits is 0
    assert action_prediction_metrics(model, processor, single, progress=False)["token_accuracy"] == pytest.approx(1 / 3)
    assert action_prediction_metrics(model, processor, single, num_actions=4, progress=False)["token_accuracy"] == 0.0


def test_bad_inputs_are_refused(processor):
    model = constant_model(continuous_bin=0, discrete_value=0)
    observations_only = {"continuous_observations": [[0.0], [1.0]]}
    with pytest.raises(ValueError, match="episode 0: no action column"):
        action_prediction_metrics(model, processor, [observations_only], progress=False)
    with pytest.raises(ValueError, match="at least one episode"):
        action_prediction_metrics(model, processor, [], progress=False)
    discrete = {"continuous_observations": [[0.0], [1.0]], "discrete_actions": [0, 5]}
    with pytest.raises(ValueError, match="needs exactly 'continuous_actions'"):
        action_prediction_metrics(model, processor, [discrete], BOX, progress=False)
    with pytest.raises(ValueError, match=r"value 5 in slot 0 is outside \[0, 4\)"):
        action_prediction_metrics(model, processor, [discrete], {"type": "Discrete", "n": 4}, progress=False)
    three = {"continuous_observations": [[0.0]], "continuous_actions": [[0.0, 0.0, 0.0]]}
    with pytest.raises(ValueError, match="3 values per timestep, but the action space has 2 dimensions"):
        action_prediction_metrics(model, processor, [three], BOX, progress=False)
    outside = {"continuous_observations": [[0.0]], "continuous_actions": [[0.0, 3.0]]}
    with pytest.raises(ValueError, match=r"must be finite and in \[-1, 1\]"):
        action_prediction_metrics(model, processor, [outside], progress=False)
    mixed = [{"continuous_observations": [[0.0]], "continuous_actions": [[0.0, 0.0]]}, three]
    with pytest.raises(ValueError, match="episode 1: action values per timestep"):
        action_prediction_metrics(model, processor, mixed, progress=False)
    long_step = {"continuous_observations": [np.zeros(300).tolist()], "continuous_actions": [[0.0, 0.0]]}
    with pytest.raises(ValueError, match="more than the context of 256 tokens"):
        action_prediction_metrics(model, processor, [long_step], progress=False)
    with pytest.raises(ValueError, match="longer than the model's max_position_embeddings=256"):
        action_prediction_metrics(model, processor, [three], context_length=512, progress=False)
    with pytest.raises(ValueError, match="type 'Tuple' is not supported"):
        action_space_from_description({"type": "Tuple"})
    for name in ("batch_size", "stride", "context_length"):
        with pytest.raises(ValueError, match=f"{name}=0 is invalid: expected an integer >= 1"):
            action_prediction_metrics(model, processor, [three], progress=False, **{name: 0})
    with pytest.raises(ValueError, match="stride=-4 is invalid"):
        action_prediction_metrics(model, processor, [three], stride=-4, progress=False)


def test_table_flags_accuracies_on_few_tokens():
    def row(timesteps, tokens, tokens_right, actions_right):
        return {"episodes": 1, "timesteps": timesteps, "action_tokens": tokens, "discrete_tokens": tokens,
                "token_accuracy": tokens_right / tokens, "action_accuracy": actions_right / timesteps, "mae": None,
                "rmse": None,
                "units": None, "in_training_data": False}

    results = {"held_out": 1, "context_length": 64, "stride": 32,
               "tasks": {"short": row(1, 1, 0, 0), "few": row(6, 12, 6, 3), "enough": row(20, 20, 5, 5)}}
    lines = offline_table(results).splitlines()
    assert lines[2] == "| short | 1 | 1 | 1 | 0.0% (1 token) | 0.0% (1 action) | n/a | n/a | n/a |"
    assert lines[3] == "| few | 1 | 6 | 12 | 50.0% (12 tokens) | 50.0% (6 actions) | n/a | n/a | n/a |"
    assert lines[4] == "| enough | 1 | 20 | 20 | 25.0% | 25.0% | n/a | n/a | n/a |"  # 20 or more: no count
    assert "fewer than 20 scored action tokens (or actions): such figures are not meaningful" in lines[-1]


# ---------------------------------------------------------------------------- directories and the CLI
def test_directory_without_manifest_and_the_cli(tmp_path, processor, capsys):
    from datasets import Dataset

    model = constant_model(continuous_bin=768, discrete_value=3)
    data = tmp_path / "data"
    rows = [continuous_episode(5, seed) for seed in range(3)]
    Dataset.from_list(rows).save_to_disk(str(data / "episodes" / "box"))
    results = offline_metrics_for_directory(model, processor, str(data), held_out=1, progress=False)
    assert list(results["tasks"]) == ["box"]
    entry = results["tasks"]["box"]
    assert entry["episodes"] == 1 and entry["in_training_data"] is False and entry["units"] == "normalized"
    assert entry["mae"] == pytest.approx(action_prediction_metrics(model, processor, rows[-1:], progress=False)["mae"])
    assert offline_metrics_for_directory(model, processor, str(data), held_out=3,
                                         progress=False)["tasks"]["box"]["in_training_data"] is True
    with pytest.raises(ValueError, match="task 'nope': no dataset"):
        offline_metrics_for_directory(model, processor, str(data), tasks=["nope"], progress=False)
    with pytest.raises(FileNotFoundError, match="no episodes/ folder"):
        offline_metrics_for_directory(model, processor, str(tmp_path), progress=False)

    # with a manifest (as `collect` writes it): Box units, through the command line and a saved model
    (data / "manifest.json").write_text(json.dumps({"tasks": {"box": {"domain": "test", "action_space": BOX}}}))
    saved = tmp_path / "model"
    model.save_pretrained(saved)
    processor.save_pretrained(saved)
    from modeling_gato.cli.commands import main

    assert main(["offline", "--model", str(saved), "--data", str(data), "--held-out", "2",
                 "--output-dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| box | 2 | 10 | 20 |" in printed and "| box |" in printed
    written = json.loads((tmp_path / "out" / "offline_results.json").read_text())
    expected = action_prediction_metrics(model, processor, rows[-2:], BOX, progress=False)
    assert written["tasks"]["box"]["mae"] == pytest.approx(expected["mae"]) and written["tasks"]["box"]["units"] == "box"
    assert (tmp_path / "out" / "offline_results.md").read_text().startswith("| task |")


def test_converted_minari_directory(tmp_path, processor):
    """A user's own data: a Minari dataset recorded here (Pendulum, Box [-2, 2]) and converted."""
    pytest.importorskip("minari")
    from minari_testing import record_random_minari_dataset

    from conversion.convert_minari_dataset import convert

    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp_path / "minari")
    try:
        record_random_minari_dataset("Pendulum-v1", "pendulum/random-v0", 3, env_kwargs={"max_episode_steps": 20})
        convert(["pendulum/random-v0"], str(tmp_path / "converted"), tasks=["pendulum"], progress=False)
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    model = constant_model(continuous_bin=768, discrete_value=3)  # always predicts 0.5009765625 -> torque 1.00195...
    results = offline_metrics_for_directory(model, processor, str(tmp_path / "converted"), held_out=1, progress=False)
    entry = results["tasks"]["pendulum"]
    assert entry["units"] == "box" and entry["timesteps"] == 20 and entry["action_tokens"] == 20
    from datasets import load_from_disk

    stored = np.asarray(load_from_disk(str(tmp_path / "converted" / "episodes" / "pendulum"))[-1]["continuous_actions"])
    torques = -2 + (stored.reshape(-1) + 1) / 2 * 4  # the recorded torques (within float32)
    assert entry["mae"] == pytest.approx(np.abs(1.001953125 - torques).mean(), abs=1e-5)
    assert action_space_from_description({"type": "Box", "shape": [1], "low": [-2.0], "high": [2.0]}).low.tolist() == [-2.0]
