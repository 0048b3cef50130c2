"""`python -m modeling_gato collect`: expert episodes from real environments, text, captions and VQA.

Writes one directory:

    <output_dir>/
      manifest.json          tasks, domains, action spaces, sizes, package versions, seeds
      README.md              a Hub dataset card: experts and their origin, episodes, steps, tokens, references, command
      scores.json            per task: expert and random references with provenance (`references.reference_entry`)
      episodes/<task>/       a `datasets` dataset per task, one row per episode (SPEC columns + task, rewards)
      text/                  rows {"text"}: paragraphs of Python's own documentation (offline, not ours)
      captions/              rows {"image", "text", "task"}: BabyAI agent views with captions from the level's objects
      vqa/                   rows {"image", "question", "answer", "task"}: questions about those views

Everything is written beside the target (`<output_dir>.partial`) and renamed into place at the end, so no reader
ever sees a half dataset. An interrupted run resumes: the same command keeps the tasks finished there and redoes
the rest (`collect`'s docstring); `<output_dir>.lock` keeps a second run off the same output.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..envs.experts import RandomPolicy, expert_cache_dir, make_expert
from ..envs.references import RANDOM_SEED_OFFSET, dataset_description, reference_entry
from ..envs.tasks import (
    DOMAINS,
    TASKS,
    TaskSpec,
    action_to_column,
    describe_action_space,
    get_task,
    make_env,
    observation_to_columns,
    task_name,
)
from ..utils.arguments import non_negative_float, non_negative_int, positive_int
from ..utils.jobs import (
    OutputLock,
    ResumeMismatchError,
    differences,
    move_into_place,
    package_versions,
    write_json_atomic,
)
from ..utils.settings import JobSettings

EPISODE_FEATURE_COLUMNS = (
    "text_observations",
    "image_observations",
    "discrete_observations",
    "continuous_observations",
    "discrete_actions",
    "continuous_actions",
    "rewards",
)
NOISE_STREAM = 0x6E6F697365  # seeds an episode's action noise apart from anything else seeded by the episode's seed
EPSILON_STREAM = 0x657073  # seeds an episode's random executed actions (`action_epsilon`) apart from the rest
DEFAULT_TASKS = [name for name, spec in TASKS.items() if not spec.held_out]  # held-out tasks: `adapt` only


# ---------------------------------------------------------------------------- rollouts
def noisy_action(action, space, scale: float, rng: np.random.Generator) -> np.ndarray:
    """`action` plus Gaussian noise of standard deviation `scale` times half the range of each dimension of the
    `Box` `space`, clipped into it (the action an expert's demonstration executes under `collect --action-noise`)."""
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    action = np.asarray(action, np.float64)
    return np.clip(action + rng.normal(0.0, scale, size=action.shape) * (high - low) / 2, low, high).astype(space.dtype)


def random_action_choices(env) -> list[int]:
    """The actions `action_epsilon` draws from in a `Discrete` task: all of them, except in BabyAI, where they are
    left, right, forward, pickup and drop. BabyAI's toggle opens a box, which vanishes, and the bot that ships with
    minigrid cannot plan on after that (`DisappearedBoxError`); its done does nothing."""
    space = env.action_space
    if env.spec is not None and env.spec.id.startswith("BabyAI"):
        actions = env.unwrapped.actions
        return [int(a) for a in (actions.left, actions.right, actions.forward, actions.pickup, actions.drop)]
    return [int(space.start) + k for k in range(int(space.n))]


def run_episode(env, policy, seed: int, record: bool = True, on_step=None, action_noise: float = 0.0,
                action_epsilon: float = 0.0, steps_after_success: int | None = None) -> dict[str, Any]:
    """Play one episode; returns its SPEC columns (when `record`), return, length and success.

    `action_noise` > 0 (continuous `Box` actions only; other spaces ignore it): the environment executes the
    policy's action plus Gaussian noise (`noisy_action`, seeded by the episode's `seed`), while the recorded action
    stays the policy's own. This is noise injection into the demonstrator (DART, Laskey et al. 2017): the expert
    labels the states a slightly wrong policy visits, which its own clean trajectories never reach.

    `action_epsilon` > 0 (`Discrete` actions only; other spaces ignore it) is the same for discrete actions: at each
    step, with that probability, the environment executes an action drawn uniformly from `random_action_choices`
    instead of the policy's (seeded by the episode's `seed`), and the policy's own is recorded. A policy with an
    `executed(action)` method is told what was executed (`experts.BabyAIExpert`: the bot then plans from it, e.g.
    puts back an object it did not mean to pick up).

    `steps_after_success` (None: play until the environment ends the episode): end it that many steps after the
    first step whose `info` reports success (Meta-World reports success and plays on to 500 steps; environments
    that end at success, or do not report it, are unaffected). The return is then that of the shorter episode."""
    from gymnasium.spaces import Box, Discrete

    observation, info = env.reset(seed=seed)
    policy.reset(env)
    noise = action_noise > 0 and isinstance(env.action_space, Box)
    rng = np.random.default_rng([seed, NOISE_STREAM]) if noise else None
    epsilon = action_epsilon if isinstance(env.action_space, Discrete) else 0.0
    epsilon_rng = np.random.default_rng([seed, EPSILON_STREAM]) if epsilon > 0 else None
    choices = random_action_choices(env) if epsilon > 0 else None
    columns: dict[str, list] = {}
    total, steps, success, succeeded_at = 0.0, 0, False, None
    while True:
        action = policy(observation)
        if record:
            for column, value in observation_to_columns(observation, env.observation_space).items():
                columns.setdefault(column, []).append(value)
            column, value = action_to_column(action, env.action_space)
            columns.setdefault(column, []).append(value)
        if on_step is not None:
            on_step(env, observation)
        executed = noisy_action(action, env.action_space, action_noise, rng) if noise else action
        if epsilon > 0 and epsilon_rng.random() < epsilon:
            executed = choices[int(epsilon_rng.integers(len(choices)))]
        if hasattr(policy, "executed"):
            policy.executed(executed)
        observation, reward, terminated, truncated, info = env.step(executed)
        columns.setdefault("rewards", []).append(float(reward))
        total += float(reward)
        steps += 1
        success = success or bool(info.get("success", False))
        if success and succeeded_at is None:
            succeeded_at = steps
        if terminated or truncated:
            break
        if steps_after_success is not None and succeeded_at is not None and steps - succeeded_at >= steps_after_success:
            break
    if "success" not in info and env.spec is not None and env.spec.id.startswith("BabyAI"):
        success = total > 0  # BabyAI: a positive reward is only given on success
    return {"columns": columns, "return": total, "length": steps, "success": success,
            "has_success": "success" in info or env.spec.id.startswith("BabyAI")}


def measure_policy(spec: TaskSpec, policy_name: str, episodes: int, seed: int, cache_dir: str,
                   expert_steps: int | None = None, record: bool = False, on_step=None,
                   progress: bool = True, action_noise: float = 0.0,
                   action_epsilon: float = 0.0, steps_after_success: int | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Run `episodes` episodes of the expert (trained into `cache_dir` first if it is a missing stable-baselines3
    expert) or the random policy, executing its actions with `action_noise` / `action_epsilon` and ending them
    `steps_after_success` steps after success (`run_episode`); returns the episodes and their statistics."""
    env = make_env(spec, seed=seed)
    policy = (make_expert(spec, env, cache_dir, expert_steps, train=True) if policy_name == "expert"
              else RandomPolicy(env, seed))
    results = []
    bar = tqdm(range(episodes), desc=f"{spec.name} ({policy_name})", disable=not progress, leave=False)
    for index in bar:
        results.append(run_episode(env, policy, seed=seed + index, record=record, on_step=on_step,
                                   action_noise=action_noise, action_epsilon=action_epsilon,
                                   steps_after_success=steps_after_success))
    env.close()
    outcomes = [{**r, "success": r["success"] if r["has_success"] else None} for r in results]
    return results, {"episodes": episodes, "seed": seed, **episode_statistics(outcomes)}


def episode_statistics(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation of the return, mean length, and success rate (None where no episode reports
    success) of episodes `{"return", "length", "success"}`."""
    returns = np.array([e["return"] for e in episodes], dtype=np.float64)
    successes = [e["success"] for e in episodes if e["success"] is not None]
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "mean_length": float(np.mean([e["length"] for e in episodes])),
        "success_rate": float(np.mean(successes)) if successes else None,
    }


# ---------------------------------------------------------------------------- captions and VQA
def describe_babyai_view(env) -> dict[str, Any]:
    """Objects in the agent's 7x7 view, read from the level's own symbolic observation."""
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

    grid = env.unwrapped.gen_obs()["image"]  # (7, 7, 3): object, colour, state
    objects = []
    for obj, color in zip(grid[..., 0].reshape(-1), grid[..., 1].reshape(-1)):
        name = IDX_TO_OBJECT[int(obj)]
        if name in ("door", "key", "ball", "box", "goal", "lava"):
            objects.append((IDX_TO_COLOR[int(color)], name))
    return {"objects": sorted(objects), "walls": int((grid[..., 0] == 2).sum())}


def plural(name: str, count: int = 2) -> str:
    if count == 1:
        return name
    return name + ("es" if name.endswith(("x", "s")) else "s")


NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def babyai_caption(objects: list[tuple[str, str]]) -> str:
    if not objects:
        return "an empty room with nothing but the floor and walls in view"
    counts = Counter(objects)
    parts = [f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} {color} {plural(name, n)}"
             for (color, name), n in sorted(counts.items())]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"a room with {listed} in view"


