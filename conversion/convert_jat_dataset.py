"""JAT's dataset layout (jat-project/jat-dataset: one episode per row) -> our episode directory.

    python -m conversion.convert_jat_dataset jat-project/jat-dataset --config mujoco-ant --config babyai-go-to \\
        --output-dir data/jat --scores jat/eval/rl/scores_dict.json
    python -m conversion.convert_jat_dataset ./my-jat-rows --task metaworld-reach --output-dir data/jat

Sources: a Hub dataset id (read with `datasets` streaming, one `--config` per task), a directory written by
`save_to_disk` (memory-mapped), or parquet files. Output: the layout `python -m modeling_gato collect` writes.

Column mapping (JAT's names are SPEC's names, so most columns pass through):
- `continuous_observations`, `discrete_observations`, `text_observations`, `discrete_actions`, `rewards`: as they are;
- `image_observations`: images with 1 or 3 channels as they are; 4-channel images (JAT's Atari frames are stacks of
  4 grey 84x84 frames) keep the most recent frame (`--stacked-frames last`, default) as a grey image;
- `continuous_actions`: clipped to [-1, 1] (SPEC: continuous actions are stored in [-1, 1]); the number of clipped
  values is recorded in the manifest (JAT's MuJoCo/Meta-World actions are in [-1, 1] except a few environments);
- text configs (`text`) -> `text/`; image-text configs (`images`, `text`) -> `captions/` (`image`, `text`).
- `--scores`: JAT's `scores_dict.json` (`{task: {"expert": {"mean"}, "random": {"mean"}}}`) -> `scores.json`.

Rows are read one at a time and written in Arrow batches; the output is written beside `--output-dir` and renamed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ._common import add_common_arguments, atomic_directory, episode_features, score_entry, write_manifest, write_rows

EPISODE_COLUMNS = ("text_observations", "image_observations", "discrete_observations", "continuous_observations",
                   "discrete_actions", "continuous_actions")


def open_rows(source: str, config: str | None = None, split: str = "train"):
    """An iterable of rows and its length (None when streaming) for a Hub id, a save_to_disk directory or parquet."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    if os.path.isdir(source) and any(os.path.exists(os.path.join(source, f))
                                     for f in ("state.json", "dataset_dict.json", "dataset_info.json")):
        dataset = load_from_disk(source)
        if isinstance(dataset, DatasetDict):
            dataset = dataset[split]
        assert isinstance(dataset, Dataset)
        return dataset, len(dataset)
    parquet = sorted(glob.glob(os.path.join(source, "**", "*.parquet"), recursive=True)) if os.path.isdir(source) \
        else ([source] if source.endswith(".parquet") else [])
    if parquet:
        return load_dataset("parquet", data_files=parquet, split="train", streaming=True), None
    return load_dataset(source, config, split=split, streaming=True), None


def _as_array(image) -> np.ndarray:
    return np.asarray(image)


def convert_image(image, stacked_frames: str = "last") -> np.ndarray:
    array = _as_array(image)
    if array.ndim == 3 and array.shape[-1] == 4:
        if stacked_frames != "last":
            raise ValueError(f"4-channel image: --stacked-frames {stacked_frames!r} is not supported; use 'last'.")
        array = array[..., -1]
    if array.dtype != np.uint8:
        array = np.clip(array * 255 if array.max(initial=0) <= 1.0 else array, 0, 255).astype(np.uint8)
    return array


def episode_row(row: dict, task: str, stacked_frames: str = "last") -> tuple[dict, int]:
    out: dict[str, Any] = {"task": task}
    clipped = 0
    for column in EPISODE_COLUMNS:
        values = row.get(column)
        if values is None:
            continue
        if column == "image_observations":
            out[column] = [convert_image(v, stacked_frames) for v in values]
        elif column == "continuous_actions":
            array = np.asarray(values, np.float32)
            clipped += int(np.sum(np.abs(array) > 1 + 1e-6))
            out[column] = np.clip(array, -1, 1).reshape(len(values), -1).tolist()
        elif column in ("continuous_observations", "discrete_observations"):
            out[column] = [np.asarray(v).reshape(-1).tolist() for v in values]
        else:
            out[column] = list(values)
    steps = max(len(v) for k, v in out.items() if k != "task")
    rewards = row.get("rewards")
    out["rewards"] = [float(r) for r in rewards] if rewards is not None else [0.0] * steps
    return out, clipped


def row_kind(row: dict) -> str:
    if any(row.get(c) is not None for c in EPISODE_COLUMNS):
        return "episodes"
    if row.get("images") is not None and row.get("text") is not None:
        return "captions"
    if row.get("text") is not None:
        return "text"
    raise ValueError(f"unknown JAT row with columns {sorted(row)}: expected episode columns {list(EPISODE_COLUMNS)}, "
                     "'text', or 'images' + 'text'.")


