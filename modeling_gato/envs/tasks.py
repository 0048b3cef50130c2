"""Tasks and their environments, and the mapping between gymnasium spaces and Gato's columns.

Every task is a real environment with a real expert:

| domain | tasks | observation -> columns | expert |
|---|---|---|---|
| babyai | GoToRedBallGrey, GoToLocal, PickupLoc | 56x56 RGB agent view (`image_observations`, 16 patches after padding to 64x64), mission (`text_observations`), direction (`discrete_observations`) | `minigrid.utils.baby_ai_bot.BabyAIBot` |
| metaworld | reach-v3, push-v3, pick-place-v3 | 39 floats (`continuous_observations`) | `metaworld.policies.Sawyer<Name>V3Policy` |
| mujoco | InvertedPendulum-v5 | 4 floats | PPO trained here by stable-baselines3, cached on disk |
| classic | CartPole-v1 | 4 floats | PPO trained here by stable-baselines3, cached on disk |

Held out (`TaskSpec.held_out`, not in the default collection, so never in default training): BabyAI-GoToObj-v0
(bot: ~0.93 return, 100% success; uniform random: ~0.06, 10%) and metaworld-button-press-v3 (scripted policy:
~557, 100%; random: ~205, 0%), the targets of few-shot adaptation (`modeling_gato.training.fewshot`).

BabyAI token budget (measured with the shipped tokenizer): 16 patches + ~6 mission tokens + 1 direction
+ separator + 1 action = ~25 tokens a step, so ~40 steps fit in 1024 tokens; the 7x7x3 symbolic grid would
cost 147 discrete tokens a step (6 steps in the window). We chose the rendered view.

The space mapping is general: a `Dict` observation is taken in the lexicographic order of its keys;
uint8 `Box` of rank 3 -> image, other `Box` -> continuous, `Discrete` / `MultiDiscrete` -> discrete,
`Text` (and BabyAI's mission space) -> text. Continuous actions are stored mapped from the Box bounds to
[-1, 1] (SPEC section 2), discrete actions as their index.

This module imports gymnasium and the environment packages lazily: it is not part of the remote code.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# One implementation, shipped with saved models for the agent (numpy only): re-exported here.
from ..acting_utils import _space_name, column_of_space, observation_to_columns  # noqa: F401


@dataclass(frozen=True)
class TaskSpec:
    """One task: how to build its environment and its expert."""

    name: str
    domain: str
    env_id: str
    expert: str  # "babyai_bot", "metaworld_policy", "sb3_sac", "sb3_ppo"
    make_kwargs: dict = field(default_factory=dict)
    expert_training_steps: int = 0  # for experts trained here
    held_out: bool = False  # not collected by default: kept for few-shot adaptation (`python -m modeling_gato adapt`)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("BabyAI-GoToRedBallGrey-v0", "babyai", "BabyAI-GoToRedBallGrey-v0", "babyai_bot"),
        TaskSpec("BabyAI-GoToLocal-v0", "babyai", "BabyAI-GoToLocal-v0", "babyai_bot"),
        TaskSpec("BabyAI-PickupLoc-v0", "babyai", "BabyAI-PickupLoc-v0", "babyai_bot"),
        TaskSpec("metaworld-reach-v3", "metaworld", "Meta-World/MT1", "metaworld_policy", {"env_name": "reach-v3"}),
        TaskSpec("metaworld-push-v3", "metaworld", "Meta-World/MT1", "metaworld_policy", {"env_name": "push-v3"}),
        TaskSpec(
            "metaworld-pick-place-v3", "metaworld", "Meta-World/MT1", "metaworld_policy", {"env_name": "pick-place-v3"}
        ),
        TaskSpec("InvertedPendulum-v5", "mujoco", "InvertedPendulum-v5", "sb3_ppo", expert_training_steps=60000),
        TaskSpec("CartPole-v1", "classic", "CartPole-v1", "sb3_ppo", expert_training_steps=40000),
        # Held out of the default collection (and so of training): few-shot adaptation targets.
        TaskSpec("BabyAI-GoToObj-v0", "babyai", "BabyAI-GoToObj-v0", "babyai_bot", held_out=True),
        TaskSpec("metaworld-button-press-v3", "metaworld", "Meta-World/MT1", "metaworld_policy",
                 {"env_name": "button-press-v3"}, held_out=True),
    ]
}
TRAINING_TASKS = [name for name, spec in TASKS.items() if not spec.held_out]
HELD_OUT_TASKS = [name for name, spec in TASKS.items() if spec.held_out]
DOMAINS = sorted({spec.domain for spec in TASKS.values()})
BABYAI_TILE_SIZE = 8  # 7x7 view of 8-pixel tiles = 56x56 pixels


def task_name(text: str) -> str:
    """A command-line task argument: one of the tasks this package knows (`TASKS`)."""
    if text not in TASKS:
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; expected one of {sorted(TASKS)}")
    return text


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}.")
    return TASKS[name]


def make_env(task: str | TaskSpec, seed: int | None = None, render_mode: str | None = None):
    """The gymnasium environment of a task, with the wrappers its observations need."""
    import gymnasium as gym

    spec = get_task(task) if isinstance(task, str) else task
    if spec.domain == "babyai":
        import minigrid  # noqa: F401  (registers the BabyAI environments)
        from minigrid.wrappers import RGBImgPartialObsWrapper

        return RGBImgPartialObsWrapper(gym.make(spec.env_id, render_mode=render_mode), tile_size=BABYAI_TILE_SIZE)
    if spec.domain == "metaworld":
        import metaworld  # noqa: F401  (registers Meta-World/MT1)

        # The seed given here fixes the task's set of 50 goals; `reset(seed=s)` then picks one of them from `s`.
        env = gym.make(spec.env_id, seed=0 if seed is None else seed, render_mode=render_mode, **spec.make_kwargs)
        return _seeded_goal_wrapper()(env)
    return gym.make(spec.env_id, render_mode=render_mode, **spec.make_kwargs)


@functools.cache
def _seeded_goal_wrapper() -> type:
    """`MetaWorldSeededGoal`: Meta-World's `reset(seed=...)` made to honour the seed (built lazily: gymnasium is optional).

    Meta-World 3.1.1 ignores `reset(seed=...)`: the environment made with seed S holds 50 goals, and every reset
    draws the next goal from a generator (`RandomTaskSelectWrapper` draws from the unwrapped env's `np_random`,
    which nothing else in Meta-World uses while goals are fixed), so an episode's goal depended on how many resets
    the environment had seen. This wrapper reseeds that generator from the episode seed before resetting: the goal
    of `reset(seed=s)` is `goals(S)[rng(s).choice(50)]`, a function of (env seed, episode seed) only, whatever the
    reset history, in one environment or in sub-environments of a gymnasium vector env (whose partial resets call
    `reset(seed=...)` on the sub-environment). `reset()` without a seed keeps drawing from the generator.
    """
    import gymnasium as gym
    from gymnasium.utils import seeding

    class MetaWorldSeededGoal(gym.Wrapper):
        def reset(self, *, seed: int | None = None, options: dict | None = None):
            if seed is not None:
                self.env.unwrapped.np_random, _ = seeding.np_random(seed)
            return self.env.reset(seed=seed, options=options)

    return MetaWorldSeededGoal


# ---------------------------------------------------------------------------- spaces <-> columns
# `column_of_space` and `observation_to_columns` (observations -> SPEC columns) live in `acting_utils`.
def action_to_column(action: Any, space: Any) -> tuple[str, Any]:
    """An environment action as (column, stored value): Box -> bounds mapped to [-1, 1] (clipped)."""
    name = _space_name(space)
    if name == "Discrete":
        return "discrete_actions", int(action) - int(space.start)
    if name == "MultiDiscrete":
        return "discrete_actions", (np.asarray(action).reshape(-1) - np.asarray(space.start).reshape(-1)).tolist()
    if name == "Box":
        low, high = np.asarray(space.low, np.float64).reshape(-1), np.asarray(space.high, np.float64).reshape(-1)
        values = np.asarray(action, np.float64).reshape(-1)
        bounded = np.isfinite(low) & np.isfinite(high)
        scaled = np.where(bounded, 2 * (values - low) / np.where(bounded, high - low, 1.0) - 1, values)
        return "continuous_actions", np.clip(scaled, -1.0, 1.0).astype(np.float32)
    raise ValueError(f"action space of type {name} is not supported: expected Discrete, MultiDiscrete or Box.")


def column_to_action(value: Any, space: Any) -> Any:
    """The inverse of `action_to_column`: a stored action back into an environment action."""
    name = _space_name(space)
    if name == "Discrete":
        return int(value) + int(space.start)
    if name == "MultiDiscrete":
        return np.asarray(value, np.int64).reshape(space.shape) + np.asarray(space.start)
    low, high = np.asarray(space.low, np.float64).reshape(-1), np.asarray(space.high, np.float64).reshape(-1)
    values = np.asarray(value, np.float64).reshape(-1)
    bounded = np.isfinite(low) & np.isfinite(high)
    return np.where(bounded, low + (values + 1) / 2 * (high - low), values).reshape(space.shape).astype(space.dtype)


def describe_action_space(space: Any) -> dict[str, Any]:
    """A JSON description of an action space (stored with the data so actions can be decoded later)."""
    name = _space_name(space)
    if name == "Discrete":
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if name == "MultiDiscrete":
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    return {"type": "Box", "shape": list(space.shape), "low": np.asarray(space.low).tolist(),
            "high": np.asarray(space.high).tolist()}
