"""The expert policies every task is collected and scored with: the BabyAI bot and Meta-World's scripted policies
that ship with those packages, and stable-baselines3 PPO experts for CartPole and InvertedPendulum, trained here
once (by `collect` or `scores` only) and cached on disk, never downloaded. Also the seeded uniform random policy
that the random reference plays.

Where the experts come from and how to call them: ../shared/ENVIRONMENTS.md.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from .tasks import TaskSpec, make_env


class RandomPolicy:
    """Uniform random actions from the action space, seeded."""

    def __init__(self, env, seed: int):
        self.space = env.action_space
        self.space.seed(seed)

    def reset(self, env) -> None:
        pass

    def __call__(self, observation) -> Any:
        return self.space.sample()


class BabyAIExpert:
    """The BabyAI bot that ships with minigrid; rebuilt at every reset (it plans on the current level).

    `executed(action)` tells it the action the environment executed after its suggestion; when that is another one
    (`collect --action-epsilon`), the bot's next plan starts from it (`BabyAIBot.replan(action_taken)`: it undoes
    it, e.g. puts back an object it picked up by mistake)."""

    def __init__(self, env):
        self.bot = None
        self.suggested = self.taken = None

    def reset(self, env) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        self.bot = BabyAIBot(env.unwrapped)
        self.suggested = self.taken = None

    def __call__(self, observation) -> int:
        self.suggested = int(self.bot.replan(self.taken))
        self.taken = None
        return self.suggested

    def executed(self, action) -> None:
        self.taken = None if int(action) == self.suggested else int(action)


class MetaWorldExpert:
    """The scripted Sawyer policy that ships with metaworld for this task."""

    def __init__(self, env, env_name: str):
        from metaworld import policies

        camel = "".join(part.capitalize() for part in re.split(r"[-_]", env_name.removesuffix("-v3")))
        self.policy = getattr(policies, f"Sawyer{camel}V3Policy")()

    def reset(self, env) -> None:
        pass

    def __call__(self, observation) -> np.ndarray:
        return self.policy.get_action(observation)


class StableBaselinesExpert:
    """A stable-baselines3 policy trained here for the task (deterministic actions)."""

    def __init__(self, model):
        self.model = model

    def reset(self, env) -> None:
        pass

    def __call__(self, observation) -> Any:
        action, _ = self.model.predict(observation, deterministic=True)
        return action


def expert_cache_dir(cache_dir: str | None = None) -> str:
    """Where trained stable-baselines3 experts are cached: `cache_dir`, else `$GATO_EXPERT_CACHE`, else
    `~/.cache/modeling_gato/experts`."""
    return (cache_dir or os.environ.get("GATO_EXPERT_CACHE")
            or os.path.join(os.path.expanduser("~"), ".cache", "modeling_gato", "experts"))


def sb3_expert_path(spec: TaskSpec, cache_dir: str, steps: int | None = None) -> str:
    """Where the task's stable-baselines3 expert trained for `steps` (default: the task's) is cached."""
    steps = spec.expert_training_steps if steps is None else steps
    return os.path.join(cache_dir, f"{spec.name}-{spec.expert}-{steps}.zip")


class ExpertNotTrainedError(FileNotFoundError):
    """A task's stable-baselines3 expert is not in the cache, and the caller may not train it."""


def _sb3_algorithm(spec: TaskSpec):
    """The stable-baselines3 algorithm class of the task's expert."""
    from stable_baselines3 import PPO, SAC

    return {"sb3_sac": SAC, "sb3_ppo": PPO}[spec.expert]


def load_sb3_expert(spec: TaskSpec, cache_dir: str, steps: int | None = None):
    """The task's cached stable-baselines3 expert; `ExpertNotTrainedError` (naming the command that trains it) when
    it was never trained into `cache_dir`."""
    path = sb3_expert_path(spec, cache_dir, steps)
    if not os.path.exists(path):
        raise ExpertNotTrainedError(
            f"{spec.name}: no trained expert at {path}. Experts are trained once by `python -m modeling_gato collect "
            f"--tasks {spec.name} --cache-dir {cache_dir}` (or `python -m modeling_gato scores`); evaluation only "
            "loads them. Pass the same --expert-cache (or $GATO_EXPERT_CACHE) that collection used, or leave "
            "'expert' out of --baselines.")
    return _sb3_algorithm(spec).load(path, device="cpu")


def train_or_load_sb3_expert(spec: TaskSpec, cache_dir: str, steps: int | None = None, seed: int = 0):
    """Train the task's stable-baselines3 expert once and cache it under `cache_dir` (never downloaded)."""
    import torch

    steps = spec.expert_training_steps if steps is None else steps
    path = sb3_expert_path(spec, cache_dir, steps)
    if os.path.exists(path):
        return load_sb3_expert(spec, cache_dir, steps)
    algorithm = _sb3_algorithm(spec)
    env = make_env(spec, seed=seed)
    kwargs = {"learning_starts": 500} if spec.expert == "sb3_sac" else {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs: one thread is faster and leaves the other core free
    try:
        model = algorithm("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **kwargs)
        model.learn(total_timesteps=steps)
    finally:
        torch.set_num_threads(threads)
    os.makedirs(cache_dir, exist_ok=True)
    partial = path + f".tmp-{os.getpid()}"
    model.save(partial)
    os.replace(partial + ".zip" if os.path.exists(partial + ".zip") else partial, path)
    return model


def make_expert(spec: TaskSpec, env, cache_dir: str, expert_steps: int | None = None, train: bool = False):
    """The task's expert policy. A stable-baselines3 expert is loaded from `cache_dir`; only `train=True` (what
    `collect` and `scores` pass) trains a missing one, so acting and evaluation never train as a side effect."""
    if spec.expert == "babyai_bot":
        return BabyAIExpert(env)
    if spec.expert == "metaworld_policy":
        return MetaWorldExpert(env, spec.make_kwargs["env_name"])
    if not train:
        return StableBaselinesExpert(load_sb3_expert(spec, cache_dir, expert_steps))
    return StableBaselinesExpert(train_or_load_sb3_expert(spec, cache_dir, expert_steps))
