"""Expert-normalized scores, IQM, stratified bootstrap CIs and the paper's counts (modeling_gato.evaluation.metrics)."""

import numpy as np
import pytest

from modeling_gato.evaluation.metrics import (
    bootstrap_ci,
    check_reference,
    interquartile_mean,
    normalized_score,
    paired_difference,
    score_episodes,
    summarize,
    summary_table,
)


def test_normalized_score_and_none_propagation():
    assert normalized_score(3.0, expert=5.0, random=1.0) == 0.5
    assert normalized_score(5.0, 5.0, 1.0) == 1.0 and normalized_score(1.0, 5.0, 1.0) == 0.0
    assert normalized_score(-1.0, 5.0, 1.0) == -0.5  # below random is negative, not clipped
    assert normalized_score(None, 5.0, 1.0) is None
    assert normalized_score(3.0, None, 1.0) is None
    assert normalized_score(3.0, 5.0, None) is None
    assert score_episodes([1.0, 3.0, 5.0], expert=5.0, random=1.0) == [0.0, 0.5, 1.0]
    assert score_episodes([1.0], expert=None, random=1.0) is None  # no return reference: success-only task


@pytest.mark.parametrize("expert, random", [(1.0, 1.0), (0.0, 0.5)])
def test_expert_not_above_random_is_refused(expert, random):
    with pytest.raises(ValueError, match=r"task BabyAI-Foo-v0: the expert's mean return .* is not above"):
        check_reference("BabyAI-Foo-v0", expert, random)
    with pytest.raises(ValueError, match="task metaworld-bar-v3"):
        normalized_score(0.0, expert, random, task="metaworld-bar-v3")  # JAT would print 1.0 here: we refuse
    check_reference("ok", 1.0, 0.0)  # a defined reference passes


