"""Reference scores with provenance (measured by `collect` and `python -m modeling_gato scores`, in `data/`).

The expert-normalized score `(R - R_random) / (R_expert - R_random)` is only as good as its references, so
every reference records where it comes from: per task and environment version, the expert's and a seeded
uniform-random policy's mean and std return, success rate, mean length, N and seeds, the expert's name,
origin and training steps (`expert_steps`, None for experts that ship with a package), package versions and
the date. A table where the expert does not beat the random policy is refused (`check_reference`),
never scored. `scores` re-measures each task with the expert steps its directory recorded (an explicit
`--expert-steps` wins).

This module holds what a reference is (`reference_entry`, `check_reference`) and where it is read back from
(`scores.json`, a dataset's `DatasetInfo.description`); `data.collect` and `data.scores` measure and write them.

Facts worth knowing before reading the numbers (minigrid 3.2.0, metaworld 3.1.1, gymnasium 1.4.0):

- BabyAI's return is `1 - 0.9 * steps / max_steps` on success and 0 otherwise: the bot scores about 0.92, not
  1.0, and a uniform-random policy already succeeds 16-30% of the time on the small levels (returns
  0.10-0.18). Report the success rate beside the normalized return.
- Meta-World v3 episodes last 500 steps and do not terminate on success; the scripted policies that ship
  with metaworld score thousands (reach about 4,800 vs random 900). JAT's published Meta-World references are
  v2 with PPO experts (reach expert 681, below v3 random): references are per environment version.
- Meta-World 3.1.1 ignores `reset(seed=...)` by itself; `envs.tasks.make_env` fixes the set of 50 goals from
  the seed given when the environment is made (`env_seed`, recorded with each reference) and picks one from
  each episode seed.
"""

from __future__ import annotations

import json
import os
import re
import time
from importlib import metadata
from typing import Any

import numpy as np

from .tasks import TaskSpec

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


def check_reference(task: str, expert: float, random: float) -> None:
    """Refuse a reference where the expert does not beat the random policy: the normalized score is undefined."""
    if expert is None or random is None:
        raise ValueError(f"task {task}: the reference needs both returns, got expert {expert} and random {random}.")
    if not (np.isfinite(expert) and np.isfinite(random)):
        raise ValueError(f"task {task}: reference returns must be finite, got expert {expert} and random {random}.")
    if expert <= random:
        raise ValueError(
            f"task {task}: the expert's mean return {expert:.6g} is not above the random policy's {random:.6g}; "
            "the expert-normalized score (R - R_random) / (R_expert - R_random) would be undefined. "
            "Use a better expert or more reference episodes."
        )


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
        from .experts import MetaWorldExpert

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
        from ..utils.jobs import package_versions

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


# ---------------------------------------------------------------------------- writing


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


# ---------------------------------------------------------------------------- command line


def expert_steps_for(data_dir: str, tasks: list[str], expert_steps: int | None = None) -> dict[str, int | None]:
    """{task: expert training steps} for re-measuring a `collect` directory: `expert_steps` where given (it wins),
    else what the directory recorded for the task (`recorded_expert_steps`), else None (the task's default)."""
    if expert_steps is not None:
        return dict.fromkeys(tasks, expert_steps)
    return {task: recorded_expert_steps(data_dir, task) for task in tasks}