def babyai_questions(objects: list[tuple[str, str]], rng: np.random.Generator) -> list[tuple[str, str]]:
    """Question/answer pairs whose answers follow from the objects in view."""
    questions = [("how many objects are in view?", NUMBER_WORDS[min(len(objects), 10)])]
    kinds = Counter(name for _, name in objects)
    for name in ("ball", "key", "box", "door"):
        questions.append((f"how many {plural(name)} are in view?", NUMBER_WORDS[min(kinds.get(name, 0), 10)]))
    for name, n in kinds.items():
        if n == 1:
            color = next(c for c, k in objects if k == name)
            questions.append((f"what color is the {name}?", color))
    order = rng.permutation(len(questions))
    return [questions[i] for i in order[:2]]


# ---------------------------------------------------------------------------- text
def text_corpus(max_paragraphs: int | None = None, min_characters: int = 200) -> list[str]:
    """Paragraphs of Python's documentation shipped with the interpreter (the language reference topics)."""
    from pydoc_data.topics import topics

    paragraphs, current = [], ""
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            block = block.strip()
            if not block:
                continue
            current = f"{current}\n\n{block}" if current else block
            if len(current) >= min_characters:
                paragraphs.append(current)
                current = ""
                if max_paragraphs is not None and len(paragraphs) >= max_paragraphs:
                    return paragraphs
    return paragraphs


