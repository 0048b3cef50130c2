"""The written report of an evaluation: what `evaluate` leaves in its output directory and in the model card.

- `results_table(results)`: the markdown table (per task: each policy's return, success and expert-normalized score
  with its interval; per domain and overall: IQM with its interval, mean, tasks at >= 50% / >= 80%), and the
  offline action-prediction table when there is one; the model's IQM minus each baseline's, paired on seeds.
- `write_results(results, output_dir)`: `eval_results.json` / `.md`, `eval_episodes.jsonl` (one line per episode)
  and `eval_scores.png` (per-task scores and per-domain IQM of the model beside each baseline).
- `update_model_card(model_dir, results)`: the results written into a model card's YAML as the Hub's `model-index`
  (one `EvalResult` per task and metric) plus an "Evaluation" section (with each baseline's IQM and the paired
  difference), replaced on re-runs (`push --results` uses it too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..hub.cards import format_number as _number
from ..hub.cards import format_percent as _percent
from .metrics import format_iqm as _iqm
from .metrics import summary_table

POLICY_NAMES = {"model": "Gato (this model)", "random": "random", "expert": "expert", "nearest": "1-NN"}
EVALUATION_START = "<!-- modeling_gato:evaluation:start -->"


EVALUATION_END = "<!-- modeling_gato:evaluation:end -->"


METRICS = (  # (metric type on the Hub, key in evaluate's per-task results, readable name)
    ("mean_reward", "mean_return", "mean return"),
    ("success_rate", "success_rate", "success rate"),
    ("expert_normalized_score", "normalized_score", "expert-normalized score"),
)


def _difference(comparison: Mapping[str, Any] | None) -> str:
    if comparison is None:
        return "n/a"
    if comparison.get("ci") is None:
        return f"{comparison['difference']:+.3f} (no interval: one seed a task)"
    low, high = comparison["ci"]
    return f"{comparison['difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def _comparisons(results: Mapping[str, Any]) -> dict[str, Any]:
    """`evaluate`'s paired comparisons with each baseline that has one (results from before them have none)."""
    return {name: c for name, c in (results.get("comparisons") or {}).items() if c.get("overall")}


