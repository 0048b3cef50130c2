"""LeRobot datasets (`LeRobotDataset`, codebase v3.0: parquet frames, mp4 videos, `meta/`) -> our episode directory.

    python -m conversion.lerobot_dataset /path/to/<dataset root> --output-dir data/lerobot
    python -m conversion.lerobot_dataset lerobot/pusht --output-dir data/pusht --max-episodes 50

The dataset is opened with LeRobot's own `LeRobotDataset` (the `lerobot` package, an optional extra: see the
README's "LeRobot datasets" section for an install that keeps this project's torch). A directory holding
`meta/info.json` is read where it lies; anything else is a Hub repo id, fetched by LeRobot into its cache
(`HF_LEROBOT_HOME`; only the episodes asked for with `--max-episodes`). The output is the layout
`python -m modeling_gato collect` writes (`episodes/<task>/` + `manifest.json`), so `train --data` and `offline
--data` take it as it is:

- one row per LeRobot episode (its frames in `frame_index` order): episode boundaries are kept;
- `continuous_observations`: every float feature except the action, in the dataset's feature order
  (`observation.state`, `observation.environment_state`, ...), flattened and concatenated; their slices are in
  the manifest (`observation_layout`). Values are stored as recorded (the tokenizer mu-law-encodes them);
- `image_observations`: one camera (`--camera`, default the first camera of `meta/info.json`), decoded from the
  videos with LeRobot's decoder (`decode_video_frames`; frames stored as `image` features are read from the
  parquet files), then resized with PIL bilinear to a multiple of the 16-pixel patch: by default the longer side is
  scaled down to at most 128 pixels keeping the aspect ratio, and each side is rounded to the nearest multiple of
  16 (at least 16): 480x640 -> 96x128 (48 patches a frame), 24x32 -> 32x32. `--image-size HxW` sets it;
- `text_observations`: the frame's task string (`meta/tasks`), every timestep;
- `continuous_actions`: `action` mapped to [-1, 1] per dimension from the dataset's own statistics
  (`meta/stats.json` min / max): `v = 2 * (a - min) / (max - min) - 1` (a constant dimension -> 0). The manifest's
  `action_space` is a `Box(low=min, high=max)`, so acting decodes `a = min + (v + 1) / 2 * (max - min)` (what
  `envs.tasks` and `evaluation.offline` do for any Box; `offline` then reports errors in the robot's own units);
- `rewards`: `next.reward` when the dataset has it, else 0.0.

Frames are read episode by episode from LeRobot's memory-mapped Arrow table and videos are decoded in chunks of
frames, so a large dataset is never held in memory; rows are written in Arrow batches beside `--output-dir` and
renamed into place at the end (nothing is left behind on failure).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ._common import add_common_arguments, atomic_directory, episode_features, write_manifest, write_rows

PATCH = 16  # GatoImageProcessor's default patch side
DEFAULT_MAX_SIDE = 128
DECODE_CHUNK = 32  # video frames decoded at once (float32 CHW in LeRobot's decoder)
# LeRobot's bookkeeping columns: not observations
BOOKKEEPING = {"timestamp", "frame_index", "episode_index", "index", "task_index", "subtask_index"}


def _require_lerobot():
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    except Exception as error:  # ImportError, or torchvision's "operator torchvision::nms does not exist"
        raise ImportError(
            "conversion.lerobot_dataset needs the `lerobot` package and a torchvision that imports beside your torch "
            f"({type(error).__name__}: {error}). See the README's 'LeRobot datasets' section for an install route."
        ) from error
    return LeRobotDataset, LeRobotDatasetMetadata


def _repo_and_root(source: str) -> tuple[str, str | None]:
    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "meta", "info.json")):
            raise FileNotFoundError(f"{source}: not a LeRobot dataset root (no meta/info.json).")
        return f"local/{os.path.basename(os.path.normpath(source))}", source
    return source, None


def open_dataset(source: str, max_episodes: int | None = None, revision: str | None = None,
                 video_backend: str | None = None):
    """A `LeRobotDataset` from a dataset root or a Hub repo id (first `max_episodes` episodes only, if given)."""
    LeRobotDataset, LeRobotDatasetMetadata = _require_lerobot()
    repo_id, root = _repo_and_root(source)
    episodes = None
    if max_episodes is not None:
        if max_episodes < 1:
            raise ValueError(f"max_episodes={max_episodes} is invalid: expected at least 1.")
        meta = LeRobotDatasetMetadata(repo_id, root=root, revision=revision)
        if max_episodes < meta.total_episodes:
            episodes = list(range(max_episodes))
    return LeRobotDataset(repo_id, root=root, episodes=episodes, revision=revision, video_backend=video_backend)


def patch_multiple_size(height: int, width: int, max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """The default stored size: longer side scaled down to `max_side` (aspect kept), each side rounded to 16s."""
    scale = min(1.0, max_side / max(height, width))
    return (max(PATCH, int(math.floor(height * scale / PATCH + 0.5)) * PATCH),
            max(PATCH, int(math.floor(width * scale / PATCH + 0.5)) * PATCH))


def parse_image_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) % PATCH or int(match[2]) % PATCH or not int(match[1]) or not int(match[2]):
        raise ValueError(f"image size {text!r} is invalid: expected HxW with multiples of {PATCH}, e.g. 96x128.")
    return int(match[1]), int(match[2])


def _to_uint8_hwc(frame: Any) -> np.ndarray:
    array = np.asarray(frame.numpy() if hasattr(frame, "numpy") else frame)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)  # LeRobot: [0, 1]
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def resize(frame: Any, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    array = _to_uint8_hwc(frame)
    if array.shape[:2] == tuple(size):
        return array
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.BILINEAR))


def plan(meta, camera: str | None = "auto", action_key: str = "action") -> dict[str, Any]:
    """Which LeRobot features go where (from `meta.features`)."""
    features = meta.features
    if action_key not in features:
        raise ValueError(f"the dataset has no {action_key!r} feature; features: {sorted(features)}.")
    cameras = list(meta.camera_keys)
    if camera == "auto":
        camera = cameras[0] if cameras else None
    elif camera in (None, "", "none"):
        camera = None
    elif camera not in cameras:
        raise ValueError(f"camera {camera!r} is not a camera of the dataset; cameras: {cameras}.")
    layout, skipped, start = [], [], 0
    for key, feature in features.items():
        if key in BOOKKEEPING or key == action_key or key == "next.reward" or key in cameras:
            continue
        if str(feature["dtype"]).startswith("float"):
            size = int(np.prod(feature["shape"])) if feature["shape"] else 1
            layout.append({"key": key, "start": start, "size": size, "names": feature.get("names")})
            start += size
        else:
            skipped.append(key)
    return {"camera": camera, "cameras": cameras, "observation_layout": layout, "skipped_features": skipped,
            "action_key": action_key, "reward_key": "next.reward" if "next.reward" in features else None}


def action_bounds(meta, action_key: str = "action") -> tuple[np.ndarray, np.ndarray]:
    stats = (meta.stats or {}).get(action_key) or {}
    if "min" not in stats or "max" not in stats:
        raise ValueError(f"meta/stats.json has no min/max for {action_key!r}: the [-1, 1] mapping needs them.")
    return (np.asarray(stats["min"], np.float64).reshape(-1), np.asarray(stats["max"], np.float64).reshape(-1))


def normalize_actions(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, int]:
    """Actions -> [-1, 1] by the min/max statistics; returns the values and how many were clipped."""
    span = high - low
    varying = span > 0
    scaled = np.where(varying, 2 * (actions - low) / np.where(varying, span, 1.0) - 1, 0.0)
    clipped = int(np.sum(np.abs(scaled) > 1 + 1e-6))
    return np.clip(scaled, -1, 1).astype(np.float32), clipped


def denormalize_actions(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The inverse of `normalize_actions` (what acting does with the manifest's Box)."""
    return low + (np.asarray(values, np.float64) + 1) / 2 * (high - low)


