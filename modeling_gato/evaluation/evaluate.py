"""`python -m modeling_gato evaluate`: a trained model as an agent in every task's environment, beside baselines.

Per task, on the same episode seeds:

- the model (`agent.BatchedGatoAgent` in a gymnasium vector env of `--num-envs` copies: one batched model call per
  action token with the KV cache for every environment; finished episodes are replaced without disturbing the
  others, and an episode's result depends only on its seed, see `rollouts`), prompted with the task's last
  collected episode (held out of training by `train`);
- baselines (`--baselines`): the seeded uniform `random` policy, the `expert` that made the data, and `nearest`,
  a 1-nearest-neighbour policy that plays the stored action of the closest training observation of the task
  (`baselines.NearestNeighbourPolicy`, indexed on all but the held-out episode);
- the numbers people report: mean return, success rate (where the environment reports one; BabyAI: reward > 0),
  expert-normalized return `(R - R_random) / (R_expert - R_random)` with a 95% bootstrap interval over episodes.
  The references are the expert and random returns measured with provenance by `collect` / `scores`
  (`scores.json`); a reference where expert <= random is refused, and a task without one prints "n/a";
- per domain and overall: mean, interquartile mean with a stratified 95% bootstrap interval (Agarwal et al., 2021)
  and the paper's count of tasks at >= 50% and >= 80% of the expert (`metrics.summarize`);
- the model against each baseline, per domain and overall: the IQM of the model's scores minus the baseline's
  with a paired bootstrap interval over the seeds both played (`compare_with_baseline`, `metrics.paired_difference`);
- offline action prediction on the held-out episodes (`offline`): next-action accuracy / error given the true
  history.

Writes `eval_results.md` (tables), `eval_results.json` (everything), `eval_episodes.jsonl` (one line per
episode: policy, task, seed, return, length, success, normalized score, video), `eval_scores.png` (bars with
error bars), `videos/*.gif` with `--videos K`, and, given the model directory, the metrics in the Hub's
`model-index` format in its model card (`evaluation.report.update_model_card`), so `python -m modeling_gato push` publishes
them.

Meta-World: the seed given when the environment is made fixes its set of 50 goals and the episode seed picks one
(`envs.tasks.make_env`). `collect` uses the collection seed (0 by default); evaluation uses `--env-seed`
(1 by default), so the evaluated goals are not those of the training data. The table says which.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..agent import GatoAgent
from ..data.collect import episode_statistics
from ..data.sequences import training_episode_count
from ..envs.experts import expert_cache_dir
from ..envs.references import check_reference, recorded_expert_steps
from ..envs.tasks import TASKS, get_task, task_name
from ..hub.loading import load_model
from ..utils.arguments import data_directory, model_directory, non_negative_float, non_negative_int, positive_int
from ..utils.jobs import Journal, OutputLock, ResumeMismatchError, differences
from ..utils.settings import JobSettings
from .metrics import bootstrap_ci, normalized_score, paired_difference, score_episodes, summarize
from .report import results_table, update_model_card, write_results

BASELINES = ("random", "expert", "nearest")
JOURNAL_NAME = "eval_journal.jsonl"  # header (the configuration), then one line per finished episode
LOCK_NAME = ".lock"

__all__ = ["BASELINES", "EvaluateConfig", "evaluate", "normalized_score", "play_episode", "results_table", "write_results"]


def play_episode(env, agent: GatoAgent, seed: int, max_episode_steps: int | None = None,
                 babyai: bool = False) -> dict[str, Any]:
    """One episode of `agent` in `env`: seed, return, length and success (None where the env reports none;
    BabyAI succeeds exactly when its reward is positive)."""
    observation, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    total, length, success, reported = 0.0, 0, False, "success" in info
    while True:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
        total += float(reward)
        length += 1
        reported = reported or "success" in info
        success = success or bool(info.get("success", False))
        if terminated or truncated or (max_episode_steps and length >= max_episode_steps):
            break
    if babyai:
        reported, success = True, total > 0
    return {"seed": seed, "return": total, "length": length, "success": success if reported else None}


def reference_of(task: str, scores: Mapping[str, Any]) -> dict[str, Any]:
    """The task's expert and random references from `scores.json` (refused when expert <= random)."""
    entry = scores.get(task, {})
    expert, random = entry.get("expert", {}), entry.get("random", {})
    reference = {
        "expert_return": expert.get("mean_return"),
        "random_return": random.get("mean_return"),
        "expert_success_rate": expert.get("success_rate"),
        "random_success_rate": random.get("success_rate"),
        "expert_episodes": expert.get("episodes"),
        "random_episodes": random.get("episodes"),
        "expert_origin": entry.get("expert_origin") or entry.get("expert_policy"),
        "environment": entry.get("environment") or entry.get("env_id"),
    }
    if reference["expert_return"] is not None and reference["random_return"] is not None:
        check_reference(task, reference["expert_return"], reference["random_return"])
    return reference


