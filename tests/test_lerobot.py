"""conversion/lerobot_dataset.py: a LeRobot (v3.0) dataset recorded here with LeRobot's own API -> our episode
directory, then trained for a few steps and scored with `offline`.

Skipped unless `lerobot` imports with a torchvision that works beside the installed torch and a video decoder that
LeRobot can use (torchcodec with FFmpeg's libraries, or torchvision's VideoReader): see the README's
"LeRobot datasets" section.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("lerobot")
try:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.video_utils import get_safe_default_codec
except Exception as error:  # e.g. PyPI's torchvision beside a CPU torch: "operator torchvision::nms does not exist"
    pytest.skip(f"lerobot does not import here: {type(error).__name__}: {error}", allow_module_level=True)


def _decoder_reason() -> str | None:
    if get_safe_default_codec() == "torchcodec":
        try:
            from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg's libraries)
        except Exception as error:
            return f"torchcodec does not load: {type(error).__name__}: {error}"
        return None
    import torchvision.io

    if not hasattr(torchvision.io, "VideoReader"):
        return "no video decoder for LeRobot: no torchcodec, and this torchvision has no io.VideoReader"
    return None


if _decoder_reason():
    pytest.skip(_decoder_reason(), allow_module_level=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENGTHS = (6, 7, 8, 9)
TASKS = ("pick up the red cube", "push the cube to the left")
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def _record(root: str) -> dict:
    features = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["j0", "j1", "j2", "gripper"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["dx", "dy"]},
        "observation.images.front": {"dtype": "video", "shape": (24, 32, 3),
                                     "names": ["height", "width", "channels"]},
    }
    dataset = LeRobotDataset.create("local/tiny-robot", fps=10, features=features, root=root, robot_type="toy",
                                    use_videos=True)
    rng = np.random.default_rng(0)
    recorded = {"states": [], "actions": [], "colors": []}
    for episode, length in enumerate(LENGTHS):
        states = rng.normal(size=(length, 4)).astype(np.float32)
        actions = rng.uniform(-3, 5, size=(length, 2)).astype(np.float32)
        colors = [COLORS[(episode + t) % len(COLORS)] for t in range(length)]
        for t in range(length):
            frame = np.empty((24, 32, 3), np.uint8)
            frame[:] = colors[t]
            dataset.add_frame({"observation.state": states[t], "action": actions[t],
                               "observation.images.front": frame, "task": TASKS[episode % 2]})
        dataset.save_episode()
        recorded["states"].append(states)
        recorded["actions"].append(actions)
        recorded["colors"].append(colors)
    dataset.finalize()
    return recorded


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from conversion.lerobot_dataset import convert

    base = tmp_path_factory.mktemp("lerobot")
    root = str(base / "tiny-robot")
    recorded = _record(root)
    out = str(base / "converted")
    manifest = convert([root], out, progress=False)
    return {"base": base, "root": root, "out": out, "manifest": manifest, "recorded": recorded}


def test_lerobot_conversion(converted):
    from datasets import load_from_disk

    from conversion.lerobot_dataset import denormalize_actions

    out, recorded = converted["out"], converted["recorded"]
    assert sorted(os.listdir(out)) == ["episodes", "manifest.json"]
    assert not [p for p in os.listdir(converted["base"]) if ".partial-" in p]
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    info = manifest["tasks"]["tiny-robot"]
    assert info["episodes"] == len(LENGTHS) and info["steps"] == sum(LENGTHS)
    assert info["camera"] == "observation.images.front" and info["image_size"] == [32, 32]  # 24x32 -> 16s
    assert info["camera_size"] == [24, 32]
    assert info["observation_layout"] == [{"key": "observation.state", "start": 0, "size": 4,
                                           "names": ["j0", "j1", "j2", "gripper"]}]
    box = info["action_space"]
    all_actions = np.concatenate(recorded["actions"]).astype(np.float64)
    assert box["type"] == "Box" and box["shape"] == [2]
    np.testing.assert_allclose(box["low"], all_actions.min(0), rtol=1e-6)  # LeRobot's own stats
    np.testing.assert_allclose(box["high"], all_actions.max(0), rtol=1e-6)

    rows = load_from_disk(os.path.join(out, "episodes", "tiny-robot"))
    assert [len(r["rewards"]) for r in rows] == list(LENGTHS)  # episode boundaries kept
    for number, row in enumerate(rows):
        np.testing.assert_allclose(row["continuous_observations"], recorded["states"][number], rtol=1e-6)
        stored = np.asarray(row["continuous_actions"])
        assert np.abs(stored).max() <= 1.0
        back = denormalize_actions(stored, np.asarray(box["low"]), np.asarray(box["high"]))
        np.testing.assert_allclose(back, recorded["actions"][number], rtol=1e-5, atol=1e-5)  # reversible
        assert row["text_observations"] == [TASKS[number % 2]] * LENGTHS[number]
        assert row["rewards"] == [0.0] * LENGTHS[number]
        images = [np.asarray(image) for image in row["image_observations"]]
        assert all(image.shape == (32, 32, 3) and image.dtype == np.uint8 for image in images)
        means = np.stack([image.reshape(-1, 3).mean(0) for image in images])
        np.testing.assert_allclose(means, np.asarray(recorded["colors"][number], np.float64), atol=25)  # lossy video


def test_image_sizing_and_action_mapping():
    from conversion.lerobot_dataset import normalize_actions, parse_image_size, patch_multiple_size

    assert patch_multiple_size(480, 640) == (96, 128)
    assert patch_multiple_size(24, 32) == (32, 32)
    assert patch_multiple_size(96, 96) == (96, 96)
    assert patch_multiple_size(4, 300) == (16, 128)
    assert parse_image_size("64x80") == (64, 80)
    with pytest.raises(ValueError, match="multiples of 16"):
        parse_image_size("60x80")
    values, clipped = normalize_actions(np.array([[0.0, 1.0, 7.0]]), np.array([-1.0, 1.0, 0.0]),
                                        np.array([1.0, 1.0, 5.0]))
    assert values.tolist() == [[0.0, 0.0, 1.0]] and clipped == 1  # constant dimension -> 0; 7 > max: clipped


def test_options_and_atomic_output(converted, tmp_path):
    from datasets import load_from_disk

    from conversion.lerobot_dataset import convert

    with pytest.raises(FileExistsError):
        convert([converted["root"]], converted["out"], progress=False)
    manifest = convert([converted["root"]], str(tmp_path / "two"), tasks=["robot"], max_episodes=2, camera="none",
                       progress=False)
    info = manifest["tasks"]["robot"]
    assert info["episodes"] == 2 and info["source_episode_indices"] == [0, 1] and info["camera"] is None
    assert "image_observations" not in load_from_disk(str(tmp_path / "two" / "episodes" / "robot")).column_names
    sized = convert([converted["root"]], str(tmp_path / "sized"), image_size=(16, 48), max_episodes=1, progress=False)
    image = load_from_disk(str(tmp_path / "sized" / "episodes" / "tiny-robot"))[0]["image_observations"][0]
    assert np.asarray(image).shape == (16, 48, 3) and sized["tasks"]["tiny-robot"]["image_size"] == [16, 48]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        convert([str(tmp_path / "empty")], str(tmp_path / "bad"), progress=False)
    with pytest.raises(ValueError, match="not a camera"):
        convert([converted["root"]], str(tmp_path / "bad"), camera="observation.images.wrist", progress=False)
    assert not (tmp_path / "bad").exists() and not [p for p in os.listdir(tmp_path) if ".partial-" in p]


def test_converted_lerobot_trains_and_scores_offline(converted, tmp_path, capsys):
    from modeling_gato.cli.commands import main
    from modeling_gato.training.train import TrainConfig, train

    model_dir = str(tmp_path / "model")
    summary = train(TrainConfig(data=[converted["out"]], output_dir=model_dir, variant="tiny", context_length=128,
                                max_steps=3, batch_size=2, eval_episodes=1, eval_samples_per_task=1, eval_steps=1000,
                                save_steps=1000, logging_steps=1, warmup_steps=1))
    assert summary["global_step"] == 3 and math.isfinite(summary["train_loss"])
    assert main(["offline", "--model", model_dir, "--data", converted["out"], "--held-out", "1",
                 "--context-length", "128", "--output-dir", str(tmp_path / "scores")]) == 0
    written = json.loads((tmp_path / "scores" / "offline_results.json").read_text())
    entry = written["tasks"]["tiny-robot"]
    assert entry["units"] == "box" and entry["timesteps"] == LENGTHS[-1] and entry["action_tokens"] == 2 * LENGTHS[-1]
    assert math.isfinite(entry["mae"]) and entry["in_training_data"] is False


def test_cli_help():
    result = subprocess.run([sys.executable, "-m", "conversion.lerobot_dataset", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--output-dir" in result.stdout and "--image-size" in result.stdout