# ---------------------------------------------------------------------------- writing


def _episode_features(rows: list[dict]):
    """Arrow features for episode rows: images as PNG `Image` sequences, numbers as float32 / int64 lists."""
    from datasets import Features, Image, List, Value

    columns = {key for row in rows for key in row}
    features = {"task": Value("string")}
    if "text_observations" in columns:
        features["text_observations"] = List(Value("string"))
    if "image_observations" in columns:
        features["image_observations"] = List(Image())
    if "discrete_observations" in columns:
        features["discrete_observations"] = List(List(Value("int64")))
    if "continuous_observations" in columns:
        features["continuous_observations"] = List(List(Value("float32")))
    if "discrete_actions" in columns:
        sample = next(r["discrete_actions"][0] for r in rows if "discrete_actions" in r)
        features["discrete_actions"] = List(List(Value("int64")) if isinstance(sample, list) else Value("int64"))
    if "continuous_actions" in columns:
        features["continuous_actions"] = List(List(Value("float32")))
    features["rewards"] = List(Value("float32"))
    return Features(features)


def _to_rows(results: list[dict], task: str) -> list[dict]:
    rows = []
    for result in results:
        row = {"task": task}
        for column, values in result["columns"].items():
            if column in ("discrete_observations", "continuous_observations", "continuous_actions"):
                row[column] = [np.asarray(v).tolist() for v in values]
            else:
                row[column] = values
        rows.append(row)
    return rows


COLLECT_STATE = ".collect"  # inside the partial directory: the run's configuration and each finished task's data


def _task_rng(seed: int, task: str) -> np.random.Generator:
    """The caption/VQA generator of one task: a function of (seed, task name), so a task's data does not depend on
    which tasks came before it (a resumed run redoes only the unfinished ones)."""
    return np.random.default_rng([seed, zlib.crc32(task.encode())])


