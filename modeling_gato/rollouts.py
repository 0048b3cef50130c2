"""Many episodes of a task at once: gymnasium vector environments, batched policies, per-episode results, videos.

`run_episodes(task, policy, seeds, num_envs)` plays `len(seeds)` episodes (episode `k` is reset with `seeds[k]`)
in a `gymnasium.vector.SyncVectorEnv` of `num_envs` copies of `environments.make_env(task, seed=env_seed)`. When
an episode ends, its sub-environment is reset with the next seed through the vector API
(`reset(seed=[...], options={"reset_mask": mask})`, autoreset disabled) while the others go on; once no seed is left,
the rows still playing are stepped one by one through `vector_env.envs` (`SyncVectorEnv.step` would step every
sub-environment, finished ones included).

The policy is either
- a *batch policy* with `reset_rows(rows, seeds)` and `act(observations, rows) -> actions` (raw observations in,
  environment actions out; `release_rows(rows)` is called, when it exists, for rows with no episode left):
  `agent.BatchedGatoAgent` (one model call per action token for all rows, one KV cache) or `GatoAgentRows` (one
  `GatoAgent` per row, called one after the other: the one-at-a-time reference); or
- a *per-environment factory* `make(env) -> policy` with `reset(env)` (or `reset(env, seed=...)`, then called with
  the episode seed) and `policy(observation) -> action`, as `environments.BabyAIExpert`, `MetaWorldExpert`,
  `StableBaselinesExpert`; `random_policy` and `expert_policy` build such factories.

An episode's result depends only on its seed (and the env seed), never on `num_envs` or on which sub-environment
played it: every sub-environment is reset with the episode seed (Meta-World's goal too: see
`environments._seeded_goal_wrapper`), batch policies are reset with it, and factory policies that take a seed
(`random_policy`) draw from it. `run_episodes(..., num_envs=1)` with `GatoAgentRows` is `evaluate.play_episode`'s
loop (`env.reset(seed=s)`, `agent.reset(seed=s)`, then `agent.act` until the episode ends or reaches
`max_episode_steps`).

Videos: with `video_dir` and `videos=K`, the first K episodes (in seed order) are rendered (`render_mode="rgb_array"`;
BabyAI's full-grid view, MuJoCo through EGL: `MUJOCO_GL=egl` unless set) after the reset and after every step, and
written as `<video_dir>/<task>-seed<seed>.gif` (Pillow; frames larger than 320 pixels are scaled down, each frame
lasts `GIF_FRAME_MS`). The GIF encoder merges identical consecutive frames (adding their durations), so a GIF's
total duration, not its frame count, is `(length + 1) * GIF_FRAME_MS`.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .agent import BatchedGatoAgent, GatoAgent
from .environments import (
    StableBaselinesExpert,
    TaskSpec,
    get_task,
    make_env,
    make_expert,
    train_or_load_sb3_expert,
)

GIF_FRAME_MS = 100
VIDEO_MAX_SIDE = 320
VIDEO_MAX_FRAMES = 100


# ---------------------------------------------------------------------------- policies
class GatoAgentRows:
    """A batch policy made of one independent `GatoAgent` per row, each called alone (the one-at-a-time loop)."""

    def __init__(self, model, processor, observation_space: Any, action_space: Any, num_rows: int, **agent_kwargs: Any):
        self.num_rows = num_rows
        self.agents = [GatoAgent(model, processor, observation_space, action_space, **agent_kwargs)
                       for _ in range(num_rows)]

    def reset_rows(self, rows: Sequence[int], seeds: Sequence[int]) -> None:
        for row, seed in zip(rows, seeds):
            self.agents[row].reset(seed=int(seed))

    def act(self, observations: Sequence[Any], rows: Sequence[int]) -> list[Any]:
        return [self.agents[row].act(observation) for observation, row in zip(observations, rows)]


def gato_policy(model, processor, task: str | TaskSpec, num_envs: int = 1, batched: bool = True,
                prompt: Mapping[str, Any] | None = None, prompt_tokens: int | None = None,
                context_length: int | None = None, temperature: float = 0.0,
                history_steps: int | None = None) -> BatchedGatoAgent | GatoAgentRows:
    """A Gato batch policy for `task` with `num_envs` rows: `BatchedGatoAgent` or, with `batched=False`,
    `GatoAgentRows` (one `GatoAgent` per row)."""
    env = make_env(task)
    spaces = env.observation_space, env.action_space
    env.close()
    kind = BatchedGatoAgent if batched else GatoAgentRows
    return kind(model, processor, *spaces, num_envs, prompt=prompt, prompt_tokens=prompt_tokens,
                context_length=context_length, temperature=temperature, history_steps=history_steps)


class EpisodeRandomPolicy:
    """Uniform random actions drawn from the episode seed (`reset(env, seed)` reseeds the action space)."""

    def __init__(self, env):
        self.space = env.action_space

    def reset(self, env, seed: int | None = None) -> None:
        self.space.seed(seed)

    def __call__(self, observation: Any) -> Any:
        return self.space.sample()


def random_policy(env) -> EpisodeRandomPolicy:
    """Per-environment factory of seeded uniform random policies."""
    return EpisodeRandomPolicy(env)


def expert_policy(task: str | TaskSpec, cache_dir: str, expert_steps: int | None = None) -> Callable[[Any], Any]:
    """Per-environment factory of the task's expert (a stable-baselines3 expert is loaded once and shared)."""
    spec = get_task(task) if isinstance(task, str) else task
    if spec.expert.startswith("sb3_"):
        model = train_or_load_sb3_expert(spec, cache_dir, expert_steps)
        return lambda env: StableBaselinesExpert(model)
    return functools.partial(make_expert, spec, cache_dir=cache_dir, expert_steps=expert_steps)


