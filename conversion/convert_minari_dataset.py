"""Minari datasets (Farama's offline-RL format, successor of D4RL) -> our episode directory.

    python -m conversion.convert_minari_dataset cartpole/expert-v0 --output-dir data/minari
    python -m conversion.convert_minari_dataset /path/to/<dataset>/ --output-dir data/minari --task CartPole-v1

Writes the layout `python -m modeling_gato collect` writes (`episodes/<task>/` + `manifest.json` + `scores.json`
when the dataset has reference scores), so `train --data` takes it as it is:

- one row per Minari episode; observations are the first T of Minari's T+1 (the last one has no action);
- observation spaces go to SPEC columns by the same rules as our environments (`Dict` keys in lexicographic order;
  uint8 rank-3 `Box` -> `image_observations`, other `Box` -> `continuous_observations`, `Discrete` /
  `MultiDiscrete` / `MultiBinary` -> `discrete_observations`, `Text` -> `text_observations`);
- actions: `Discrete` -> index (minus `start`), `MultiDiscrete` -> indices, `Box` -> mapped from its bounds to
  [-1, 1] (SPEC section 2; unbounded dimensions are clipped to [-1, 1]);
- `ref_max_score` / `ref_min_score` (Minari's expert / random references) -> `scores.json`.

Episodes are read one at a time and written in Arrow batches (never the whole source in memory); the output
is written beside `--output-dir` and renamed into place at the end.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ._common import add_common_arguments, atomic_directory, episode_features, score_entry, write_manifest, write_rows


def open_dataset(source: str):
    """A `MinariDataset` from a dataset id (looked up in MINARI_DATASETS_PATH, local only) or a dataset directory."""
    import minari
    from minari.dataset.minari_dataset import MinariDataset

    if os.path.isdir(source):
        data = os.path.join(source, "data")
        return MinariDataset(data if os.path.isdir(data) else source)
    try:
        return minari.load_dataset(source)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Minari dataset {source!r} was not found locally (MINARI_DATASETS_PATH="
            f"{os.environ.get('MINARI_DATASETS_PATH', '~/.minari/datasets')}). Download it first with "
            f"`minari download {source}`, or pass the dataset's directory."
        ) from error


def _space_name(space) -> str:
    return type(space).__name__


def _leaves(values: Any, space, key: str = "") -> list[tuple[str, Any, Any]]:
    if _space_name(space) == "Dict":
        out = []
        for child in sorted(space.spaces):
            out += _leaves(values[child], space.spaces[child], f"{key}.{child}" if key else child)
        return out
    if _space_name(space) == "Tuple":
        raise ValueError(f"observation {key or 'observation'!r}: Tuple spaces are not supported; expected Box, "
                         "Discrete, MultiDiscrete, MultiBinary, Text or a Dict of those.")
    return [(key or "observation", values, space)]


def observation_columns(observations: Any, space, steps: int) -> dict[str, list]:
    """Minari's batched observations (leading axis T or T+1) -> SPEC columns of `steps` timesteps."""
    from modeling_gato.envs.tasks import column_of_space

    columns: dict[str, list] = {}
    numeric: dict[str, list[np.ndarray]] = {}
    for key, values, leaf in _leaves(observations, space):
        column = column_of_space(leaf, key)
        if column == "image_observations":
            if column in columns:
                raise ValueError(f"observation {key!r}: only one image per timestep is supported.")
            columns[column] = [np.asarray(v, np.uint8) for v in np.asarray(values)[:steps]]
        elif column == "text_observations":
            texts = [str(v) for v in list(values)[:steps]]
            columns[column] = [f"{a} {b}" for a, b in zip(columns[column], texts)] if column in columns else texts
        elif column == "discrete_observations":
            array = np.asarray(values)[:steps].reshape(steps, -1).astype(np.int64)
            start = np.asarray(getattr(leaf, "start", 0)).reshape(-1)
            numeric.setdefault(column, []).append(array - start)
        else:
            numeric.setdefault(column, []).append(np.asarray(values, np.float32)[:steps].reshape(steps, -1))
    for column, parts in numeric.items():
        columns[column] = np.concatenate(parts, axis=1).tolist()
    return columns


def action_column(actions: Any, space, steps: int) -> tuple[str, list, int]:
    """Minari's batched actions -> (column, per-step values, number of values clipped into [-1, 1])."""
    name = _space_name(space)
    actions = np.asarray(actions)[:steps]
    if name == "Discrete":
        return "discrete_actions", (actions.reshape(steps).astype(np.int64) - int(space.start)).tolist(), 0
    if name == "MultiDiscrete":
        start = np.asarray(space.start).reshape(-1)
        return "discrete_actions", (actions.reshape(steps, -1).astype(np.int64) - start).tolist(), 0
    if name == "Box":
        low = np.asarray(space.low, np.float64).reshape(-1)
        high = np.asarray(space.high, np.float64).reshape(-1)
        values = actions.reshape(steps, -1).astype(np.float64)
        bounded = np.isfinite(low) & np.isfinite(high)
        scaled = np.where(bounded, 2 * (values - low) / np.where(bounded, high - low, 1.0) - 1, values)
        clipped = int(np.sum(np.abs(scaled) > 1 + 1e-6))
        return "continuous_actions", np.clip(scaled, -1, 1).astype(np.float32).tolist(), clipped
    raise ValueError(f"action space of type {name} is not supported: expected Discrete, MultiDiscrete or Box.")


