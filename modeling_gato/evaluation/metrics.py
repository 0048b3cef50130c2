"""The numbers people report for a generalist agent: expert-normalized scores, IQM with bootstrap CIs, counts.

Pure numpy (no environment imports), after the conventions of the field:

- expert-normalized return `(R - R_random) / (R_expert - R_random)` (Reed et al. 2022, section 4.1), refused
  (`check_reference`) when the reference is undefined, i.e. expert <= random. (JAT's normalizer prints 1.0
  there; an undefined ratio must never print as a score.)
- interquartile mean (IQM) over pooled episodes with a stratified percentile-bootstrap 95% confidence interval
  (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", the `rliable` library):
  IQM is `scipy.stats.trim_mean(x, 0.25)`, and each bootstrap sample resamples episodes with replacement
  within each task, then pools them.
- the Gato paper's counts of tasks at >= 50% and >= 80% of the expert's score (its Figure 5).
- the difference between two policies played on the same seeds (`paired_difference`): the statistic of one minus
  that of the other with a stratified *paired* bootstrap interval, which resamples seeds, not each policy's episodes
  independently, so what the seeds make easy or hard for both cancels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..envs.references import check_reference
from ..hub.cards import format_number, format_percent

THRESHOLDS = {"at_least_50": 0.5, "at_least_80": 0.8}


def normalized_score(value: float | None, expert: float | None, random: float | None,
                     task: str = "task") -> float | None:
    """`(value - random) / (expert - random)`; None when any of the three is None.

    Raises ValueError (via `check_reference`) when expert <= random: such a table is refused, never scored.
    """
    if value is None or expert is None or random is None:
        return None
    check_reference(task, expert, random)
    return (float(value) - float(random)) / (float(expert) - float(random))


def score_episodes(returns: Sequence[float], expert: float | None, random: float | None,
                   task: str = "task") -> list[float] | None:
    """Per-episode expert-normalized scores of `returns`; None when the task has no return reference."""
    if expert is None or random is None:
        return None
    return [normalized_score(value, expert, random, task) for value in returns]


def interquartile_mean(values: Sequence[float] | np.ndarray) -> float:
    """The mean of the middle 50% of `values`: `scipy.stats.trim_mean(values, 0.25)`.

    `int(0.25 * n)` values are cut from each end of the sorted values (so for n not divisible by 4 slightly
    more than half is kept), exactly as scipy and rliable do.
    """
    array = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if array.size == 0:
        raise ValueError("interquartile_mean needs at least one value, got none.")
    cut = int(0.25 * array.size)
    return float(array[cut:array.size - cut].mean())


def _clean(scores: Sequence[float] | None) -> np.ndarray:
    return np.asarray([] if scores is None else scores, dtype=np.float64).reshape(-1)


def bootstrap_ci(
    scores_by_task: Mapping[str, Sequence[float] | None],
    statistic: Callable[[np.ndarray], float] = interquartile_mean,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Stratified percentile-bootstrap confidence interval of `statistic` over pooled episodes.

    Each of `resamples` bootstrap samples draws, for every task (in the mapping's order), as many episodes as
    it has, with replacement from that task's episodes; the draws are pooled and `statistic` is applied. The
    interval is the `(1 - confidence) / 2` and `(1 + confidence) / 2` percentiles of those statistics (linear
    interpolation, as numpy). Tasks with no scores (None or empty) are skipped.
    """
    _check_bootstrap(confidence, resamples)
    tasks = [(task, _clean(scores)) for task, scores in scores_by_task.items()]
    tasks = [(task, scores) for task, scores in tasks if scores.size]
    if not tasks:
        raise ValueError("bootstrap_ci needs at least one task with scores, got none.")
    for task, scores in tasks:
        _check_finite(task, scores)
    rng = np.random.default_rng(seed)
    draws = [scores[rng.integers(0, scores.size, size=(resamples, scores.size))] for _, scores in tasks]
    pooled = np.concatenate(draws, axis=1)  # (resamples, total episodes)
    return _percentile_interval(np.array([statistic(sample) for sample in pooled]), confidence)


def _check_bootstrap(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}.")


def _check_finite(task: str, scores: np.ndarray) -> None:
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"task {task}: episode scores must be finite, got {scores.tolist()}.")