def policy_entry(task: str, per_episode: list[dict[str, Any]], reference: Mapping[str, Any],
                 confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Statistics of one policy's episodes on one task, normalized with the task's reference. Episodes whose
    environment failed (`"error"`, see `rollouts.run_episodes`) are left out of every statistic and listed in
    `"failed_episodes"` (their count in `"errors"`)."""
    completed = [e for e in per_episode if e.get("error") is None]
    failed = [{"seed": e["seed"], "error": e["error"]} for e in per_episode if e.get("error") is not None]
    statistics = (episode_statistics(completed) if completed else
                  {"mean_return": None, "std_return": None, "mean_length": None, "success_rate": None})
    expert, random = reference["expert_return"], reference["random_return"]
    scores = score_episodes([e["return"] for e in completed], expert, random, task) if completed else None
    for episode in per_episode:
        episode["normalized_score"] = None
    for episode, score in zip(completed, scores or [None] * len(completed)):
        episode["normalized_score"] = score
    interval = None
    if scores:
        interval = list(bootstrap_ci({task: scores}, statistic=np.mean, confidence=confidence, resamples=resamples,
                                     seed=seed))
    return {
        **statistics,
        "normalized_score": normalized_score(statistics["mean_return"], expert, random, task),
        "normalized_ci": interval,
        "episode_scores": scores,
        "errors": len(failed),
        "failed_episodes": failed,
        "episodes": per_episode,
    }


def compare_with_baseline(model_tasks: Mapping[str, Mapping[str, Any]], baseline_tasks: Mapping[str, Mapping[str, Any]],
                          confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The model's IQM minus a baseline's, per domain and overall, paired on the episode seeds both scored.

    Both arguments map a task to an entry of `policy_entry` with its "domain" (`evaluate`'s `results["tasks"]` and
    `results["baselines"][name]`). An episode counts where both policies have a normalized score on its seed
    (tasks without a return reference, and failed episodes, drop out). Returns {"domains": {domain: comparison or
    None}, "overall": comparison or None}, a comparison being `metrics.paired_difference`'s.
    """
    pairs: dict[str, list[tuple[float, float]]] = {}
    for task, entry in model_tasks.items():
        other = {e["seed"]: e.get("normalized_score") for e in baseline_tasks.get(task, {}).get("episodes", [])}
        pairs[task] = [(e["normalized_score"], other[e["seed"]]) for e in entry.get("episodes", [])
                       if e.get("normalized_score") is not None and other.get(e["seed"]) is not None]

    def compared(tasks: list[str]) -> dict[str, Any] | None:
        chosen = {task: pairs[task] for task in tasks if pairs[task]}
        return paired_difference(chosen, confidence=confidence, resamples=resamples, seed=seed) if chosen else None

    domains = sorted({entry["domain"] for entry in model_tasks.values()})
    return {"domains": {domain: compared([t for t, entry in model_tasks.items() if entry["domain"] == domain])
                        for domain in domains},
            "overall": compared(list(pairs))}


def baseline_reports(model_tasks: Mapping[str, Mapping[str, Any]], baselines: Mapping[str, Mapping[str, Any]],
                     confidence: float = 0.95, resamples: int = 2000) -> dict[str, Any]:
    """{"baseline_summaries": each baseline's `summarize`, "comparisons": the model against each baseline
    (`compare_with_baseline`)}, for the baselines that played at least one task."""
    played = {name: per_task for name, per_task in baselines.items() if per_task}
    return {"baseline_summaries": {name: summarize(per_task, confidence, resamples) for name, per_task in played.items()},
            "comparisons": {name: compare_with_baseline(model_tasks, per_task, confidence, resamples)
                            for name, per_task in played.items()}}


def trained_history_steps(model_dir: str | None) -> int | None:
    """1 when the model trained on short-context samples (`training_config.json`), else None (the whole window, the
    paper's deployment). Measured (README, "Learning to act at small budgets"): models trained with windows of 1-4
    or of 1 timestep act best seeing the current timestep alone, without a prompt (the demo generalist: CartPole
    389 against 34 with 4 timesteps and 9 with the whole window and a prompt)."""
    return 1 if _training_settings(model_dir).get("short_context_probability", 0) > 0 else None


def trained_prompt_tokens(model_dir: str | None) -> int:
    """The prompt the model's short windows started with in training (`short_context_prompt_tokens`; 0: none)."""
    return int(_training_settings(model_dir).get("short_context_prompt_tokens", 0) or 0)


def acting_settings(history_steps: int | None, prompt_tokens: int | None, model_dir: str | None) -> dict[str, Any]:
    """`evaluate`'s `history_steps` and `prompt_tokens` from the command line's (None: not given; history 0: the
    whole window), with the defaults of `evaluate`'s `"auto"`."""
    if history_steps is not None and history_steps < 0:
        raise ValueError(f"--history-steps: expected 0 (the whole window) or more, got {history_steps}.")
    if prompt_tokens is not None and prompt_tokens < 0:
        raise ValueError(f"--prompt-tokens: expected 0 (no prompt) or more, got {prompt_tokens}.")
    if history_steps is None:
        history = trained_history_steps(model_dir)
        if history is not None and prompt_tokens is None:
            prompt_tokens = trained_prompt_tokens(model_dir)
        return {"history_steps": history, "prompt_tokens": prompt_tokens}
    return {"history_steps": history_steps or None, "prompt_tokens": prompt_tokens}


def task_prompt(data_dir: str, task: str) -> dict[str, Any]:
    """The demonstration the model acts after on `task` (`evaluate`, `act`): the task's last episode in `data_dir`,
    the one `train` held out. The agent keeps its end, up to its prompt budget."""
    from datasets import load_from_disk

    path = os.path.join(data_dir, "episodes", task)
    if not os.path.isdir(path):
        raise ValueError(f"task {task!r} has no episodes in {data_dir} (no {path}).")
    rows = load_from_disk(path)
    return rows[len(rows) - 1]


def _training_settings(model_dir: str | None) -> dict[str, Any]:
    """The model's `training_config.json` (written by `train`, uploaded by `push`), or {} when there is none: from
    the directory, or for a Hub id from the Hub (through the local cache, `HF_HUB_OFFLINE` included). `train` writes
    it into its output directory when the run starts and into each `checkpoint-<step>`; a checkpoint without one (of
    a run before 2026-12-05) has its run's, in the output directory: a checkpoint is then played as the finished model
    is, not with the paper's whole window."""
    if not model_dir:
        return {}
    if os.path.isdir(model_dir):
        path = os.path.join(model_dir, "training_config.json")
        run_dir, name = os.path.split(os.path.normpath(os.path.abspath(model_dir)))
        if not os.path.isfile(path) and re.fullmatch(r"checkpoint-\d+", name):
            path = os.path.join(run_dir, "training_config.json")
    else:
        path = _hub_file(model_dir, "training_config.json")
    if path and os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return {}


@functools.cache
def _hub_file(repo_id: str, filename: str) -> str | None:
    """`filename` of the Hub model `repo_id` (downloaded or from the cache), or None when the repository has no
    such file, is not a valid id, or cannot be reached and is not cached. Asked once per process: `act` and
    `evaluate` read the training settings three times (history, prompt, held-out episodes)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return hf_hub_download(repo_id, filename)
    except (EntryNotFoundError, LocalEntryNotFoundError, HFValidationError, RepositoryNotFoundError):
        return None  # loading the model itself then says what is wrong with `repo_id`


def _held_out(model_dir: str | None) -> int:
    """How many episodes per task `train` held out for this model (`training_config.json`), else 1."""
    return int(_training_settings(model_dir).get("eval_episodes", 1))


def model_fingerprint(model) -> str | None:
    """A SHA-256 of the model's configuration and weights (names, dtypes, shapes, values): what a resumed evaluation
    checks it is evaluating the same model with. None without a model."""
    if model is None:
        return None
    digest = hashlib.sha256(model.config.to_json_string(use_diff=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _resumed_episodes(journal: Journal, configuration: Mapping[str, Any], output_dir: str,
                      resume: bool) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The episodes an earlier run of the same configuration finished in `output_dir`, by (policy, task, seed); a
    fresh journal when there is none or `resume` is False; refused when the journal holds another configuration."""
    header, records = journal.read() if resume else (None, [])
    if header is not None:
        recorded = header.get("configuration", {})
        changed = differences(recorded, configuration)
        if changed:
            raise ResumeMismatchError(
                f"{output_dir} holds an evaluation of another configuration ({'; '.join(changed)}): rerun it as it "
                "was, pass --fresh (fresh=True) to start afresh there, or choose another --output-dir.")
        return {(r["policy"], r["task"], r["seed"]): r["result"] for r in records}
    journal.start({"format": "modeling_gato/eval-journal-v1", "configuration": dict(configuration)})
    return {}


def _policy_factory(name: str, task: str, data_dir: str, expert_cache: str | None, held_out: int,
                    expert_steps: int | None = None):
    from ..acting.rollouts import expert_policy, random_policy

    if name == "random":
        return random_policy
    if name == "expert":
        return expert_policy(task, expert_cache_dir(expert_cache), expert_steps)
    if name == "nearest":
        from datasets import load_from_disk

        from ..acting.baselines import nearest_neighbour_factory

        dataset = load_from_disk(os.path.join(data_dir, "episodes", task))
        return nearest_neighbour_factory(dataset.select(range(training_episode_count(len(dataset), held_out))))
    raise ValueError(f"baselines: unknown baseline {name!r}; expected some of {list(BASELINES)}.")


@dataclass
class EvaluateConfig(JobSettings):
    """What `evaluate` plays and how; every field is also a command-line flag of `evaluate` (`--field-name`).

    `tasks`: default every task of the data directory. `episodes` per task and policy on seeds `seed`,
    `seed + 1`, ...; `env_seed`: Meta-World's goal set. `held_out`: the last episodes of each task that training
    held out (the 1-NN index and the offline metrics leave them out / score them); None: `eval_episodes` of the
    model's `training_config.json`, else 1. `history_steps`: the agent sees at most this many timesteps of the
    episode besides the prompt (None: the whole window, the paper's deployment); `"auto"`: 1 when the model
    trained on short-context samples (`trained_history_steps`), and then the prompt those samples had
    (`trained_prompt_tokens`: none unless `short_context_prompt_tokens` was set) unless `prompt_tokens` is given,
    else None. `prompt_tokens`: the demonstration's token budget (None: a quarter of the context). `temperature`:
    1 (the default) samples each action token from the model's distribution over its slot's valid ids, seeded with
    the episode seed, as the paper deploys Gato; 0 takes the most likely id (greedy). Measured (README, "Sampled
    actions"): a greedy agent that sees only the current timestep repeats any action that leaves its observation
    unchanged (BabyAI's pickup facing nothing, forward into a wall) until the episode ends.
    `continuous_temperature`: the temperature of continuous (Box) action tokens instead (None: `temperature`); 0
    with `temperature` 1 samples discrete actions and takes continuous ones greedily (README, "Greedy continuous
    actions"). `expert_cache`:
    where `collect` / `scores` cached the stable-baselines3 experts that the `expert` baseline loads (evaluation
    never trains one). `fresh`: discard a journal left in the output directory;
    `strict`: raise at the first failing environment instead of recording the episode as failed."""

    tasks: list[str] | None = None
    episodes: int = 5
    seed: int = 1000
    env_seed: int = 1
    temperature: float = 1.0
    continuous_temperature: float | None = None
    max_episode_steps: int | None = None
    prompt_tokens: int | None = None
    history_steps: int | str | None = "auto"
    num_envs: int = 1
    baselines: Sequence[str] = BASELINES
    offline: bool = True
    videos: int = 0
    expert_cache: str | None = None
    held_out: int | None = None
    confidence: float = 0.95
    resamples: int = 2000
    progress: bool = True
    fresh: bool = False
    strict: bool = False

    def check(self) -> EvaluateConfig:
        """Every setting in its range before any work starts (a ValueError naming it otherwise); returns self."""
        for name in self.baselines:
            if name not in BASELINES:
                raise ValueError(f"baselines: unknown baseline {name!r}; expected some of {list(BASELINES)}.")
        if self.episodes < 1:
            raise ValueError(f"episodes: expected at least 1, got {self.episodes}.")
        if self.num_envs < 1:
            raise ValueError(f"num_envs: expected at least 1 environment, got {self.num_envs}.")
        if self.videos < 0:
            raise ValueError(f"videos: expected 0 or more episodes to record, got {self.videos}.")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: expected at least 1 (or None for the environment's limit), got "
                             f"{self.max_episode_steps}.")
        if self.history_steps != "auto" and self.history_steps is not None and (
                not isinstance(self.history_steps, int) or self.history_steps < 1):
            raise ValueError(f"history_steps: expected None (the whole window), 'auto' or at least 1, got "
                             f"{self.history_steps!r}.")
        if self.prompt_tokens is not None and self.prompt_tokens < 0:
            raise ValueError(f"prompt_tokens: expected 0 (no prompt) or more, got {self.prompt_tokens}.")
        if not 0 <= self.temperature < float("inf"):
            raise ValueError(f"temperature: expected 0 (greedy) or a finite number above it, got {self.temperature}.")
        if self.continuous_temperature is not None and not 0 <= self.continuous_temperature < float("inf"):
            raise ValueError(f"continuous_temperature: expected None (the temperature), 0 (greedy) or a finite number "
                             f"above it, got {self.continuous_temperature}.")
        if self.held_out is not None and self.held_out < 1:
            raise ValueError(f"held_out: expected at least 1 held-out episode per task, got {self.held_out}.")
        return self


def evaluate(
    model,
    processor,
    data_dir: str,
    output_dir: str,
    config: EvaluateConfig | None = None,
    *,
    model_dir: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Evaluate `model` (and the baselines) on the tasks of `config` (an `EvaluateConfig`; keyword `settings` are
    its fields, overriding it: `evaluate(model, processor, data, out, episodes=3)`); returns and writes the results
    (see the module docstring). `model_dir`: the model's saved directory, whose training settings fill `held_out`
    and `history_steps="auto"`, and whose model card gets the metrics.

    Resumable: every finished episode is appended to `<output_dir>/eval_journal.jsonl` (after a header holding the
    configuration: model fingerprint, data, tasks, seeds and settings). Run again on the same `output_dir`, the
    evaluation reads those episodes back (they depend only on their seeds) and plays only the others, so its results
    equal an uninterrupted run's; another configuration there is refused (`ResumeMismatchError`) unless `fresh`.
    `<output_dir>/.lock` keeps a second run off the same directory (`jobs.OutputLock`).
    An environment that raises (or returns non-finite values) fails that episode only: it is recorded with its
    error, counted in `errors` and left out of the statistics; `strict=True` raises at the first one instead."""
    from ..acting.rollouts import gato_policy, run_episodes

    config = EvaluateConfig.with_settings(config, settings, "evaluate()").check()
    resume = not config.fresh
    for name in ("scores.json", "manifest.json"):
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise FileNotFoundError(f"data_dir: {data_dir} has no {name}; expected a directory written by "
                                    "`python -m modeling_gato collect` (`scores` re-measures scores.json).")
    with open(os.path.join(data_dir, "scores.json")) as f:
        scores = json.load(f)
    with open(os.path.join(data_dir, "manifest.json")) as f:
        manifest = json.load(f)
    held_out = _held_out(model_dir) if config.held_out is None else config.held_out
    history_steps, prompt_tokens = config.history_steps, config.prompt_tokens
    if history_steps == "auto":  # the agent sees what the model's short-context samples showed it
        acting = acting_settings(None, prompt_tokens, model_dir)
        history_steps, prompt_tokens = acting["history_steps"], acting["prompt_tokens"]
    tasks = config.tasks or [t for t in manifest["tasks"] if t in TASKS]
    for task in tasks:
        get_task(task)
        if task not in manifest["tasks"]:
            raise ValueError(f"tasks: {task!r} is not in {data_dir} (it has {sorted(manifest['tasks'])}).")
    seeds = list(range(config.seed, config.seed + config.episodes))
    results: dict[str, Any] = {
        "tasks": {}, "baselines": {name: {} for name in config.baselines}, "episodes": config.episodes, "seed": config.seed,
        "env_seed": config.env_seed, "temperature": config.temperature, "max_episode_steps": config.max_episode_steps,
        "num_envs": config.num_envs, "data_dir": data_dir, "held_out": held_out, "history_steps": history_steps,
        "prompt_tokens": prompt_tokens, "confidence": config.confidence,
        "continuous_temperature": config.continuous_temperature,
    }
    configuration = {
        "model": model_fingerprint(model), "data_dir": os.path.abspath(data_dir), "data_created": manifest.get("created"),
        "tasks": list(tasks), "seeds": seeds, "env_seed": config.env_seed, "temperature": config.temperature,
        "max_episode_steps": config.max_episode_steps, "history_steps": history_steps, "prompt_tokens": prompt_tokens,
        "baselines": list(config.baselines), "held_out": held_out, "videos": config.videos,
        # only when given, so that journals written before the option still resume
        **({} if config.continuous_temperature is None else {"continuous_temperature": config.continuous_temperature}),
    }
    video_dir = os.path.join(output_dir, "videos") if config.videos else None
    started = time.time()
    timings: dict[str, float] = {}
    os.makedirs(output_dir, exist_ok=True)
    with OutputLock(os.path.join(output_dir, LOCK_NAME), shlex.join(sys.argv)):
        journal = Journal(os.path.join(output_dir, JOURNAL_NAME))
        finished = _resumed_episodes(journal, configuration, output_dir, resume)
        bar = tqdm(total=len(tasks) * (1 + len(config.baselines)), desc="evaluate", disable=not config.progress)

        def play(name: str, task: str, make_policy, record_videos: int = 0) -> list[dict[str, Any]]:
            """The policy's episodes of every seed: read back from the journal, or played (and journaled)."""
            known = {s: finished[(name, task, s)] for s in seeds if (name, task, s) in finished}
            remaining = [s for s in seeds if s not in known]
            if remaining:
                def journaled(index: int, result: dict[str, Any]) -> None:
                    if "video" in result:  # paths relative to the output directory, which may be moved
                        result["video"] = os.path.relpath(result["video"], output_dir)
                    journal.append({"policy": name, "task": task, "seed": result["seed"], "result": result})

                played = run_episodes(task, make_policy(), remaining, num_envs=config.num_envs, env_seed=config.env_seed,
                                      max_episode_steps=config.max_episode_steps, video_dir=video_dir,
                                      videos=sum(s in remaining for s in seeds[:record_videos]), progress=False,
                                      on_episode=journaled, strict=config.strict)
                known.update(zip(remaining, played))
            bar.update(1)
            return [known[s] for s in seeds]

        for task in tasks:
            spec = get_task(task)
            reference = reference_of(task, scores)

            def model_policy(spec=spec, task=task):
                prompt = task_prompt(data_dir, task)
                return gato_policy(model, processor, spec, num_envs=config.num_envs, prompt=prompt,
                                   prompt_tokens=prompt_tokens, temperature=config.temperature, history_steps=history_steps,
                                   continuous_temperature=config.continuous_temperature)

            clock = time.perf_counter()
            per_episode = play("model", task, model_policy, config.videos)
            timings[task] = time.perf_counter() - clock
            entry = {"domain": spec.domain, **reference}
            entry.update(policy_entry(task, per_episode, reference, config.confidence, config.resamples))
            results["tasks"][task] = entry
            for name in config.baselines:
                def baseline(name=name, task=task):
                    return _policy_factory(name, task, data_dir, config.expert_cache, held_out,
                                           recorded_expert_steps(data_dir, task))

                played = play(name, task, baseline)
                results["baselines"][name][task] = {"domain": spec.domain,
                                                    **policy_entry(task, played, reference, config.confidence, config.resamples)}
        bar.close()
        results["model_seconds"] = timings
        results["summary"] = summarize(results["tasks"], config.confidence, config.resamples)
        results.update(baseline_reports(results["tasks"], results["baselines"], config.confidence, config.resamples))
        if config.offline:
            from .offline import offline_metrics_for_directory

            results["offline"] = offline_metrics_for_directory(model, processor, data_dir, tasks, held_out=held_out,
                                                               progress=False)
        results["seconds"] = time.time() - started
        write_results(results, output_dir)
        if model_dir is not None:
            update_model_card(model_dir, results)
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=model_directory, help="a saved model directory (model + processor)")
    parser.add_argument("--data", required=True, type=data_directory, help="a directory written by `collect` (scores and prompts)")
    parser.add_argument("--output-dir", default=None, help="where to write results (default: <model>/eval)")
    parser.add_argument("--tasks", nargs="*", type=task_name, default=None)
    parser.add_argument("--episodes", type=positive_int, default=5, help="episodes per task and policy")
    parser.add_argument("--seed", type=non_negative_int, default=1000, help="first episode seed")
    parser.add_argument("--env-seed", type=non_negative_int, default=1, help="Meta-World goal-set seed (collection uses 0)")
    parser.add_argument("--temperature", type=non_negative_float, default=1.0,
                        help="1: sample each action token, as the paper does (default); 0: greedy actions")
    parser.add_argument("--continuous-temperature", type=non_negative_float, default=None,
                        help="the temperature of continuous (Box) action tokens instead (default: --temperature); "
                        "0: greedy continuous actions beside sampled discrete ones")
    parser.add_argument("--max-episode-steps", type=positive_int, default=None)
    parser.add_argument("--num-envs", type=positive_int, default=4,
                        help="environments played at once (gymnasium vector env, one batched model call per token)")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES),
                        help="baselines played on the same seeds (default: all; none: --baselines)")
    parser.add_argument("--no-offline", action="store_true", help="skip offline action prediction")
    parser.add_argument("--videos", type=non_negative_int, nargs="?", const=1, default=0,
                        help="record the first K episodes of each task as GIFs (--videos alone: 1)")
    parser.add_argument("--held-out", type=positive_int, default=None,
                        help="episodes per task held out of training (default: the model's training_config.json, else 1)")
    parser.add_argument("--expert-cache", "--cache-dir", dest="expert_cache", default=None,
                        help="where `collect` cached the stable-baselines3 experts the expert baseline loads (default "
                        "$GATO_EXPERT_CACHE, else ~/.cache/modeling_gato/experts); evaluation never trains one")
    parser.add_argument("--no-card", action="store_true", help="do not write the metrics into the model card")
    parser.add_argument("--prompt-tokens", type=non_negative_int, default=None,
                        help="token budget of the demonstration prompt (0: none; default: when the agent acts with the "
                        "short history of the model's training, the prompt its short windows had (none unless "
                        "--short-context-prompt-tokens was set), else a quarter of the context)")
    parser.add_argument("--history-steps", type=non_negative_int, default=None,
                        help="timesteps of the episode the agent sees besides the prompt; 0: the whole window (the "
                        "paper's); default: 1 (after the prompt its short windows had, none unless "
                        "--short-context-prompt-tokens was set) when the model trained on short-context samples, else 0")
    parser.add_argument("--device", default=None)
    parser.add_argument("--fresh", action="store_true",
                        help="start afresh in --output-dir, discarding the episodes an earlier run journaled there "
                        "(default: resume them when the configuration is the same, refuse when it is not)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first environment that fails (default: record that episode as failed, go on)")