def _reset_policy(policy: Any, env: Any, seed: int) -> None:
    try:
        takes_seed = "seed" in inspect.signature(policy.reset).parameters
    except (TypeError, ValueError):
        takes_seed = False
    if takes_seed:
        policy.reset(env, seed=seed)
    else:
        policy.reset(env)


# ---------------------------------------------------------------------------- rollouts
@dataclass
class _Episode:
    index: int
    seed: int
    total: float = 0.0
    length: int = 0
    success: bool = False
    reported: bool = False
    frames: list[np.ndarray] | None = field(default=None)


def run_episodes(
    task: str | TaskSpec,
    policy: Any,
    seeds: Sequence[int],
    num_envs: int = 1,
    env_seed: int = 1,
    max_episode_steps: int | None = None,
    video_dir: str | None = None,
    videos: int = 0,
    progress: bool = True,
    desc: str | None = None,
) -> list[dict[str, Any]]:
    """Play `len(seeds)` episodes (episode `k` reset with `seeds[k]`) in a `SyncVectorEnv` of `num_envs` copies of
    `make_env(task, seed=env_seed)` (at most one per episode).

    Returns per-episode dicts in seed order: `seed`, `return`, `length`, `success` (None where the environment
    reports none; BabyAI: `return > 0`) and `video` (the GIF's path, for the first `videos` episodes when
    `video_dir` is given). See the module docstring for the policy protocols.
    """
    from gymnasium.vector import AutoresetMode, SyncVectorEnv
    from gymnasium.vector.utils import concatenate, create_empty_array, iterate

    spec = get_task(task) if isinstance(task, str) else task
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        return []
    if num_envs < 1:
        raise ValueError(f"num_envs: expected at least 1, got {num_envs}.")
    num_envs = min(num_envs, len(seeds))
    batched = hasattr(policy, "reset_rows") and hasattr(policy, "act")
    if not batched and not callable(policy):
        raise TypeError("policy: expected a batch policy (reset_rows, act) or a factory make(env) -> policy.")
    if batched and getattr(policy, "num_rows", num_envs) < num_envs:
        raise ValueError(f"policy has {policy.num_rows} rows; num_envs={num_envs} needs at least as many.")
    recording = video_dir is not None and videos > 0
    if recording:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering (read when the first frame is drawn)
        os.makedirs(video_dir, exist_ok=True)
    make = functools.partial(make_env, spec, seed=env_seed, render_mode="rgb_array" if recording else None)
    vector_env = SyncVectorEnv([make] * num_envs, autoreset_mode=AutoresetMode.DISABLED)
    policies = None if batched else [policy(env) for env in vector_env.envs]
    babyai = spec.domain == "babyai"

    results: list[dict[str, Any] | None] = [None] * len(seeds)
    playing: list[_Episode | None] = [None] * num_envs
    next_index = 0
    bar = tqdm(total=len(seeds), desc=desc or spec.name, disable=not progress, leave=False)

    def start(rows: list[int]) -> list[Any]:
        """Reset `rows` with their next episode's seed (through the vector API); returns every row's observation."""
        nonlocal next_index
        row_seeds: list[int | None] = [None] * num_envs
        mask = np.zeros(num_envs, dtype=bool)
        for row in rows:
            playing[row] = _Episode(next_index, seeds[next_index])
            row_seeds[row], mask[row] = seeds[next_index], True
            next_index += 1
        observations, infos = vector_env.reset(seed=row_seeds, options={"reset_mask": mask})
        for row in rows:
            episode = playing[row]
            episode.reported = bool(infos.get("_success", np.zeros(num_envs, dtype=bool))[row])
            if episode.index < videos and recording:
                episode.frames = [vector_env.envs[row].render()]
            if not batched:
                _reset_policy(policies[row], vector_env.envs[row], episode.seed)
        if batched:
            policy.reset_rows(rows, [playing[row].seed for row in rows])
        return list(iterate(vector_env.observation_space, observations))

    def finish(row: int) -> None:
        episode, playing[row] = playing[row], None
        success = episode.success if episode.reported else None
        if babyai:
            success = episode.total > 0  # BabyAI rewards only success
        result = {"seed": episode.seed, "return": episode.total, "length": episode.length, "success": success}
        if episode.frames is not None:
            result["video"] = write_gif(episode.frames, os.path.join(video_dir, f"{spec.name}-seed{episode.seed}.gif"))
        results[episode.index] = result
        bar.update(1)

    try:
        current = start(list(range(num_envs)))
        while any(episode is not None for episode in playing):
            rows = [row for row in range(num_envs) if playing[row] is not None]
            if batched:
                actions = policy.act([current[row] for row in rows], rows)
            else:
                actions = [policies[row](current[row]) for row in rows]
            if len(rows) == num_envs:  # everyone plays: one vector step
                batch = concatenate(vector_env.single_action_space, actions,
                                    create_empty_array(vector_env.single_action_space, num_envs))
                observations, rewards, terminated, truncated, infos = vector_env.step(batch)
                current = list(iterate(vector_env.observation_space, observations))
                reported = infos.get("_success", np.zeros(num_envs, dtype=bool))
                steps = {row: (float(rewards[row]), bool(terminated[row]) or bool(truncated[row]),
                               bool(infos["success"][row]) if reported[row] else None) for row in rows}
            else:  # no seed left for the finished rows: step the others alone
                steps = {}
                for row, action in zip(rows, actions):
                    current[row], reward, term, trunc, info = vector_env.envs[row].step(action)
                    steps[row] = (float(reward), term or trunc, bool(info["success"]) if "success" in info else None)
            ended = []
            for row, (reward, over, success) in steps.items():
                episode = playing[row]
                episode.total += reward
                episode.length += 1
                if success is not None:
                    episode.reported, episode.success = True, episode.success or success
                if episode.frames is not None:
                    episode.frames.append(vector_env.envs[row].render())
                if over or (max_episode_steps and episode.length >= max_episode_steps):
                    finish(row)
                    ended.append(row)
            restart = [row for row in ended if next_index < len(seeds)][: len(seeds) - next_index]
            retired = [row for row in ended if row not in restart]
            if retired and batched and hasattr(policy, "release_rows"):
                policy.release_rows(retired)
            if restart:
                current = start(restart)
    finally:
        bar.close()
        vector_env.close()
    return results


def write_gif(frames: Sequence[np.ndarray], path: str, frame_ms: int = GIF_FRAME_MS,
              max_side: int = VIDEO_MAX_SIDE, max_frames: int = VIDEO_MAX_FRAMES) -> str:
    """Write RGB frames `(height, width, 3)` uint8 as a looping GIF (scaled down to `max_side`); returns `path`.

    Longer episodes keep every k-th frame (at most `max_frames`: a 500-step Meta-World episode is 4 MB, not
    20 MB), each shown k times as long, so the GIF still lasts `len(frames) * frame_ms`."""
    from PIL import Image

    if not len(frames):
        raise ValueError(f"write_gif: no frames for {path}.")
    stride = -(-len(frames) // max_frames)
    durations = [frame_ms * min(stride, len(frames) - start) for start in range(0, len(frames), stride)]
    frames = frames[::stride]
    images = []
    for frame in frames:
        image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
        if max(image.size) > max_side:
            scale = max_side / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        images.append(image)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path
