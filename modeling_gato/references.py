"""Reference scores with provenance: `python -m modeling_gato scores --data <collect dir>`.

The expert-normalized score `(R - R_random) / (R_expert - R_random)` is only as good as its references, so
every reference records where it comes from: per task and environment version, the expert's and a seeded
uniform-random policy's mean and std return, success rate, mean length, N and seeds, the expert's name,
origin and training steps (`expert_steps`, None for experts that ship with a package), package versions and
the date. A table where the expert does not beat the random policy is refused (`metrics.check_reference`),
never scored. `scores` re-measures each task with the expert steps its directory recorded (an explicit
`--expert-steps` wins).

`collect` writes the same structure into `scores.json` (from its recorded expert episodes); `scores`
re-measures it for an existing directory and writes it into `scores.json` (atomically), `manifest.json`,
each `episodes/<task>` dataset's metadata (its `DatasetInfo.description`, in `dataset_info.json`) and the
dataset card (README.md).

Facts worth knowing before reading the numbers (minigrid 3.2.0, metaworld 3.1.1, gymnasium 1.4.0):

- BabyAI's return is `1 - 0.9 * steps / max_steps` on success and 0 otherwise: the bot scores about 0.92, not
  1.0, and a uniform-random policy already succeeds 16-30% of the time on the small levels (returns
  0.10-0.18). Report the success rate beside the normalized return.
- Meta-World v3 episodes last 500 steps and do not terminate on success; the scripted policies that ship
  with metaworld score thousands (reach about 4,800 vs random 900). JAT's published Meta-World references are
  v2 with PPO experts (reach expert 681, below v3 random): references are per environment version.
- Meta-World 3.1.1 ignores `reset(seed=...)` by itself; `environments.make_env` fixes the set of 50 goals from
  the seed given when the environment is made (`env_seed`, recorded with each reference) and picks one from
  each episode seed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from .arguments import data_directory, non_negative_int, positive_int, task_name
from .environments import TaskSpec, expert_cache_dir, get_task
from .metrics import check_reference

RANDOM_SEED_OFFSET = 1_000_000  # the random policy plays seeds seed + 1e6 ...: never the expert's episodes
DESCRIPTION_MARKER = "modeling_gato reference scores (JSON): "
TRAINED_STEPS = re.compile(r"trained here, (\d+) steps")  # in expert_origin's text for stable-baselines3 experts
DOMAIN_NOTES = {
    "babyai": "BabyAI's return is 1 - 0.9 * steps / max_steps on success, 0 otherwise: the bot scores about 0.92, "
              "not 1.0, and a uniform-random policy already succeeds on some levels (16-30% on the small ones). "
              "Report the success rate beside the normalized return.",
    "metaworld": "Meta-World v3: 500-step episodes that do not terminate on success, scored with the scripted "
                 "policy that ships with metaworld. References are per environment version: v2 references (e.g. "
                 "JAT's, PPO experts) do not apply. The set of 50 goals is fixed by env_seed; each "
                 "episode seed picks one of them.",
}
ENVIRONMENT_PACKAGES = {"babyai": ("minigrid",), "metaworld": ("metaworld", "mujoco"), "mujoco": ("gymnasium", "mujoco"),
                        "classic": ("gymnasium",)}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def trained_expert_steps(spec: TaskSpec, expert_steps: int | None = None) -> int | None:
    """The training steps of the task's expert: `expert_steps` (or the task's default) for the stable-baselines3
    experts trained here, None for experts that ship with a package (BabyAI bot, Meta-World scripted policies)."""
    if not spec.expert.startswith("sb3_"):
        return None
    return int(spec.expert_training_steps if expert_steps is None else expert_steps)


def recorded_expert_steps(data_dir: str, task: str) -> int | None:
    """The expert training steps a `collect` directory recorded for `task`: `scores.json`'s `expert_steps`, else
    `manifest.json`'s (`tasks.<task>.expert_steps`, `scores.<task>.expert_steps`), else the steps named in the
    expert's origin ("... trained here, N steps ...", directories written before the field existed); None if
    none is recorded (e.g. an expert that ships with a package)."""
    entries = []
    scores_path = os.path.join(data_dir, "scores.json")
    if os.path.isfile(scores_path):
        with open(scores_path) as f:
            entries.append(json.load(f).get(task, {}))
    manifest_path = os.path.join(data_dir, "manifest.json")
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        entries += [manifest.get("tasks", {}).get(task, {}), manifest.get("scores", {}).get(task, {})]
    for entry in entries:
        if entry.get("expert_steps") is not None:
            return int(entry["expert_steps"])
    for entry in entries:
        found = TRAINED_STEPS.search(entry.get("expert_origin") or "")
        if found:
            return int(found.group(1))
    return None


def expert_origin(spec: TaskSpec, expert_steps: int | None = None) -> str:
    """Where the task's expert comes from, e.g. "metaworld.policies.SawyerReachV3Policy (ships with metaworld 3.1.1)"."""
    if spec.expert == "babyai_bot":
        return f"minigrid.utils.baby_ai_bot.BabyAIBot (ships with minigrid {_version('minigrid')})"
    if spec.expert == "metaworld_policy":
        from .environments import MetaWorldExpert

        name = type(MetaWorldExpert(None, spec.make_kwargs["env_name"]).policy).__name__
        return f"metaworld.policies.{name} (ships with metaworld {_version('metaworld')})"
    if spec.expert in ("sb3_ppo", "sb3_sac"):
        steps = trained_expert_steps(spec, expert_steps)
        algorithm = spec.expert.removeprefix("sb3_").upper()
        return (f"stable-baselines3 {algorithm} trained here, {steps} steps, seed 0, MlpPolicy "
                f"(stable-baselines3 {_version('stable-baselines3')})")
    raise ValueError(f"task {spec.name}: unknown expert {spec.expert!r}; expected babyai_bot, metaworld_policy, "
                     "sb3_ppo or sb3_sac.")