def config_from_arguments(args: argparse.Namespace) -> EvaluateConfig:
    """The `EvaluateConfig` of an `evaluate` command line; the model's training settings (its directory's
    `training_config.json`, or the Hub's for a Hub id) fill --held-out and the acting history."""
    return EvaluateConfig(
        tasks=args.tasks, episodes=args.episodes, seed=args.seed, env_seed=args.env_seed, temperature=args.temperature,
        continuous_temperature=args.continuous_temperature,
        max_episode_steps=args.max_episode_steps, num_envs=args.num_envs, baselines=args.baselines,
        offline=not args.no_offline, videos=args.videos, expert_cache=args.expert_cache, fresh=args.fresh,
        strict=args.strict, held_out=args.held_out if args.held_out is not None else _held_out(args.model),
        **acting_settings(args.history_steps, args.prompt_tokens, args.model),
    )


def main(args: argparse.Namespace) -> int:
    local = os.path.isfile(os.path.join(args.model, "config.json"))
    if not local and args.output_dir is None:
        raise ValueError(f"--model {args.model} is not a local model directory (no config.json): pass --output-dir "
                         "for the results (the model card is only updated in a local directory).")
    torch.manual_seed(args.seed)
    model, processor = load_model(args.model, args.device)
    output_dir = args.output_dir or os.path.join(args.model, "eval")
    card = local and not args.no_card
    results = evaluate(model, processor, args.data, output_dir, config_from_arguments(args),
                       model_dir=args.model if card else None)
    print(results_table(results))
    print(f"wrote {output_dir}/eval_results.md, eval_results.json, eval_episodes.jsonl, eval_scores.png"
          + (f" and the model-index metrics in {args.model}/README.md" if card else ""))
    return 0
