"""Reference scores, measured: `python -m modeling_gato scores --data <collect dir>`.

`collect` records each task's references (expert and seeded uniform-random returns with provenance, see
`envs.references`) from the episodes it plays; `scores` re-measures them for an existing directory, with the
expert steps the directory recorded for each task (an explicit `--expert-steps` wins), and writes them into
`scores.json` (atomically), `manifest.json`, each `episodes/<task>` dataset's metadata (its
`DatasetInfo.description`, in `dataset_info.json`) and the dataset card (README.md). This is one of the two
commands that may train a stable-baselines3 expert (into the expert cache); evaluation only loads them.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from ..envs.experts import expert_cache_dir
from ..envs.references import (
    RANDOM_SEED_OFFSET,
    check_reference,
    dataset_description,
    expert_steps_for,
    reference_entry,
)
from ..envs.tasks import get_task, task_name
from ..hub.cards import write_dataset_card
from ..utils.arguments import data_directory, non_negative_int, positive_int
from ..utils.jobs import package_versions, write_json_atomic
from .collect import measure_policy, score_table


def measure_references(
    tasks: list[str],
    episodes: int = 20,
    seed: int = 0,
    cache_dir: str | None = None,
    expert_steps: int | Mapping[str, int | None] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Measure each task's expert (seeds `seed`...) and random policy (seeds `seed + 1e6`...) over `episodes`
    episodes each; returns {task: reference_entry}. Refuses (ValueError naming the task) where expert <= random.

    `expert_steps`: training steps of the stable-baselines3 experts, one number for all tasks or {task: steps}
    (a task left out, or None: its default)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    cache_dir = expert_cache_dir(cache_dir)
    versions = package_versions()
    references = {}
    for name in tasks:
        spec = get_task(name)
        steps = expert_steps.get(name) if isinstance(expert_steps, Mapping) else expert_steps
        _, expert = measure_policy(spec, "expert", episodes, seed, cache_dir, steps, progress=progress)
        _, random = measure_policy(spec, "random", episodes, seed + RANDOM_SEED_OFFSET, cache_dir, progress=progress)
        references[name] = reference_entry(spec, expert, random, steps, versions)
    return references


def write_references(data_dir: str, references: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Record `references` in a `collect` directory; returns the merged scores.

    Updates (each atomically) `scores.json` (other tasks' entries are kept), `manifest.json["scores"]`, the
    `dataset_info.json` description of each `episodes/<task>` dataset, and rewrites the dataset card.
    """
    manifest_path = os.path.join(data_dir, "manifest.json")
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(f"{data_dir} is not a `collect` directory: {manifest_path} is missing.")
    for task, entry in references.items():
        check_reference(task, entry["expert"]["mean_return"], entry["random"]["mean_return"])
    with open(manifest_path) as f:
        manifest = json.load(f)
    scores_path = os.path.join(data_dir, "scores.json")
    scores: dict[str, Any] = {}
    if os.path.exists(scores_path):
        with open(scores_path) as f:
            scores = json.load(f)
    scores.update(references)
    write_json_atomic(scores_path, scores)
    manifest["scores"] = scores
    write_json_atomic(manifest_path, manifest)
    for task, entry in references.items():
        info_path = os.path.join(data_dir, "episodes", task, "dataset_info.json")
        if os.path.exists(info_path):
            with open(info_path) as f:
                info = json.load(f)
            info["description"] = dataset_description(task, entry)
            write_json_atomic(info_path, info)
    write_dataset_card(data_dir, manifest, scores, manifest.get("command"))
    return scores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=data_directory, help="a directory written by `collect`")
    parser.add_argument("--tasks", nargs="*", type=task_name, default=None, help="tasks to measure (default: every task in --data)")
    parser.add_argument("--episodes", type=positive_int, default=20, help="episodes per policy (expert and random)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help=f"first expert seed; random uses seed + {RANDOM_SEED_OFFSET}")
    parser.add_argument("--cache-dir", "--expert-cache", dest="cache_dir", default=None,
                        help="where trained experts are cached (default $GATO_EXPERT_CACHE, else ~/.cache/modeling_gato/experts)")
    parser.add_argument("--expert-steps", type=positive_int, default=None,
                        help="training steps of the stable-baselines3 experts (default: per task, what --data "
                             "recorded for it, else the task's default)")


def main(args: argparse.Namespace) -> int:
    manifest_path = os.path.join(args.data, "manifest.json")
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(f"{args.data} is not a `collect` directory: {manifest_path} is missing.")
    with open(manifest_path) as f:
        tasks = args.tasks or list(json.load(f)["tasks"])
    steps = expert_steps_for(args.data, tasks, args.expert_steps)
    references = measure_references(tasks, args.episodes, args.seed, args.cache_dir, steps)
    write_references(args.data, references)
    print(score_table(references))
    print(f"wrote {args.data}/scores.json, manifest.json, episodes/<task>/dataset_info.json and README.md")
    return 0