def evaluation_section(results: Mapping[str, Any]) -> str:
    """The "Evaluation" markdown section of a model card, between markers so that a re-run replaces it."""
    lines = [
        EVALUATION_START,
        "## Evaluation",
        "",
        "| task | domain | return | success | expert-normalized score | expert return | random return |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, r in results["tasks"].items():
        lines.append(
            f"| {task} | {r.get('domain', 'n/a')} | {_number(r.get('mean_return'))} ± {_number(r.get('std_return'))} | "
            f"{_percent(r.get('success_rate'))} | {_number(r.get('normalized_score'))} | "
            f"{_number(r.get('expert_return'))} | {_number(r.get('random_return'))} |"
        )
    summary = results.get("summary") or {}
    if "overall" in summary and "domains" in summary:
        lines += ["", summary_table(summary)]
    comparisons = _comparisons(results)
    if comparisons:
        level = f"{results.get('confidence', 0.95):.0%}"
        lines += ["", f"| baseline, same seeds | its IQM [{level} CI] | this model's IQM minus its, paired on the seeds "
                  f"both scored [{level} CI] | seeds paired |", "|---|---|---|---|"]
        for name, comparison in comparisons.items():
            overall = (results.get("baseline_summaries") or {}).get(name, {}).get("overall", {})
            lines.append(f"| {POLICY_NAMES[name]} | {_iqm(overall)} | {_difference(comparison['overall'])} | "
                         f"{comparison['overall']['episodes']} |")
    details = []
    if results.get("episodes") is not None:
        details.append(f"{results['episodes']} episodes per task")
    if results.get("seed") is not None:
        details.append(f"episode seeds from {results['seed']}")
    if results.get("env_seed") is not None:
        details.append(f"Meta-World goal set of env seed {results['env_seed']}")
    if results.get("temperature") is not None:
        details.append(actions_phrase(results["temperature"], continuous_temperature=results.get("continuous_temperature")))
    lines += [
        "",
        "Expert-normalized score: `(R - R_random) / (R_expert - R_random)` with the references stored with the data "
        "(`scores.json`); IQM over pooled episodes with a stratified bootstrap confidence interval (Agarwal et al., "
        "2021); >= 50% / >= 80%: tasks at that fraction of the expert (Reed et al., 2022, Figure 5)."
        + (f" {details[0][0].upper()}{', '.join(details)[1:]}." if details else ""),
        EVALUATION_END,
    ]
    return "\n".join(lines)


def eval_results(results: Mapping[str, Any]) -> list:
    """One huggingface_hub `EvalResult` per task and metric (None values are left out), plus per-domain and
    overall IQM / mean expert-normalized scores when `results["summary"]` comes from `metrics.summarize`."""
    from huggingface_hub import EvalResult

    entries = []
    for task, r in results["tasks"].items():
        for metric_type, key, name in METRICS:
            if r.get(key) is not None:
                entries.append(EvalResult(
                    task_type="reinforcement-learning", task_name="Reinforcement Learning", dataset_type=task,
                    dataset_name=task, metric_type=metric_type, metric_name=name, metric_value=round(float(r[key]), 4),
                ))
    summary = results.get("summary") or {}
    if "overall" in summary and "domains" in summary:
        groups = [(f"modeling_gato-{domain}", f"{domain} tasks", group) for domain, group in summary["domains"].items()]
        groups.append(("modeling_gato-all", "all tasks", summary["overall"]))
        for dataset_type, dataset_name, group in groups:
            for metric_type, key, name in (("iqm_expert_normalized_score", "iqm", "IQM expert-normalized score"),
                                           ("mean_expert_normalized_score", "mean", "mean expert-normalized score")):
                if group.get(key) is not None:
                    entries.append(EvalResult(
                        task_type="reinforcement-learning", task_name="Reinforcement Learning",
                        dataset_type=dataset_type, dataset_name=dataset_name, metric_type=metric_type,
                        metric_name=name, metric_value=round(float(group[key]), 4),
                    ))
    return entries


def update_model_card(model_dir: str, results: Mapping[str, Any], model_name: str | None = None,
                      dataset_name: str | None = None) -> str:
    """Write evaluation `results` (evaluate's dict) into `<model_dir>/README.md`; returns the card's path.

    The card's body is kept (a minimal card is created if there is none); its YAML gets `model-index` (replacing
    any previous one) and, if given, `datasets: [dataset_name]` (a Hub dataset id); the "Evaluation" section
    is replaced if present, appended otherwise.
    """
    from huggingface_hub import ModelCard, ModelCardData

    if "tasks" not in results or not isinstance(results["tasks"], Mapping):
        raise ValueError(f"results need a 'tasks' mapping (evaluate's output), got keys {sorted(results)}.")
    path = os.path.join(model_dir, "README.md")
    if os.path.exists(path):
        card = ModelCard.load(path)
    else:
        data = ModelCardData(library_name="transformers", tags=["gato", "reinforcement-learning"])
        card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {model_name or os.path.basename(os.path.abspath(model_dir))}\n")
    card.data.model_name = model_name or card.data.model_name or os.path.basename(os.path.abspath(model_dir))
    card.data.eval_results = eval_results(results) or None
    if dataset_name:
        card.data.datasets = [dataset_name]
    tags = list(card.data.tags or [])
    if "reinforcement-learning" not in tags:
        card.data.tags = [*tags, "reinforcement-learning"]
    section = evaluation_section(results)
    text = card.text
    if EVALUATION_START in text and EVALUATION_END in text:
        before, _, rest = text.partition(EVALUATION_START)
        _, _, after = rest.partition(EVALUATION_END)
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    card.text = text
    card.save(path)
    return path


def _score(entry: Mapping[str, Any]) -> str:
    if entry.get("normalized_score") is None:
        return "n/a"
    interval = entry.get("normalized_ci")
    text = f"{entry['normalized_score']:.0%}"
    return text if not interval else f"{text} [{interval[0]:.0%}, {interval[1]:.0%}]"


def _failures(entry: Mapping[str, Any]) -> str:
    errors = entry.get("errors") or 0
    return f" ({errors} episode{'s' if errors > 1 else ''} failed)" if errors else ""


def _policies(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]]:
    """(name, per-task entries, summary) for the model and each baseline, in table order."""
    policies = [("model", results["tasks"], results.get("summary"))]
    for name, per_task in results.get("baselines", {}).items():
        if per_task:
            policies.append((name, per_task, results.get("baseline_summaries", {}).get(name)))
    return policies