def environment_version(spec: TaskSpec) -> str:
    """The environment id with the versions of the packages that implement it."""
    packages = ", ".join(f"{p} {_version(p)}" for p in ENVIRONMENT_PACKAGES.get(spec.domain, ("gymnasium",)))
    kwargs = "".join(f" {k}={v}" for k, v in sorted(spec.make_kwargs.items()))
    return f"{spec.env_id}{kwargs} ({packages})"


def _policy_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """measure_policy's statistics plus the seed range and the environment seed (Meta-World's goal set)."""
    entry = dict(stats)
    entry["last_seed"] = stats["seed"] + stats["episodes"] - 1
    entry["env_seed"] = stats["seed"]  # measure_policy makes the environment with the first episode seed
    return entry


def reference_entry(spec: TaskSpec, expert_stats: dict[str, Any], random_stats: dict[str, Any],
                    expert_steps: int | None = None, versions: dict[str, str] | None = None,
                    measured: str | None = None) -> dict[str, Any]:
    """One task's reference with provenance; raises ValueError when the expert does not beat random.

    `expert_stats` / `random_stats` are `collect.measure_policy` statistics (episodes, seed, mean/std return,
    mean length, success rate or None). `expert_steps` is the training steps the expert was made with (None: the
    task's default); the entry records the actual steps as `"expert_steps"` (None for experts that ship with a
    package).
    """
    check_reference(spec.name, expert_stats["mean_return"], random_stats["mean_return"])
    if versions is None:
        from .collect import package_versions

        versions = package_versions()
    entry = {
        "domain": spec.domain,
        "env_id": spec.env_id,
        "make_kwargs": dict(spec.make_kwargs),
        "environment": environment_version(spec),
        "expert_policy": spec.expert,
        "expert_origin": expert_origin(spec, expert_steps),
        "expert_steps": trained_expert_steps(spec, expert_steps),
        "random_policy": "uniform samples of the action space (action_space.seed(seed))",
        "expert": _policy_stats(expert_stats),
        "random": _policy_stats(random_stats),
        "versions": versions,
        "measured": measured or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if spec.domain in DOMAIN_NOTES:
        entry["note"] = DOMAIN_NOTES[spec.domain]
    return entry


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
    from .collect import measure_policy, package_versions

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


# ---------------------------------------------------------------------------- writing
def write_json_atomic(path: str, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then os.replace it: readers never see a half file."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def dataset_description(task: str, entry: dict[str, Any]) -> str:
    """The `DatasetInfo.description` of a task's episodes: a sentence, then the reference as JSON."""
    expert, random = entry["expert"], entry["random"]

    def rate(stats):
        return "" if stats.get("success_rate") is None else f", success {stats['success_rate']:.0%}"

    return (
        f"Expert episodes of {task} ({entry['environment']}) played by {entry['expert_origin']}, collected with "
        f"modeling_gato. References for the expert-normalized return (R - R_random) / (R_expert - R_random): "
        f"expert {expert['mean_return']:.6g}{rate(expert)} over {expert['episodes']} episodes (seeds "
        f"{expert['seed']}-{expert['last_seed']}), uniform random {random['mean_return']:.6g}{rate(random)} over "
        f"{random['episodes']} episodes (seeds {random['seed']}-{random['last_seed']}); measured "
        f"{entry['measured']}.\n\n{DESCRIPTION_MARKER}{json.dumps(entry, sort_keys=True)}"
    )


def references_from_description(description: str) -> dict[str, Any] | None:
    """The reference stored by `dataset_description`, or None if the description has none."""
    _, found, payload = (description or "").partition(DESCRIPTION_MARKER)
    return json.loads(payload.splitlines()[0]) if found else None


def write_references(data_dir: str, references: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Record `references` in a `collect` directory; returns the merged scores.

    Updates (each atomically) `scores.json` (other tasks' entries are kept), `manifest.json["scores"]`, the
    `dataset_info.json` description of each `episodes/<task>` dataset, and rewrites the dataset card.
    """
    from .cards import write_dataset_card

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


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=data_directory, help="a directory written by `collect`")
    parser.add_argument("--tasks", nargs="*", type=task_name, default=None, help="tasks to measure (default: every task in --data)")
    parser.add_argument("--episodes", type=positive_int, default=20, help="episodes per policy (expert and random)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help=f"first expert seed; random uses seed + {RANDOM_SEED_OFFSET}")
    parser.add_argument("--cache-dir", "--expert-cache", dest="cache_dir", default=None,
                        help="where trained experts are cached (default ~/.cache/modeling_gato)")
    parser.add_argument("--expert-steps", type=positive_int, default=None,
                        help="training steps of the stable-baselines3 experts (default: per task, what --data "
                             "recorded for it, else the task's default)")


def expert_steps_for(data_dir: str, tasks: list[str], expert_steps: int | None = None) -> dict[str, int | None]:
    """{task: expert training steps} for re-measuring a `collect` directory: `expert_steps` where given (it wins),
    else what the directory recorded for the task (`recorded_expert_steps`), else None (the task's default)."""
    if expert_steps is not None:
        return dict.fromkeys(tasks, expert_steps)
    return {task: recorded_expert_steps(data_dir, task) for task in tasks}


def main(args: argparse.Namespace) -> int:
    from .collect import score_table

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