def _percentile_interval(statistics: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.percentile(statistics, [100 * tail, 100 * (1 - tail)])
    return float(low), float(high)


def paired_difference(
    pairs_by_task: Mapping[str, Sequence[tuple[float, float]] | None],
    statistic: Callable[[np.ndarray], float] = interquartile_mean,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """`statistic(first) - statistic(second)` over pooled episodes, and its stratified paired bootstrap interval.

    `pairs_by_task[task]` holds one `(first, second)` pair of scores per episode seed: the two policies' episodes
    on that seed. Each of `resamples` bootstrap samples draws, for every task (in the mapping's order), as many
    seeds as it has, with replacement, and takes *both* policies' scores at the drawn seeds; the statistic is
    applied to each policy's pooled draws and the difference taken. The interval is the `(1 - confidence) / 2` and
    `(1 + confidence) / 2` percentiles of those differences (linear interpolation, as numpy). Two policies whose
    scores differ by a constant on every seed get that constant as the difference and as both ends of the
    interval; intervals of the two statistics taken separately would overlap. Tasks with no pairs (None or
    empty) are skipped.

    Returns {"difference": float, "ci": [low, high], "episodes": the number of pairs}; "ci" is None when every task
    has a single pair (one seed: a bootstrap would return the difference itself, which is no interval).
    """
    _check_bootstrap(confidence, resamples)
    tasks = []
    for task, pairs in pairs_by_task.items():
        if pairs is None or len(pairs) == 0:
            continue
        try:
            array = np.asarray(pairs, dtype=np.float64)
        except ValueError as error:  # ragged input
            raise ValueError(f"task {task}: expected (first, second) score pairs, shape (episodes, 2): {error}") from None
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"task {task}: expected (first, second) score pairs, shape (episodes, 2), got an array "
                             f"of shape {array.shape}.")
        _check_finite(task, array)
        tasks.append(array)
    if not tasks:
        raise ValueError("paired_difference needs at least one task with score pairs, got none.")
    pooled = np.concatenate(tasks)
    difference = statistic(pooled[:, 0]) - statistic(pooled[:, 1])
    if max(len(array) for array in tasks) < 2:  # one seed per task: nothing to resample, no interval
        return {"difference": float(difference), "ci": None, "episodes": int(len(pooled))}
    rng = np.random.default_rng(seed)
    draws = np.concatenate([array[rng.integers(0, len(array), size=(resamples, len(array)))] for array in tasks],
                           axis=1)  # (resamples, total pairs, 2)
    differences = np.array([statistic(sample[:, 0]) - statistic(sample[:, 1]) for sample in draws])
    return {"difference": float(difference), "ci": list(_percentile_interval(differences, confidence)),
            "episodes": int(len(pooled))}


def _summarize_group(per_task: Mapping[str, Mapping[str, Any]], confidence: float, resamples: int,
                     seed: int) -> dict[str, Any]:
    means = {t: r.get("normalized_score") for t, r in per_task.items()}
    scored = {t: float(v) for t, v in means.items() if v is not None}
    episodes = {t: _clean(r.get("episode_scores")) for t, r in per_task.items() if means[t] is not None}
    episodes = {t: v for t, v in episodes.items() if v.size}
    pooled = np.concatenate(list(episodes.values())) if episodes else np.zeros(0)
    successes = [float(r["success_rate"]) for r in per_task.values() if r.get("success_rate") is not None]
    summary: dict[str, Any] = {
        "tasks": len(per_task),
        "tasks_scored": len(scored),
        "mean": float(np.mean(list(scored.values()))) if scored else None,
        "iqm": interquartile_mean(pooled) if pooled.size else None,
        "iqm_ci": list(bootstrap_ci(episodes, interquartile_mean, confidence, resamples, seed)) if episodes else None,
        "episodes_scored": int(pooled.size),
        "tasks_with_success": len(successes),
        "mean_success_rate": float(np.mean(successes)) if successes else None,
    }
    for key, threshold in THRESHOLDS.items():
        summary[key] = int(sum(value >= threshold for value in scored.values()))
    return summary


def summarize(per_task: Mapping[str, Mapping[str, Any]], confidence: float = 0.95, resamples: int = 2000,
              seed: int = 0) -> dict[str, Any]:
    """Per-domain and overall summary of per-task results.

    `per_task[task]` holds "domain", "normalized_score" (the task's mean expert-normalized score, None where
    the task has no defined return reference), "episode_scores" (per-episode normalized scores, None or empty
    likewise) and optionally "success_rate". Every task counts in "tasks" (success-only tasks too); the
    score statistics use the scored ones:

    - "mean": the mean of the task means; "iqm" and "iqm_ci" ([low, high], `confidence` level): the IQM over
      the pooled episodes and its stratified bootstrap interval;
    - "at_least_50" / "at_least_80": how many tasks have a mean normalized score >= 0.5 / >= 0.8;
    - "mean_success_rate" over the "tasks_with_success" tasks that report a success rate.
    """
    for task, result in per_task.items():
        if "domain" not in result:
            raise ValueError(f"task {task}: a per-task result needs a 'domain', got keys {sorted(result)}.")
    domains: dict[str, dict[str, Mapping[str, Any]]] = {}
    for task, result in per_task.items():
        domains.setdefault(result["domain"], {})[task] = result
    return {
        "domains": {d: _summarize_group(tasks, confidence, resamples, seed) for d, tasks in sorted(domains.items())},
        "overall": _summarize_group(per_task, confidence, resamples, seed),
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
    }


def format_iqm(group: Mapping[str, Any]) -> str:
    """A `summarize` group's IQM with its interval, `0.540 [0.410, 0.664]` ("n/a" without one)."""
    ci = group.get("iqm_ci")
    return format_number(group.get("iqm")) + ("" if not ci else f" [{format_number(ci[0])}, {format_number(ci[1])}]")


def summary_table(summary: Mapping[str, Any]) -> str:
    """A markdown table of `summarize`'s output: one row per domain and one overall."""
    level = f"{summary.get('confidence', 0.95):.0%}"
    lines = [f"| domain | tasks (scored) | mean normalized | IQM [{level} CI] | >= 50% | >= 80% | mean success |",
             "|---|---|---|---|---|---|---|"]
    rows = [*summary["domains"].items(), ("**overall**", summary["overall"])]
    for name, group in rows:
        lines.append(
            f"| {name} | {group['tasks']} ({group['tasks_scored']}) | {format_number(group['mean'])} | "
            f"{format_iqm(group)} | {group['at_least_50']} | {group['at_least_80']} | "
            f"{format_percent(group['mean_success_rate'])} |"
        )
    return "\n".join(lines)