def _collect_task(spec: TaskSpec, partial: str, episodes: int, score_episodes: int, seed: int, captions_per_task: int,
                  cache_dir: str, expert_steps: int | None, versions: dict[str, str], progress: bool,
                  action_noise: float = 0.0, action_epsilon: float = 0.0,
                  steps_after_success: int | None = None) -> None:
    """Collect one task into `partial`: `episodes/<task>` and `.collect/<task>/` (its scores and manifest entries in
    `task.json`, its captions and VQA rows), each written aside and renamed; `task.json` last marks it finished.

    With `action_noise` and continuous actions, or `action_epsilon` and discrete ones, the recorded episodes execute
    noisy actions; the expert reference is then measured apart, on the same seeds without noise, so it equals a
    noise-free collection's. So is it when `steps_after_success` cuts the recorded episodes short: the reference is
    the expert's whole episodes."""
    from datasets import Dataset, DatasetInfo, Features, Image, Value
    from gymnasium.spaces import Box, Discrete

    rng = _task_rng(seed, spec.name)
    capture = []

    def on_step(env, observation):
        if spec.domain == "babyai" and len(capture) < captions_per_task and rng.random() < 0.3:
            capture.append((np.asarray(observation["image"]).copy(), describe_babyai_view(env)))

    env = make_env(spec)
    action_space = env.action_space
    env.close()
    noise = action_noise if isinstance(action_space, Box) else 0.0
    epsilon = action_epsilon if isinstance(action_space, Discrete) else 0.0
    results, expert_stats = measure_policy(spec, "expert", episodes, seed, cache_dir, expert_steps, record=True,
                                           on_step=on_step, progress=progress, action_noise=noise,
                                           action_epsilon=epsilon, steps_after_success=steps_after_success)
    if noise or epsilon or steps_after_success is not None:  # the reference is the expert's own, whole play
        _, expert_stats = measure_policy(spec, "expert", episodes, seed, cache_dir, expert_steps, progress=progress)
    _, random_stats = measure_policy(spec, "random", score_episodes, seed + RANDOM_SEED_OFFSET, cache_dir,
                                     progress=progress)
    # refuses (ValueError naming the task) an expert that does not beat random
    score = reference_entry(spec, expert_stats, random_stats, expert_steps, versions)
    rows = _to_rows(results, spec.name)
    features = _episode_features(rows)
    info = DatasetInfo(description=dataset_description(spec.name, score), features=features)
    work, target = os.path.join(partial, COLLECT_STATE, spec.name), os.path.join(partial, "episodes", spec.name)
    for path in (f"{work}.tmp", f"{target}.tmp"):
        shutil.rmtree(path, ignore_errors=True)
    Dataset.from_list(rows, features=features, info=info).save_to_disk(f"{target}.tmp")
    entry = {
        "domain": spec.domain,
        "env_id": spec.env_id,
        "make_kwargs": spec.make_kwargs,
        "expert": spec.expert,
        "expert_origin": score["expert_origin"],
        "expert_steps": score["expert_steps"],  # None: an expert that ships with a package
        "episodes": len(rows),
        "steps": int(sum(r["length"] for r in results)),
        "observation_columns": sorted(k for k in rows[0] if k.endswith("_observations")),
        "action_space": describe_action_space(action_space),
        "action_noise": noise,  # executed-action noise of the recorded episodes (0: the expert's own trajectories)
        "action_epsilon": epsilon,  # probability of a random executed action (discrete actions; 0: none)
        "steps_after_success": steps_after_success,  # recorded episodes end this many steps after success (None: whole)
    }
    captions, vqa = [], []
    for image, view in capture:
        captions.append({"image": image, "text": babyai_caption(view["objects"]), "task": spec.name})
        for question, answer in babyai_questions(view["objects"], rng):
            vqa.append({"image": image, "question": question, "answer": answer, "task": spec.name})
    os.makedirs(f"{work}.tmp")
    if captions:
        image_features = {"image": Image(), "task": Value("string")}
        Dataset.from_list(captions, features=Features({**image_features, "text": Value("string")})).save_to_disk(
            os.path.join(f"{work}.tmp", "captions"))
        Dataset.from_list(
            vqa, features=Features({**image_features, "question": Value("string"), "answer": Value("string")})
        ).save_to_disk(os.path.join(f"{work}.tmp", "vqa"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(f"{target}.tmp", target)
    write_json_atomic(os.path.join(f"{work}.tmp", "task.json"), {"scores": score, "manifest": entry})
    os.replace(f"{work}.tmp", work)  # the task is finished once this rename is done


def _finished_task(partial: str, task: str) -> bool:
    return (os.path.isfile(os.path.join(partial, COLLECT_STATE, task, "task.json"))
            and os.path.isdir(os.path.join(partial, "episodes", task)))


def _start_partial(partial: str, configuration: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """The partial directory's state: resumed when it holds the same configuration (a one-line refusal naming what
    differs when it does not, unless `fresh`), else started afresh. Returns the header (configuration, creation
    time and package versions of the first run, kept so that a resumed directory equals an uninterrupted one's)."""

    state = os.path.join(partial, COLLECT_STATE, "collect.json")
    if os.path.isdir(partial) and not fresh:
        if os.path.isfile(state):
            with open(state) as f:
                header = json.load(f)
            changed = differences(header["configuration"], configuration)
            if changed:
                raise ResumeMismatchError(
                    f"{partial} holds an interrupted collection of another configuration ({'; '.join(changed)}): "
                    "rerun it as it was, or pass --fresh to discard it.")
            return header
        if os.path.isfile(os.path.join(partial, "manifest.json")):
            return {}  # assembled, only the final rename was left
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.join(partial, COLLECT_STATE))
    header = {"configuration": configuration, "versions": package_versions(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json_atomic(state, header)
    return header


def _check_task_or_domain(setting: str, key: str) -> None:
    """A per-task setting's key must name a task or a domain (a ValueError naming the setting otherwise)."""
    if key not in TASKS and key not in DOMAINS:
        raise ValueError(f"{setting}: {key!r} is neither a task nor a domain (domains: {DOMAINS}).")


def _for_task(values: Mapping[str, Any], spec: TaskSpec, default: Any) -> Any:
    """A per-task setting's value for `spec`: its entry for the task name, else for its domain, else `default`."""
    return values.get(spec.name, values.get(spec.domain, default))


def _check_task_setting(name: str, setting: Any, expected: str, valid) -> None:
    """A setting given as one value for every task or as a mapping task/domain -> value: each key a task or domain,
    each value `valid(value)`; a ValueError naming the setting (and the key) and `expected` otherwise."""
    for key, value in setting.items() if isinstance(setting, Mapping) else [(None, setting)]:
        if key is not None:
            _check_task_or_domain(name, key)
        if not valid(value):
            where = "" if key is None else f" for {key!r}"
            raise ValueError(f"{name}: expected {expected}{where}, got {value!r}.")


def _number_for_task(setting: float | Mapping[str, float], spec: TaskSpec) -> float:
    """A setting given as one number for every task or as a mapping task/domain -> number (0 where it has none)."""
    return float(_for_task(setting, spec, 0.0) if isinstance(setting, Mapping) else setting)


@dataclass
class CollectConfig(JobSettings):
    """What `collect` gathers; every field is also a command-line flag of `collect` (`--field-name`).

    `tasks`: default every task not held out (`DEFAULT_TASKS`). Per task, `episodes` expert episodes (seeds `seed`,
    `seed + 1`, ...) and `score_episodes` random-policy episodes for the references; `captions_per_task` BabyAI
    views captioned (with VQA); `text_paragraphs` rows of text. `cache_dir`: where stable-baselines3 experts are
    trained once (with `expert_steps`, default per task) and cached. `overwrite`: replace an existing output;
    `fresh`: discard what an interrupted run left in `<output_dir>.partial`. `action_noise`: standard deviation of
    the Gaussian noise, in half action ranges, added to the executed actions of continuous-action (`Box`) tasks
    while the expert's own actions are recorded (`run_episode`; 0: none); a number for every such task, or a
    mapping task name or domain -> number (`noise_for`). At 0.1 the experts that ship with Meta-World and the PPO
    experts keep their returns, and the states their episodes visit widen, so a model trained on them sees how the
    expert recovers from errors (InvertedPendulum alone: 3% -> 100% of expert; README). `task_episodes`: a mapping
    task name or domain -> expert episodes, overriding `episodes` for those tasks (`episodes_for`): a BabyAI
    expert episode is about 6 steps where a Meta-World one is 500, so equal counts give BabyAI 1% of the steps.
    `action_epsilon`: for discrete-action (`Discrete`) tasks, the probability that a step executes a random action
    (`random_action_choices`) instead of the expert's, which is recorded (`run_episode`; 0: none); a number or a
    mapping like `action_noise`. The BabyAI bot is told the executed action and plans from it: at 0.3 it still
    succeeds in every episode, and its episodes show it turning back, going round and putting down an object it
    did not mean to pick up. `steps_after_success`: end each recorded expert episode this many steps after its
    first step that reports success (`run_episode`), for every task (a number) or per task name or domain (a
    mapping; others play whole episodes); None: whole episodes. Meta-World's experts succeed within ~40-70 of the
    500 steps and then hold still, so ~90% of a whole episode's actions are ~0 (README, "Meta-World's episodes")."""

    tasks: list[str] | None = None
    episodes: int = 20
    score_episodes: int = 10
    seed: int = 0
    text_paragraphs: int = 2000
    captions_per_task: int = 200
    cache_dir: str | None = None
    expert_steps: int | None = None
    overwrite: bool = False
    progress: bool = True
    fresh: bool = False
    action_noise: float | dict[str, float] = 0.0
    task_episodes: dict[str, int] | None = None
    action_epsilon: float | dict[str, float] = 0.0
    steps_after_success: int | dict[str, int] | None = None

    def check(self) -> CollectConfig:
        """Every setting in its range before any work starts (a ValueError naming it otherwise); returns self."""
        for name in ("episodes", "score_episodes", "text_paragraphs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}.")
        for name in ("seed", "captions_per_task"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {value!r}.")
        if self.expert_steps is not None and (not isinstance(self.expert_steps, int) or self.expert_steps < 1):
            raise ValueError(f"expert_steps: expected None (the task's default) or an integer >= 1, got "
                             f"{self.expert_steps!r}.")
        perturbations = (("action_noise", float("inf"), "a finite number >= 0 (half action ranges)"),
                         ("action_epsilon", 1.0, "a probability in [0, 1]"))
        for name, high, expected in perturbations:
            _check_task_setting(name, getattr(self, name), expected, lambda value, high=high: (
                not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= high
                and value != float("inf")))
        if self.task_episodes is not None and not isinstance(self.task_episodes, Mapping):
            raise ValueError(f"task_episodes: expected a mapping task name or domain -> episodes, got "
                             f"{self.task_episodes!r}.")
        for key, episodes in (self.task_episodes or {}).items():
            _check_task_or_domain("task_episodes", key)
            if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
                raise ValueError(f"task_episodes: expected an integer >= 1 for {key!r}, got {episodes!r}.")
        if self.steps_after_success is not None:
            _check_task_setting("steps_after_success", self.steps_after_success,
                                "None (whole episodes) or an integer >= 0",
                                lambda value: not isinstance(value, bool) and isinstance(value, int) and value >= 0)
        for name in self.tasks or ():
            get_task(name)
        return self

    def episodes_for(self, spec: TaskSpec) -> int:
        """The task's expert episodes: `task_episodes`' entry for the task, else for its domain, else `episodes`."""
        return int(_for_task(self.task_episodes or {}, spec, self.episodes))

    def noise_for(self, spec: TaskSpec) -> float:
        """The task's `action_noise`: the number, or the mapping's entry for the task, else its domain, else 0."""
        return _number_for_task(self.action_noise, spec)

    def epsilon_for(self, spec: TaskSpec) -> float:
        """The task's `action_epsilon`: the number, or the mapping's entry for the task, else its domain, else 0."""
        return _number_for_task(self.action_epsilon, spec)

    def steps_after_success_for(self, spec: TaskSpec) -> int | None:
        """The task's `steps_after_success`: the number, or the mapping's entry for the task, else its domain, else
        None (whole episodes)."""
        cut = self.steps_after_success
        return _for_task(cut, spec, None) if isinstance(cut, Mapping) else cut


def _checked_json_setting(text: str, name: str, expected: str) -> Any:
    """A command-line value given as JSON for the `CollectConfig` field `name`, checked by `CollectConfig.check`; an
    `argparse.ArgumentTypeError` (one line, `expected` on a JSON error) otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r} ({error})") from None
    try:
        CollectConfig(**{name: value}).check()
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix(f"{name}: ").rstrip(".")) from None
    return value


def action_noise_argument(text: str) -> float | dict[str, float]:
    """`--action-noise`: a number >= 0 for every continuous-action task, or a JSON object task/domain -> number."""
    if text.lstrip().startswith("{"):
        return _checked_json_setting(text, "action_noise", "a number or a JSON object")
    return non_negative_float(text)


def action_epsilon_argument(text: str) -> float | dict[str, float]:
    """`--action-epsilon`: a probability for every discrete-action task, or a JSON object task/domain -> probability."""
    if text.lstrip().startswith("{"):
        return _checked_json_setting(text, "action_epsilon", "a number or a JSON object")
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return value


def steps_after_success_argument(text: str) -> int | dict[str, int]:
    """`--steps-after-success`: an integer >= 0 for every task, or a JSON object task/domain -> integer."""
    if text.lstrip().startswith("{"):
        return _checked_json_setting(text, "steps_after_success", "an integer or a JSON object")
    return non_negative_int(text)


def task_episodes_argument(text: str) -> dict[str, int]:
    """`--task-episodes`: a JSON object task/domain -> expert episodes, e.g. '{"babyai": 1000}'."""
    return _checked_json_setting(text, "task_episodes", "a JSON object")


def collect(output_dir: str, config: CollectConfig | None = None, **settings: Any) -> dict[str, Any]:
    """Collect everything `config` (a `CollectConfig`; keyword `settings` are its fields, overriding it:
    `collect(out, tasks=["CartPole-v1"], episodes=5)`) asks for into `output_dir` atomically; returns the manifest.

    Resumable: the work goes to `<output_dir>.partial`, task by task (a task is finished once its data is renamed
    into place there). Rerun after an interruption, the same command keeps the finished tasks, redoes the unfinished
    one and goes on; the final directory equals an uninterrupted run's. Another configuration in that partial
    directory is refused unless `fresh`. `<output_dir>.lock` keeps a second run off the same output. `train` never
    sees the partial directory: the output appears by one rename at the end."""
    from datasets import Dataset, concatenate_datasets, load_from_disk

    from ..hub.cards import count_directory_tokens, write_dataset_card

    config = CollectConfig.with_settings(config, settings, "collect()").check()
    command = collect_command(output_dir, config)
    tasks = DEFAULT_TASKS if not config.tasks else list(config.tasks)
    specs = [get_task(name) for name in tasks]
    cache_dir = expert_cache_dir(config.cache_dir)
    target = os.path.abspath(output_dir).rstrip(os.sep)
    if os.path.exists(target) and not config.overwrite:
        raise FileExistsError(f"{output_dir} exists; pass --overwrite to replace it.")
    partial = f"{target}.partial"
    configuration = {"tasks": tasks, "episodes": config.episodes, "score_episodes": config.score_episodes,
                     "seed": config.seed, "text_paragraphs": config.text_paragraphs,
                     "captions_per_task": config.captions_per_task, "expert_steps": config.expert_steps,
                     "action_noise": config.action_noise, "task_episodes": config.task_episodes,
                     **({"action_epsilon": config.action_epsilon} if config.action_epsilon else {}),
                     **({"steps_after_success": config.steps_after_success}
                        if config.steps_after_success is not None else {})}
    with OutputLock(f"{target}.lock", command):
        header = _start_partial(partial, configuration, config.fresh)
        if header:
            for spec in tqdm(specs, desc="tasks", disable=not config.progress):
                if not _finished_task(partial, spec.name):
                    _collect_task(spec, partial, config.episodes_for(spec), config.score_episodes, config.seed,
                                  config.captions_per_task, cache_dir, config.expert_steps, header["versions"],
                                  config.progress, config.noise_for(spec), config.epsilon_for(spec),
                                  config.steps_after_success_for(spec))
            manifest: dict[str, Any] = {"format": "modeling_gato/episodes-v1", "seed": config.seed,
                                        "command": command,
                                        "tasks": {}, "versions": header["versions"], "created": header["created"]}
            scores: dict[str, Any] = {}
            parts: dict[str, list] = {"captions": [], "vqa": []}
            for spec in specs:
                work = os.path.join(partial, COLLECT_STATE, spec.name)
                with open(os.path.join(work, "task.json")) as f:
                    finished = json.load(f)
                scores[spec.name], manifest["tasks"][spec.name] = finished["scores"], finished["manifest"]
                for kind in parts:
                    if os.path.isdir(os.path.join(work, kind)):
                        parts[kind].append(load_from_disk(os.path.join(work, kind)))
            paragraphs = text_corpus(config.text_paragraphs)
            for kind in ("text", *parts):
                shutil.rmtree(os.path.join(partial, kind), ignore_errors=True)
            Dataset.from_dict({"text": paragraphs}).save_to_disk(os.path.join(partial, "text"))
            manifest["text"] = {"rows": len(paragraphs), "source": "pydoc_data.topics (Python's language reference)"}
            for kind, datasets in parts.items():
                if datasets:
                    concatenate_datasets(datasets).save_to_disk(os.path.join(partial, kind))
                manifest[kind] = {"rows": sum(len(d) for d in datasets)}
            manifest["scores"] = scores
            for source, counted in count_directory_tokens(partial).items():  # with GatoProcessor(), for the card
                (manifest["tasks"][source] if source in manifest["tasks"] else manifest[source])["tokens"] = counted["tokens"]
            write_json_atomic(os.path.join(partial, "scores.json"), scores)
            write_dataset_card(partial, manifest, scores, command)
            write_json_atomic(os.path.join(partial, "manifest.json"), manifest)  # last: the partial is assembled
            shutil.rmtree(os.path.join(partial, COLLECT_STATE))
        with open(os.path.join(partial, "manifest.json")) as f:
            manifest = json.load(f)
        move_into_place(partial, target)
    return manifest


def collect_command(output_dir: str, config: CollectConfig) -> str:
    """The `python -m modeling_gato collect` command line that regenerates a directory (`--cache-dir` is left
    out: it only saves retraining the stable-baselines3 experts)."""
    words = ["python", "-m", "modeling_gato", "collect", "--output-dir", output_dir]
    if config.tasks and list(config.tasks) != DEFAULT_TASKS:
        words += ["--tasks", *config.tasks]
    words += ["--episodes", str(config.episodes), "--score-episodes", str(config.score_episodes), "--seed",
              str(config.seed), "--text-paragraphs", str(config.text_paragraphs), "--captions-per-task",
              str(config.captions_per_task)]
    if config.task_episodes:
        words += ["--task-episodes", json.dumps(config.task_episodes, sort_keys=True)]
    if config.expert_steps is not None:
        words += ["--expert-steps", str(config.expert_steps)]
    for flag, value, given in (("--action-noise", config.action_noise, bool(config.action_noise)),
                               ("--action-epsilon", config.action_epsilon, bool(config.action_epsilon)),
                               ("--steps-after-success", config.steps_after_success,
                                config.steps_after_success is not None)):  # 0 steps is not the default
        if given:
            words += [flag, json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else str(value)]
    return shlex.join(words)


def score_table(scores: dict[str, Any]) -> str:
    lines = ["| task | domain | expert return | random return | expert success | random success | episodes |",
             "|---|---|---|---|---|---|---|"]
    for task, entry in scores.items():
        e, r = entry["expert"], entry["random"]

        def rate(stats):
            return "n/a" if stats["success_rate"] is None else f"{stats['success_rate']:.0%}"

        lines.append(f"| {task} | {entry['domain']} | {e['mean_return']:.3f} | {r['mean_return']:.3f} | {rate(e)} | "
                     f"{rate(r)} | {e['episodes']} / {r['episodes']} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", required=True, help="directory to write (created atomically)")
    parser.add_argument("--tasks", nargs="*", type=task_name, default=None, help=f"tasks to collect (default: all of {DEFAULT_TASKS})")
    parser.add_argument("--episodes", type=positive_int, default=20, help="expert episodes per task")
    parser.add_argument("--task-episodes", type=task_episodes_argument, default=None,
                        help="expert episodes for some tasks or domains instead of --episodes, as JSON task/domain -> "
                        "episodes, e.g. '{\"babyai\": 1000}' (a BabyAI expert episode is about 6 steps, a Meta-World one 500)")
    parser.add_argument("--score-episodes", type=positive_int, default=10, help="random-policy episodes per task for the scores")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--text-paragraphs", type=positive_int, default=2000)
    parser.add_argument("--captions-per-task", type=non_negative_int, default=200, help="BabyAI views captioned per task")
    parser.add_argument("--cache-dir", "--expert-cache", dest="cache_dir", default=None,
                        help="where trained experts are cached (default $GATO_EXPERT_CACHE, else ~/.cache/modeling_gato/experts)")
    parser.add_argument("--expert-steps", type=positive_int, default=None,
                        help="training steps of the stable-baselines3 experts (default: per task)")
    parser.add_argument("--action-noise", type=action_noise_argument, default=0.0,
                        help="Gaussian noise (standard deviation in half action ranges) added to the executed actions "
                        "of continuous-action tasks while the expert's own actions are recorded: a number, or JSON "
                        "task/domain -> number, e.g. '{\"mujoco\": 0.1}' (default 0: none)")
    parser.add_argument("--action-epsilon", type=action_epsilon_argument, default=0.0,
                        help="probability that a step of a discrete-action task executes a random action instead of "
                        "the expert's, which is recorded (the BabyAI bot plans from what was executed): a number, or "
                        "JSON task/domain -> number, e.g. '{\"babyai\": 0.3}' (default 0: none)")
    parser.add_argument("--steps-after-success", type=steps_after_success_argument, default=None,
                        help="end each recorded expert episode this many steps after its first successful step: a "
                        "number, or JSON task/domain -> number, e.g. '{\"metaworld\": 60}' (Meta-World's experts "
                        "succeed within ~70 of its 500 steps, then hold still; default: whole episodes). The expert "
                        "reference stays the whole episodes'")
    parser.add_argument("--overwrite", action="store_true", help="replace --output-dir when it exists")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the work an interrupted run left in <output-dir>.partial (default: resume it "
                        "when its configuration is the same, refuse when it is not)")


def main(args: argparse.Namespace) -> int:
    config = CollectConfig(**{f.name: getattr(args, f.name) for f in fields(CollectConfig) if f.name != "progress"})
    manifest = collect(args.output_dir, config)
    print(score_table(manifest["scores"]))
    print(f"wrote {args.output_dir}: {sum(t['episodes'] for t in manifest['tasks'].values())} episodes, "
          f"{manifest['text']['rows']} text rows, {manifest['captions']['rows']} captions, {manifest['vqa']['rows']} VQA")
    return 0