def episode_row(episode, observation_space, action_space, task: str) -> tuple[dict, int]:
    steps = len(episode.rewards)
    row: dict[str, Any] = {"task": task}
    row.update(observation_columns(episode.observations, observation_space, steps))
    column, values, clipped = action_column(episode.actions, action_space, steps)
    row[column] = values
    row["rewards"] = np.asarray(episode.rewards, np.float32).tolist()
    return row, clipped


def default_task_name(dataset) -> str:
    spec = dataset.env_spec
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset.spec.dataset_id if hasattr(dataset, "spec") else dataset.id)


def _column_kinds(dataset) -> dict[str, str]:
    from modeling_gato.envs.tasks import column_of_space

    kinds: dict[str, str] = {}

    def walk(space, key=""):
        if _space_name(space) == "Dict":
            for child in sorted(space.spaces):
                walk(space.spaces[child], f"{key}.{child}" if key else child)
        else:
            kinds[column_of_space(space, key or "observation")] = "list"

    walk(dataset.observation_space)
    name = _space_name(dataset.action_space)
    if name == "Discrete":
        kinds["discrete_actions"] = "scalar"
    elif name == "MultiDiscrete":
        kinds["discrete_actions"] = "list"
    else:
        kinds["continuous_actions"] = "list"
    return kinds


def convert(
    sources: list[str],
    output_dir: str,
    tasks: list[str] | None = None,
    domain: str = "minari",
    max_episodes: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert Minari datasets (ids or directories) into one episode directory; returns the manifest."""
    from modeling_gato.envs.tasks import describe_action_space

    if tasks is not None and len(tasks) != len(sources):
        raise ValueError(f"tasks: got {len(tasks)} names for {len(sources)} datasets; give one per dataset.")
    manifest: dict[str, Any] = {"source": "minari", "tasks": {}}
    scores: dict[str, Any] = {}
    with atomic_directory(output_dir, overwrite) as partial:
        for index, source in enumerate(sources):
            dataset = open_dataset(source)
            task = tasks[index] if tasks else default_task_name(dataset)
            if task in manifest["tasks"]:
                raise ValueError(f"two datasets convert to the task {task!r}: name them with --task.")
            total = len(dataset) if max_episodes is None else min(max_episodes, len(dataset))
            stats = {"steps": 0, "clipped": 0}

            def rows(dataset=dataset, task=task, total=total, stats=stats) -> Iterator[dict]:
                bar = tqdm(total=total, desc=f"{task} (minari)", unit="episode", disable=not progress)
                for episode_index in dataset.episode_indices[:total]:
                    episode = next(dataset.iterate_episodes([int(episode_index)]))  # one episode in memory
                    row, clipped = episode_row(episode, dataset.observation_space, dataset.action_space, task)
                    stats["steps"] += len(row["rewards"])
                    stats["clipped"] += clipped
                    bar.update(1)
                    yield row
                bar.close()

            features = episode_features(_column_kinds(dataset))
            count = write_rows(rows, features, os.path.join(partial, "episodes", task), partial)
            metadata = dict(dataset.storage.metadata)
            env_spec = dataset.env_spec
            kinds = _column_kinds(dataset)
            manifest["tasks"][task] = {
                "domain": domain,
                "env_id": getattr(env_spec, "id", None),
                "make_kwargs": dict(getattr(env_spec, "kwargs", {}) or {}),
                "expert": metadata.get("algorithm_name") or "minari dataset",
                "episodes": count,
                "steps": stats["steps"],
                "observation_columns": sorted(k for k in kinds if k.endswith("_observations")),
                "action_space": describe_action_space(dataset.action_space),
                "source": {"minari_dataset_id": metadata.get("dataset_id"), "path_or_id": source,
                           "minari_version": metadata.get("minari_version")},
                "clipped_action_values": stats["clipped"],
            }
            if metadata.get("ref_max_score") is not None or metadata.get("ref_min_score") is not None:
                scores[task] = score_entry(domain, metadata.get("ref_max_score"), metadata.get("ref_min_score"),
                                           source=f"minari ref_max_score / ref_min_score of {metadata.get('dataset_id')}")
        write_manifest(partial, manifest, scores)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.convert_minari_dataset",
        description="Convert Minari datasets (ids in MINARI_DATASETS_PATH, or dataset directories) into "
        "modeling_gato's episode directory (episodes/<task>/, manifest.json, scores.json).",
    )
    parser.add_argument("sources", nargs="+", help="Minari dataset ids (e.g. mujoco/hopper/expert-v0) or directories")
    parser.add_argument("--task", dest="tasks", action="append", default=None,
                        help="task name per dataset, in order (default: the dataset's environment id)")
    parser.add_argument("--domain", default="minari", help="domain recorded in the manifest (task weights use it)")
    parser.add_argument("--max-episodes", type=int, default=None, help="convert at most this many episodes per dataset")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    manifest = convert(args.sources, args.output_dir, args.tasks, args.domain, args.max_episodes, args.overwrite,
                       progress=not args.no_progress)
    for task, info in manifest["tasks"].items():
        print(f"{task}: {info['episodes']} episodes, {info['steps']} steps, columns "
              f"{info['observation_columns']} -> {info['action_space']['type']} actions")
    print(f"wrote {args.output_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