def test_interquartile_mean_hand_computed():
    assert interquartile_mean(np.arange(1, 9)) == 4.5  # cut 2 each end of 1..8: mean(3, 4, 5, 6)
    assert interquartile_mean([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # order does not matter
    # n = 10: int(2.5) = 2 cut each end -> mean(3..8) = 5.5; n = 7: int(1.75) = 1 -> mean(2..6) = 4
    assert interquartile_mean(np.arange(1, 11)) == 5.5
    assert interquartile_mean([1, 2, 3, 4, 5, 6, 100]) == 4.0
    assert interquartile_mean([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1000.0, -1000.0]) == pytest.approx(0.6)
    assert interquartile_mean([3.0]) == 3.0 and interquartile_mean([1.0, 2.0, 3.0]) == 2.0  # n < 4: plain mean
    with pytest.raises(ValueError, match="at least one value"):
        interquartile_mean([])


def test_interquartile_mean_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in range(1, 40):
        values = rng.normal(size=n) ** 3
        assert interquartile_mean(values) == pytest.approx(stats.trim_mean(values, 0.25), abs=1e-12)


def _reference_bootstrap(scores_by_task, statistic, confidence, resamples, seed):
    """A straightforward loop version of the stratified percentile bootstrap."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(v, float) for v in scores_by_task.values() if v]
    per_task = []
    for scores in tasks:
        per_task.append([scores[rng.integers(0, len(scores), size=len(scores))] for _ in range(resamples)])
    values = [statistic(np.concatenate([per_task[t][b] for t in range(len(tasks))])) for b in range(resamples)]
    values = sorted(values)
    tail = (1 - confidence) / 2

    def percentile(q):  # linear interpolation between closest ranks, as numpy's default
        position = q * (len(values) - 1)
        below = int(np.floor(position))
        above = min(below + 1, len(values) - 1)
        return values[below] + (values[above] - values[below]) * (position - below)

    return percentile(tail), percentile(1 - tail)


def test_bootstrap_ci_matches_a_loop_reimplementation():
    scores = {"a": [0.1, 0.5, 0.9, 1.2], "b": [0.0, 0.2], "empty": [], "none": None, "c": [1.0, 0.7, 0.3]}
    for statistic in (interquartile_mean, np.mean):
        ci = bootstrap_ci(scores, statistic=statistic, confidence=0.9, resamples=300, seed=3)
        expected = _reference_bootstrap(scores, statistic, 0.9, 300, 3)
        assert ci == pytest.approx(expected, abs=1e-12)
        assert ci[0] < interquartile_mean(np.concatenate([scores[t] for t in "abc"])) < ci[1] or statistic is np.mean
    assert bootstrap_ci(scores, seed=1) == bootstrap_ci(scores, seed=1)  # deterministic for a seed
    assert bootstrap_ci(scores, np.mean, seed=1) != bootstrap_ci(scores, np.mean, seed=2)


def test_bootstrap_ci_degenerate_and_invalid():
    assert bootstrap_ci({"a": [0.75] * 5, "b": [0.75] * 3}) == (0.75, 0.75)
    assert bootstrap_ci({"a": [0.25]}) == (0.25, 0.25)
    with pytest.raises(ValueError, match="at least one task"):
        bootstrap_ci({"a": [], "b": None})
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci({"a": [1.0]}, confidence=95)
    with pytest.raises(ValueError, match="task a: episode scores must be finite"):
        bootstrap_ci({"a": [1.0, float("nan")]})


def test_paired_difference_cancels_what_the_seeds_share():
    # the second policy scores 0.25 below the first on every seed: the seeds vary a lot, the difference not at all
    first = {"a": [0.1, 0.9, 0.4, 1.0, 0.0], "b": [0.6, 0.2, 0.8]}
    pairs = {task: [(x, x - 0.25) for x in scores] for task, scores in first.items()}
    result = paired_difference(pairs, resamples=500)
    assert result["difference"] == pytest.approx(0.25) and result["episodes"] == 8
    assert result["ci"] == pytest.approx([0.25, 0.25])
    # taken separately, the two IQMs' intervals overlap: only the pairing measures the lead
    low_first, _ = bootstrap_ci(first, resamples=500)
    _, high_second = bootstrap_ci({t: [x - 0.25 for x in v] for t, v in first.items()}, resamples=500)
    assert high_second > low_first


def test_paired_difference_hand_computed_and_against_a_loop():
    pairs = {"a": [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0), (0.75, 0.25)], "b": [(0.2, 0.4), (0.6, 0.1)],
             "empty": [], "none": None}
    # 6 pairs: IQM cuts int(1.5) = 1 from each end -> firsts 0.2, 0.5, 0.6, 0.75; seconds 0.1, 0.25, 0.4, 0.5
    result = paired_difference(pairs, confidence=0.9, resamples=300, seed=3)
    assert result["difference"] == pytest.approx(np.mean([0.2, 0.5, 0.6, 0.75]) - np.mean([0.1, 0.25, 0.4, 0.5]))
    rng = np.random.default_rng(3)
    tasks = [np.asarray(pairs[t]) for t in ("a", "b")]
    drawn = [array[rng.integers(0, len(array), size=(300, len(array)))] for array in tasks]
    differences = sorted(interquartile_mean(np.concatenate([d[r] for d in drawn])[:, 0])
                         - interquartile_mean(np.concatenate([d[r] for d in drawn])[:, 1]) for r in range(300))
    assert result["ci"] == pytest.approx(list(np.percentile(differences, [5, 95])), abs=1e-12)
    assert paired_difference(pairs, np.mean, resamples=50)["difference"] == pytest.approx((3.05 - 2.25) / 6)


def test_paired_difference_has_no_interval_with_one_seed_a_task():
    # nothing to resample: a bootstrap would return the difference itself as a zero-width "interval"
    result = paired_difference({"a": [(0.6, 0.5)], "b": [(0.6, 0.5)]})
    assert result == {"difference": pytest.approx(0.1), "ci": None, "episodes": 2}
    assert paired_difference({"a": [(0.6, 0.5)], "b": [(0.6, 0.5), (0.7, 0.5)]})["ci"] is not None


def test_paired_difference_refuses_bad_pairs_by_task():
    with pytest.raises(ValueError, match="task a: expected \\(first, second\\) score pairs, shape \\(episodes, 2\\)"):
        paired_difference({"a": [0.1, 0.2]})
    with pytest.raises(ValueError, match="task r: expected \\(first, second\\) score pairs, shape \\(episodes, 2\\)"):
        paired_difference({"r": [(0.1, 0.2), (0.3,)]})  # ragged
    with pytest.raises(ValueError, match="task e: .* got an array of shape \\(2, 0\\)"):
        paired_difference({"e": [(), ()]})
    with pytest.raises(ValueError, match="task b: episode scores must be finite"):
        paired_difference({"b": [(0.1, float("nan"))]})
    with pytest.raises(ValueError, match="at least one task with score pairs"):
        paired_difference({"a": [], "b": None})
    with pytest.raises(ValueError, match="confidence"):
        paired_difference({"a": [(0.0, 1.0)]}, confidence=1.5)


def test_summarize_counts_boundaries_and_success_only_tasks():
    per_task = {
        "t50": {"domain": "d1", "normalized_score": 0.5, "episode_scores": [0.5, 0.5], "success_rate": 1.0},
        "t80": {"domain": "d1", "normalized_score": 0.8, "episode_scores": [0.6, 1.0], "success_rate": 0.5},
        "below": {"domain": "d1", "normalized_score": 0.4999, "episode_scores": [0.4999], "success_rate": 0.0},
        "high": {"domain": "d2", "normalized_score": 0.7999, "episode_scores": [0.7999]},
        # success-only: the environment reports success but the task has no defined return reference
        "success_only": {"domain": "d2", "normalized_score": None, "episode_scores": None, "success_rate": 0.25},
    }
    summary = summarize(per_task, resamples=200)
    d1, d2, overall = summary["domains"]["d1"], summary["domains"]["d2"], summary["overall"]
    assert (d1["tasks"], d1["tasks_scored"], d1["at_least_50"], d1["at_least_80"]) == (3, 3, 2, 1)
    assert (d2["tasks"], d2["tasks_scored"], d2["at_least_50"], d2["at_least_80"]) == (2, 1, 1, 0)
    assert (overall["tasks"], overall["tasks_scored"], overall["at_least_50"], overall["at_least_80"]) == (5, 4, 3, 1)
    assert d1["mean"] == pytest.approx((0.5 + 0.8 + 0.4999) / 3)
    assert overall["mean"] == pytest.approx((0.5 + 0.8 + 0.4999 + 0.7999) / 4)
    # pooled episodes [0.5, 0.5, 0.6, 1.0, 0.4999]: n = 5 cuts 1 each end -> mean(0.5, 0.5, 0.6)
    assert d1["iqm"] == pytest.approx(1.6 / 3) and d1["episodes_scored"] == 5
    assert d1["iqm_ci"][0] <= d1["iqm"] <= d1["iqm_ci"][1]
    assert d2["iqm"] == d2["iqm_ci"][0] == d2["iqm_ci"][1] == pytest.approx(0.7999)
    assert d2["tasks_with_success"] == 1 and d2["mean_success_rate"] == 0.25
    assert overall["mean_success_rate"] == pytest.approx((1.0 + 0.5 + 0.0 + 0.25) / 4)
    table = summary_table(summary)
    assert "| d2 | 2 (1) |" in table and "| **overall** | 5 (4) |" in table


def test_summarize_with_nothing_scored():
    summary = summarize({"a": {"domain": "d", "normalized_score": None, "episode_scores": [], "success_rate": 1.0}})
    group = summary["overall"]
    assert group["tasks"] == 1 and group["tasks_scored"] == 0
    assert group["mean"] is None and group["iqm"] is None and group["iqm_ci"] is None
    assert group["at_least_50"] == 0 and group["mean_success_rate"] == 1.0
    assert "n/a" in summary_table(summary)
    with pytest.raises(ValueError, match="task a: a per-task result needs a 'domain'"):
        summarize({"a": {"normalized_score": 1.0}})