def _acting_phrase(results: Mapping[str, Any]) -> str:
    """How the agent saw the episode, for the table's footnote."""
    history = results.get("history_steps")
    if history is None:
        return " seeing the whole window" + (" without a prompt" if results.get("prompt_tokens") == 0 else " after a prompt")
    prompt = " and no prompt" if not results.get("prompt_tokens") else f" after a prompt of {results['prompt_tokens']} tokens"
    return f" seeing the last {history} timestep{'s' if history > 1 else ''}{prompt}"


def actions_phrase(temperature: float, actions: str = "actions", continuous_temperature: float | None = None) -> str:
    """How the model chose its actions, for a table's caption: "greedy actions" or "actions sampled at
    temperature 1" (`actions` names them, e.g. "model actions"), then how continuous actions were chosen when
    `continuous_temperature` differs: "... (continuous ones greedy)"."""
    phrase = f"greedy {actions}" if temperature <= 0 else f"{actions} sampled at temperature {temperature:g}"
    if continuous_temperature is None or continuous_temperature == temperature:
        return phrase
    return phrase + (" (continuous ones greedy)" if continuous_temperature <= 0
                     else f" (continuous ones sampled at temperature {continuous_temperature:g})")


def results_table(results: Mapping[str, Any]) -> str:
    """The evaluation as markdown: per task (every policy), per domain, offline prediction, references."""
    level = f"{results.get('confidence', 0.95):.0%}"
    policies = _policies(results)
    lines = [
        f"| task | domain | policy | return (mean ± std) | success | expert-normalized [{level} CI] |",
        "|---|---|---|---|---|---|",
    ]
    for task in results["tasks"]:
        for name, per_task, _ in policies:
            entry = per_task.get(task)
            if entry is None:
                continue
            label = f"**{POLICY_NAMES[name]}**" if name == "model" else POLICY_NAMES[name]
            lines.append(
                f"| {task} | {results['tasks'][task]['domain']} | {label} | {_number(entry['mean_return'])} ± "
                f"{_number(entry['std_return'])}{_failures(entry)} | {_percent(entry['success_rate'])} | "
                f"{_score(entry)} |"
            )
    lines += ["", f"| domain | policy | tasks (scored) | mean normalized | IQM [{level} CI] | >= 50% | >= 80% | "
              "mean success |", "|---|---|---|---|---|---|---|---|"]
    summaries = [(name, summary) for name, _, summary in policies if summary]
    domains = list(summaries[0][1]["domains"]) + ["all"] if summaries else []
    for domain in domains:
        for name, summary in summaries:
            group = summary["overall"] if domain == "all" else summary["domains"].get(domain)
            if group is None:
                continue
            label = f"**{POLICY_NAMES[name]}**" if name == "model" else POLICY_NAMES[name]
            lines.append(
                f"| {'**all**' if domain == 'all' else domain} | {label} | {group['tasks']} ({group['tasks_scored']}) | "
                f"{_number(group['mean'])} | {_iqm(group)} | {group['at_least_50']} | "
                f"{group['at_least_80']} | {_percent(group['mean_success_rate'])} |"
            )
    overall = results["summary"]["overall"]
    temperature = results.get("temperature", 0.0)
    lines += [
        "",
        f"Model: {overall['at_least_50']} of {overall['tasks']} tasks at >= 50% of expert, {overall['at_least_80']} at "
        f">= 80%; mean expert-normalized score {_percent(overall['mean'])}. {results['episodes']} episodes per task and "
        f"policy (seeds {results['seed']}...{results['seed'] + results['episodes'] - 1}, the same for every policy), "
        f"Meta-World goal set of env seed {results['env_seed']}, "
        f"{actions_phrase(temperature, 'model actions', results.get('continuous_temperature'))}"
        + _acting_phrase(results)
        + (f", episodes capped at {results['max_episode_steps']} steps" if results.get("max_episode_steps") else "")
        + ". Normalized score `(R - R_random) / (R_expert - R_random)` with the references below; per-task interval: "
        "percentile bootstrap of the mean over episodes; IQM: pooled episodes, stratified bootstrap.",
    ]
    comparisons = _comparisons(results)
    if comparisons:
        groups = sorted({group for c in comparisons.values() for group in c["domains"]})
        lines += ["", f"Model minus each baseline: IQM difference [{level} CI], paired on the seeds both played "
                  "(stratified bootstrap of seeds; an interval above 0 is a measured lead):", "",
                  "| baseline | **all** | " + " | ".join(groups) + " |", "|---|" + "---|" * (len(groups) + 1)]
        for name, comparison in comparisons.items():
            cells = [comparison["overall"], *(comparison["domains"].get(group) for group in groups)]
            lines.append(f"| {POLICY_NAMES[name]} | " + " | ".join(_difference(cell) for cell in cells) + " |")
    failures = [f"{task} / {POLICY_NAMES[name]} / seed {episode['seed']}: {episode['error']}"
                for name, per_task, _ in policies for task, entry in per_task.items()
                for episode in entry.get("failed_episodes", [])]
    if failures:
        lines += ["", f"Episodes whose environment failed ({len(failures)}; left out of every statistic above):", ""]
        lines += [f"- {failure}" for failure in failures]
    if results.get("offline"):
        from .offline import offline_table

        lines += ["", "Offline action prediction (held-out episodes, no environment):", "",
                  offline_table(results["offline"])]
    lines += ["", "References (from `scores.json`):", "",
              "| task | environment | expert | expert return | expert success | random return | random success | "
              "episodes (expert / random) |", "|---|---|---|---|---|---|---|---|"]
    for task, r in results["tasks"].items():
        lines.append(
            f"| {task} | {r.get('environment') or 'n/a'} | {r.get('expert_origin') or 'n/a'} | "
            f"{_number(r['expert_return'])} | {_percent(r['expert_success_rate'])} | {_number(r['random_return'])} | "
            f"{_percent(r['random_success_rate'])} | {r.get('expert_episodes') or 'n/a'} / "
            f"{r.get('random_episodes') or 'n/a'} |"
        )
    return "\n".join(lines)