def load_scores(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def _reference(entry: dict, which: str) -> float | None:
    value = entry.get(which)
    if isinstance(value, dict):
        value = value.get("mean", value.get("mean_return"))
    return None if value is None else float(value)


def convert(
    sources: list[str],
    output_dir: str,
    configs: list[str] | None = None,
    tasks: list[str] | None = None,
    split: str = "train",
    scores_path: str | None = None,
    stacked_frames: str = "last",
    max_rows: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert JAT-layout sources into one directory; returns the manifest."""
    from datasets import Features, Image, Value

    # One (source, config) pair per task: one source with several configs, or several sources.
    if configs and len(sources) == 1:
        pairs = [(sources[0], c) for c in configs]
    elif configs and len(configs) != len(sources):
        raise ValueError(f"got {len(configs)} configs for {len(sources)} sources: give one source, or one per source.")
    else:
        pairs = list(zip(sources, configs or [None] * len(sources)))
    if tasks is not None and len(tasks) != len(pairs):
        raise ValueError(f"tasks: got {len(tasks)} names for {len(pairs)} datasets; give one per dataset.")
    references = load_scores(scores_path)
    manifest: dict[str, Any] = {"source": "jat", "tasks": {}}
    scores: dict[str, Any] = {}
    with atomic_directory(output_dir, overwrite) as partial:
        for index, (source, config) in enumerate(pairs):
            task = tasks[index] if tasks else (config or os.path.basename(os.path.normpath(source)))
            domain = task.split("-")[0] if "-" in task else "jat"
            rows, length = open_rows(source, config, split)
            first = next(iter(rows))
            kind = row_kind(first)
            total = length if max_rows is None else (max_rows if length is None else min(max_rows, length))
            stats = {"steps": 0, "clipped": 0}

            def generate(source=source, config=config, task=task, kind=kind, total=total, stats=stats) -> Iterator[dict]:
                rows, _ = open_rows(source, config, split)
                bar = tqdm(total=total, desc=f"{task} (jat)", unit="row", disable=not progress)
                for count, row in enumerate(rows):
                    if total is not None and count >= total:
                        break
                    bar.update(1)
                    if kind == "episodes":
                        out, clipped = episode_row(row, task, stacked_frames)
                        stats["steps"] += len(out["rewards"])
                        stats["clipped"] += clipped
                        yield out
                    elif kind == "captions":
                        images = row["images"] if isinstance(row["images"], list) else [row["images"]]
                        yield {"image": convert_image(images[0], stacked_frames), "text": row["text"], "task": task}
                    else:
                        yield {"text": row["text"]}
                bar.close()

            if kind == "episodes":
                sample, _ = episode_row(first, task, stacked_frames)
                kinds = {c: "list" for c in sample if c in EPISODE_COLUMNS}
                if "discrete_actions" in sample and not isinstance(sample["discrete_actions"][0], (list, tuple)):
                    kinds["discrete_actions"] = "scalar"
                count = write_rows(generate, episode_features(kinds), os.path.join(partial, "episodes", task), partial)
                action = "continuous_actions" if "continuous_actions" in sample else "discrete_actions"
                manifest["tasks"][task] = {
                    "domain": domain,
                    "env_id": config or task,
                    "expert": "jat dataset",
                    "episodes": count,
                    "steps": stats["steps"],
                    "observation_columns": sorted(c for c in kinds if c.endswith("_observations")),
                    "action_column": action,
                    "source": {"path_or_id": source, "config": config, "split": split},
                    "clipped_action_values": stats["clipped"],
                }
                if stats["clipped"]:
                    print(f"{task}: {stats['clipped']} continuous action values were outside [-1, 1] and were clipped.")
                if task in references:
                    entry = references[task]
                    scores[task] = score_entry(domain, _reference(entry, "expert"), _reference(entry, "random"),
                                               source=f"{scores_path}")
            else:
                name = kind  # text/ or captions/, as collect writes them
                if name in manifest:
                    raise ValueError(f"two {name} sources given; convert them into separate directories.")
                features = (Features({"text": Value("string")}) if kind == "text" else
                            Features({"image": Image(), "text": Value("string"), "task": Value("string")}))
                count = write_rows(generate, features, os.path.join(partial, name), partial)
                manifest[name] = {"rows": count, "source": f"jat {source} {config or ''}".strip()}
        write_manifest(partial, manifest, scores)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.convert_jat_dataset",
        description="Convert JAT-layout data (Hub id with --config, a save_to_disk directory, or parquet files) "
        "into modeling_gato's episode directory (episodes/<task>/, text/, captions/, manifest.json, scores.json).",
    )
    parser.add_argument("sources", nargs="+", help="a Hub dataset id (e.g. jat-project/jat-dataset), directories or parquet")
    parser.add_argument("--config", dest="configs", action="append", default=None,
                        help="dataset config (JAT task, e.g. atari-pong); repeat for several")
    parser.add_argument("--task", dest="tasks", action="append", default=None,
                        help="task name per dataset (default: the config, or the directory name)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--scores", default=None, help="JAT's scores_dict.json (expert / random mean returns per task)")
    parser.add_argument("--stacked-frames", default="last", choices=["last"],
                        help="4-channel (frame-stacked) images: keep the most recent frame")
    parser.add_argument("--max-rows", type=int, default=None, help="convert at most this many rows per dataset")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    manifest = convert(args.sources, args.output_dir, args.configs, args.tasks, args.split, args.scores,
                       args.stacked_frames, args.max_rows, args.overwrite, progress=not args.no_progress)
    for task, info in manifest["tasks"].items():
        print(f"{task}: {info['episodes']} episodes, {info['steps']} steps")
    for kind in ("text", "captions"):
        if kind in manifest:
            print(f"{kind}: {manifest[kind]['rows']} rows")
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