def _frames_in_episodes(dataset, batch_size: int = 256) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(episode index, its frames as column arrays), one episode at a time, from LeRobot's memory-mapped table."""
    table = dataset.hf_dataset.with_format("numpy")
    current, parts = None, []

    def flush():
        columns = {key: np.concatenate([p[key] for p in parts]) if not isinstance(parts[0][key], list)
                   else [v for p in parts for v in p[key]] for key in parts[0]}
        order = np.argsort(columns["frame_index"], kind="stable")
        return {key: (value[order] if isinstance(value, np.ndarray) else [value[i] for i in order])
                for key, value in columns.items()}

    for batch in table.iter(batch_size=batch_size):
        episodes = np.asarray(batch["episode_index"]).reshape(-1)
        cuts = np.flatnonzero(np.diff(episodes)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(episodes)]):
            piece = {key: (value[lo:hi] if isinstance(value, np.ndarray) else list(value[lo:hi]))
                     for key, value in batch.items()}
            episode = int(episodes[lo])
            if current is not None and episode != current:
                yield current, flush()
                parts = []
            current = episode
            parts.append(piece)
    if parts:
        yield current, flush()


class _VideoFrames:
    """Frames of one camera for one episode, decoded with LeRobot's decoder in chunks of timestamps."""

    def __init__(self, dataset, key: str):
        self.dataset, self.key = dataset, key
        self.backend = dataset.video_backend
        self.cache = None
        self.path = None
        if self.backend == "torchcodec":
            from lerobot.datasets.video_utils import VideoDecoderCache

            self.cache = VideoDecoderCache()

    def __call__(self, episode: int, timestamps: np.ndarray) -> Iterator[Any]:
        from lerobot.datasets.video_utils import decode_video_frames, decode_video_frames_torchcodec

        meta = self.dataset.meta
        offset = float(meta.episodes[episode][f"videos/{self.key}/from_timestamp"])
        path = str(self.dataset.root / meta.get_video_file_path(episode, self.key))
        if self.cache is not None and path != self.path:
            self.cache.clear()  # one open video file at a time
        self.path = path
        shifted = [offset + float(t) for t in timestamps]
        for start in range(0, len(shifted), DECODE_CHUNK):
            chunk = shifted[start:start + DECODE_CHUNK]
            if self.cache is not None:
                frames = decode_video_frames_torchcodec(path, chunk, self.dataset.tolerance_s, decoder_cache=self.cache)
            else:
                frames = decode_video_frames(path, chunk, self.dataset.tolerance_s, self.backend)
            yield from frames

    def close(self):
        if self.cache is not None:
            self.cache.clear()