def episode_records(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat record per episode and policy (the lines of `eval_episodes.jsonl`)."""
    records = []
    for name, per_task, _ in _policies(results):
        for task, entry in per_task.items():
            for episode in entry["episodes"]:
                records.append({"policy": name, "task": task, **episode})
    return records


def _grouped_bars(axis, labels: list[str], series: list[tuple[str, list[Mapping[str, Any]], str, str]]) -> None:
    """One group of bars per label, one bar per series `(name, entries, value key, interval key)`, with the
    interval as error bars (a None value is drawn as 0 without error bar)."""
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10")
    width = 0.8 / max(len(series), 1)
    for number, (name, entries, key, interval_key) in enumerate(series):
        values, errors = [], [[], []]
        for entry in entries:
            value, interval = entry.get(key), entry.get(interval_key)
            values.append(0.0 if value is None else value)
            errors[0].append(0.0 if value is None or not interval else max(0.0, value - interval[0]))
            errors[1].append(0.0 if value is None or not interval else max(0.0, interval[1] - value))
        positions = np.arange(len(labels)) + (number - (len(series) - 1) / 2) * width
        axis.bar(positions, values, width, yerr=errors, capsize=2, color=colors(number), label=name)
    axis.axhline(1.0, color="black", linestyle="--", linewidth=1)
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)


def write_results(results: Mapping[str, Any], output_dir: str) -> None:
    """eval_results.json / .md, eval_episodes.jsonl and eval_scores.png in `output_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "eval_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(output_dir, "eval_results.md"), "w") as f:
        f.write(results_table(results) + "\n")
    with open(os.path.join(output_dir, "eval_episodes.jsonl"), "w") as f:
        for record in episode_records(results):
            f.write(json.dumps(record) + "\n")

    policies = _policies(results)
    tasks = list(results["tasks"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(tasks) + 5), 4.8),
                                         gridspec_kw={"width_ratios": [max(len(tasks), 1), 3]})
    _grouped_bars(left, tasks, [(POLICY_NAMES[name], [per_task.get(task, {}) for task in tasks], "normalized_score",
                                 "normalized_ci") for name, per_task, _ in policies])
    left.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    left.set_ylabel("expert-normalized score (mean, 95% CI)")
    left.set_title("per task (n/a plotted as 0)")
    left.legend(fontsize=7)
    summaries = [(name, summary) for name, _, summary in policies if summary]
    groups = (list(summaries[0][1]["domains"]) + ["all"]) if summaries else []
    _grouped_bars(right, groups, [(POLICY_NAMES[name], [summary["overall"] if group == "all" else
                                                         summary["domains"][group] for group in groups], "iqm", "iqm_ci")
                                  for name, summary in summaries])
    right.set_title("IQM per domain (95% CI)")
    figure.suptitle("Gato: one set of weights, every task, beside random, expert and 1-NN")
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "eval_scores.png"), dpi=120)
    plt.close(figure)
