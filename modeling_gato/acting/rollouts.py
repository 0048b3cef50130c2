"""Many episodes of a task at once: gymnasium vector environments, batched policies, per-episode results, videos.

`run_episodes(task, policy, seeds, num_envs)` plays `len(seeds)` episodes (episode `k` is reset with `seeds[k]`)
in a `gymnasium.vector.SyncVectorEnv` of `num_envs` copies of `environments.make_env(task, seed=env_seed)`, with
autoreset disabled. Its sub-environments (`vector_env.envs`) are reset and stepped one by one, which is what
`SyncVectorEnv.reset/step` do inside, so that one raising does not stop the others: an exception in `reset` or
`step`, or a non-finite observation or reward, fails that episode only (recorded with its error; the
sub-environment is rebuilt; `strict=True` raises instead). When an episode ends, its sub-environment is reset with
the next seed while the others go on; once no seed is left, the rows still playing play on alone.

The policy is either
- a *batch policy* with `reset_rows(rows, seeds)` and `act(observations, rows) -> actions` (raw observations in,
  environment actions out; `release_rows(rows)` is called, when it exists, for rows with no episode left):
  `agent.BatchedGatoAgent` (one model call per action token for all rows, one KV cache) or `GatoAgentRows` (one
  `GatoAgent` per row, called one after the other: the one-at-a-time reference); or
- a *per-environment factory* `make(env) -> policy` with `reset(env)` (or `reset(env, seed=...)`, then called with
  the episode seed) and `policy(observation) -> action`, as `envs.experts.BabyAIExpert`, `MetaWorldExpert`,
  `StableBaselinesExpert`; `random_policy` and `expert_policy` build such factories.

An episode's result depends only on its seed (and the env seed), never on `num_envs` or on which sub-environment
played it: every sub-environment is reset with the episode seed (Meta-World's goal too: see
`envs.tasks._seeded_goal_wrapper`), batch policies are reset with it, and factory policies that take a seed
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

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..agent import BatchedGatoAgent, GatoAgent
from ..envs.experts import StableBaselinesExpert, load_sb3_expert, make_expert
from ..envs.tasks import TaskSpec, get_task, make_env

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
                history_steps: int | None = None,
                continuous_temperature: float | None = None) -> BatchedGatoAgent | GatoAgentRows:
    """A Gato batch policy for `task` with `num_envs` rows: `BatchedGatoAgent` or, with `batched=False`,
    `GatoAgentRows` (one `GatoAgent` per row)."""
    env = make_env(task)
    spaces = env.observation_space, env.action_space
    env.close()
    kind = BatchedGatoAgent if batched else GatoAgentRows
    return kind(model, processor, *spaces, num_envs, prompt=prompt, prompt_tokens=prompt_tokens,
                context_length=context_length, temperature=temperature, history_steps=history_steps,
                continuous_temperature=continuous_temperature)


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
    """Per-environment factory of the task's expert (a stable-baselines3 expert is loaded once from `cache_dir` and
    shared; one that `collect` or `scores` never trained there raises `ExpertNotTrainedError`: acting never trains)."""
    spec = get_task(task) if isinstance(task, str) else task
    if spec.expert.startswith("sb3_"):
        model = load_sb3_expert(spec, cache_dir, expert_steps)
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


def _non_finite(value: Any) -> bool:
    """Whether an observation (array, number or nested dict/tuple of them) holds a NaN or an infinity."""
    if isinstance(value, Mapping):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, (str, bytes)):
        return False
    array = np.asarray(value)
    return array.dtype.kind in "fc" and not np.isfinite(array).all()


class EnvironmentFailure(RuntimeError):
    """An environment raised (or returned a non-finite observation or reward) during an episode."""


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
    on_episode: Callable[[int, dict[str, Any]], None] | None = None,
    strict: bool = False,
    video_offset: int = 0,
) -> list[dict[str, Any]]:
    """Play `len(seeds)` episodes (episode `k` reset with `seeds[k]`) in a `SyncVectorEnv` of `num_envs` copies of
    `make_env(task, seed=env_seed)` (at most one per episode).

    Returns per-episode dicts in seed order: `seed`, `return`, `length`, `success` (None where the environment
    reports none; BabyAI: `return > 0`) and `video` (the GIF's path, for the first `videos` episodes when
    `video_dir` is given; `video_offset`: how many episodes of the run came before `seeds`, for a resumed run).
    `on_episode(k, result)` is called as each episode ends (in the order they end), e.g. to journal it.

    An exception raised by the environment's `reset` or `step`, or a non-finite observation or reward, ends that
    episode only: its result is `{"seed", "return": None, "length": steps played, "success": None, "error": "..."}`,
    the sub-environment is rebuilt, and the other episodes go on; `strict=True` raises instead. Exceptions of the
    policy are not caught. See the module docstring for the policy protocols.
    """
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

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
    envs = vector_env.envs  # reset and stepped one by one, so that one raising does not stop the others
    policies = None if batched else [policy(env) for env in envs]
    babyai = spec.domain == "babyai"

    results: list[dict[str, Any] | None] = [None] * len(seeds)
    playing: list[_Episode | None] = [None] * num_envs
    current: list[Any] = [None] * num_envs
    next_index = 0
    bar = tqdm(total=len(seeds), desc=desc or spec.name, disable=not progress, leave=False)

    def done(episode: _Episode, result: dict[str, Any]) -> None:
        results[episode.index] = result
        bar.update(1)
        if on_episode is not None:
            on_episode(episode.index, result)

    def failed(row: int, error: BaseException) -> None:
        """The environment of `row` failed: record the episode's error, rebuild the environment."""
        if strict:
            raise error
        episode, playing[row] = playing[row], None
        message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        done(episode, {"seed": episode.seed, "return": None, "length": episode.length, "success": None,
                       "error": message})
        with contextlib.suppress(Exception):
            envs[row].close()
        envs[row] = make()
        if not batched:
            policies[row] = policy(envs[row])

    def start(rows: list[int]) -> list[int]:
        """Reset `rows` with their next episode's seed (skipping seeds whose reset fails); returns the rows that
        start an episode (the others have no seed left)."""
        nonlocal next_index
        started = []
        for row in rows:
            while next_index < len(seeds):
                episode = playing[row] = _Episode(next_index, seeds[next_index])
                next_index += 1
                try:
                    observation, info = envs[row].reset(seed=episode.seed)
                    if _non_finite(observation):
                        raise EnvironmentFailure(f"reset(seed={episode.seed}) returned a non-finite observation")
                except Exception as error:  # the environment's fault: this episode fails, the next seed goes on
                    failed(row, error)
                    continue
                current[row] = observation
                episode.reported = "success" in info
                if video_offset + episode.index < videos and recording:
                    episode.frames = [envs[row].render()]
                if not batched:
                    _reset_policy(policies[row], envs[row], episode.seed)
                started.append(row)
                break
        if batched and started:
            policy.reset_rows(started, [playing[row].seed for row in started])
        return started

    def finish(row: int) -> None:
        episode, playing[row] = playing[row], None
        success = episode.success if episode.reported else None
        if babyai:
            success = episode.total > 0  # BabyAI rewards only success
        result = {"seed": episode.seed, "return": episode.total, "length": episode.length, "success": success}
        if episode.frames is not None:
            result["video"] = write_gif(episode.frames, os.path.join(video_dir, f"{spec.name}-seed{episode.seed}.gif"))
        done(episode, result)

    def retire(rows: list[int]) -> None:
        if rows and batched and hasattr(policy, "release_rows"):
            policy.release_rows(rows)

    try:
        started = start(list(range(num_envs)))
        retire([row for row in range(num_envs) if row not in started])
        while any(episode is not None for episode in playing):
            rows = [row for row in range(num_envs) if playing[row] is not None]
            if batched:
                actions = policy.act([current[row] for row in rows], rows)
            else:
                actions = [policies[row](current[row]) for row in rows]
            ended = []
            for row, action in zip(rows, actions):
                episode = playing[row]
                try:
                    observation, reward, terminated, truncated, info = envs[row].step(action)
                    if _non_finite(observation) or not np.isfinite(reward):
                        raise EnvironmentFailure(f"step {episode.length + 1} returned a non-finite "
                                                f"{'observation' if _non_finite(observation) else 'reward'}")
                except Exception as error:
                    failed(row, error)
                    ended.append(row)
                    continue
                current[row] = observation
                episode.total += float(reward)
                episode.length += 1
                if "success" in info:
                    episode.reported, episode.success = True, episode.success or bool(info["success"])
                if episode.frames is not None:
                    episode.frames.append(envs[row].render())
                if terminated or truncated or (max_episode_steps and episode.length >= max_episode_steps):
                    finish(row)
                    ended.append(row)
            if ended:
                started = start(ended)
                retire([row for row in ended if row not in started])
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