def episode_row(frames: dict[str, Any], episode: int, dataset, layout: dict[str, Any], low: np.ndarray,
                high: np.ndarray, task: str, image_size: tuple[int, int] | None,
                video: _VideoFrames | None) -> tuple[dict, int]:
    steps = len(frames["frame_index"])
    row: dict[str, Any] = {"task": task}
    tasks = dataset.meta.tasks
    row["text_observations"] = [str(tasks.index[int(i)]) for i in np.asarray(frames["task_index"]).reshape(-1)]
    if layout["observation_layout"]:
        row["continuous_observations"] = np.concatenate(
            [np.asarray(frames[item["key"]], np.float32).reshape(steps, -1) for item in layout["observation_layout"]],
            axis=1).tolist()
    camera = layout["camera"]
    if camera is not None:
        if dataset.meta.features[camera]["dtype"] == "video":
            source = video(episode, np.asarray(frames["timestamp"], np.float64).reshape(-1))
        else:
            source = iter(frames[camera])
        row["image_observations"] = [resize(frame, image_size) for frame in source]
        if len(row["image_observations"]) != steps:
            raise ValueError(f"episode {episode}: {len(row['image_observations'])} frames of {camera} for {steps} steps.")
    actions = np.asarray(frames[layout["action_key"]], np.float64).reshape(steps, -1)
    row["continuous_actions"], clipped = normalize_actions(actions, low, high)
    row["continuous_actions"] = row["continuous_actions"].tolist()
    if layout["reward_key"]:
        row["rewards"] = np.asarray(frames[layout["reward_key"]], np.float32).reshape(steps).tolist()
    else:
        row["rewards"] = [0.0] * steps
    return row, clipped


def default_task_name(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.basename(os.path.normpath(source))) or "lerobot"


def convert(
    sources: list[str],
    output_dir: str,
    tasks: list[str] | None = None,
    domain: str = "lerobot",
    max_episodes: int | None = None,
    camera: str | None = "auto",
    image_size: tuple[int, int] | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    action_key: str = "action",
    revision: str | None = None,
    video_backend: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert LeRobot datasets (roots or Hub repo ids) into one episode directory; returns the manifest."""
    if tasks is not None and len(tasks) != len(sources):
        raise ValueError(f"tasks: got {len(tasks)} names for {len(sources)} datasets; give one per dataset.")
    manifest: dict[str, Any] = {"source": "lerobot", "tasks": {}}
    with atomic_directory(output_dir, overwrite) as partial:
        for index, source in enumerate(sources):
            dataset = open_dataset(source, max_episodes, revision, video_backend)
            meta = dataset.meta
            task = tasks[index] if tasks else default_task_name(source)
            if task in manifest["tasks"]:
                raise ValueError(f"two datasets convert to the task {task!r}: name them with --task.")
            layout = plan(meta, camera, action_key)
            low, high = action_bounds(meta, action_key)
            size, source_size = None, None
            if layout["camera"] is not None:
                shape = meta.features[layout["camera"]]["shape"]
                names = meta.features[layout["camera"]].get("names") or []
                h, w = (shape[1], shape[2]) if list(names)[:1] == ["channels"] else (shape[0], shape[1])
                size = tuple(image_size) if image_size else patch_multiple_size(int(h), int(w), max_side)
                source_size = [int(h), int(w)]
            video = _VideoFrames(dataset, layout["camera"]) if (
                layout["camera"] is not None and meta.features[layout["camera"]]["dtype"] == "video") else None
            stats = {"steps": 0, "clipped": 0, "episodes": []}
            total = dataset.num_episodes

            def rows(dataset=dataset, layout=layout, low=low, high=high, task=task, size=size, video=video,
                     stats=stats, total=total) -> Iterator[dict]:
                bar = tqdm(total=total, desc=f"{task} (lerobot)", unit="episode", disable=not progress)
                for episode, frames in _frames_in_episodes(dataset):
                    row, clipped = episode_row(frames, episode, dataset, layout, low, high, task, size, video)
                    stats["steps"] += len(row["rewards"])
                    stats["clipped"] += clipped
                    stats["episodes"].append(episode)
                    bar.update(1)
                    yield row
                bar.close()

            kinds = {"text_observations": "list", "continuous_actions": "list"}
            if layout["observation_layout"]:
                kinds["continuous_observations"] = "list"
            if layout["camera"] is not None:
                kinds["image_observations"] = "list"
            try:
                count = write_rows(rows, episode_features(kinds), os.path.join(partial, "episodes", task), partial)
            finally:
                if video is not None:
                    video.close()
            manifest["tasks"][task] = {
                "domain": domain,
                "env_id": None,
                "expert": "lerobot dataset",
                "episodes": count,
                "steps": stats["steps"],
                "observation_columns": sorted(k for k in kinds if k.endswith("_observations")),
                "action_space": {"type": "Box", "shape": [len(low)], "low": low.tolist(), "high": high.tolist()},
                "action_normalization": {
                    "method": "min-max from the dataset's meta/stats.json",
                    "feature": action_key, "names": meta.features[action_key].get("names"),
                    "to_stored": "v = 2 * (a - low) / (high - low) - 1, clipped to [-1, 1]; 0 where high == low",
                    "to_action": "a = low + (v + 1) / 2 * (high - low)",
                },
                "observation_layout": layout["observation_layout"],
                "camera": layout["camera"],
                "cameras": layout["cameras"],
                "image_size": list(size) if size else None,
                "camera_size": source_size,
                "text": "the frame's task string (meta/tasks)",
                "rewards": layout["reward_key"] or "none in the dataset: 0.0",
                "skipped_features": layout["skipped_features"],
                "fps": meta.fps,
                "robot_type": meta.robot_type,
                "source_episode_indices": stats["episodes"],
                "source": {"path_or_id": source, "repo_id": dataset.repo_id,
                           "codebase_version": meta.info.get("codebase_version"), "revision": revision},
                "clipped_action_values": stats["clipped"],
            }
        write_manifest(partial, manifest, None)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.lerobot_dataset",
        description="Convert LeRobot datasets (v3.0 roots, or Hub repo ids) into modeling_gato's episode directory "
        "(episodes/<task>/, manifest.json), read with LeRobot's own LeRobotDataset.",
    )
    parser.add_argument("sources", nargs="+", help="LeRobot dataset roots (holding meta/info.json) or Hub repo ids")
    parser.add_argument("--task", dest="tasks", action="append", default=None,
                        help="task name per dataset, in order (default: the root's folder name / the repo's name)")
    parser.add_argument("--domain", default="lerobot", help="domain recorded in the manifest (task weights use it)")
    parser.add_argument("--max-episodes", type=int, default=None, help="convert the first N episodes per dataset")
    parser.add_argument("--camera", default="auto",
                        help="camera feature for image_observations (default: the first camera; 'none': no images)")
    parser.add_argument("--image-size", type=parse_image_size, default=None,
                        help=f"HxW, multiples of {PATCH} (default: longer side down to --max-side, sides rounded to {PATCH}s)")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE, help="default sizing: longest side in pixels")
    parser.add_argument("--action-key", default="action", help="the action feature (default: action)")
    parser.add_argument("--revision", default=None, help="Hub revision (default: LeRobot's codebase version tag)")
    parser.add_argument("--video-backend", default=None, help="LeRobot's video decoder (default: LeRobot's choice)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    manifest = convert(args.sources, args.output_dir, args.tasks, args.domain, args.max_episodes, args.camera,
                       args.image_size, args.max_side, args.action_key, args.revision, args.video_backend,
                       args.overwrite, progress=not args.no_progress)
    for task, info in manifest["tasks"].items():
        print(f"{task}: {info['episodes']} episodes, {info['steps']} steps, columns {info['observation_columns']}, "
              f"camera {info['camera']} at {info['image_size']}, {info['action_space']['shape'][0]}-d actions")
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
