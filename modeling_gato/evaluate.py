"""`python -m modeling_gato evaluate`: a trained model as an agent in every task's environment.

Per task: N episodes, raw return, success rate (where the environment reports one), and the
expert-normalized score `(R - R_random) / (R_expert - R_random)` with the expert and random returns that
`collect` stored with the data (`scores.json`). Writes `eval_results.json`, `eval_results.md` (a table)
and `eval_scores.png` (a bar chart), with a progress bar while it runs.

Meta-World 3.1.1 ignores `reset(seed=...)`; its set of 50 goals is fixed by the seed given when the
environment is made. `collect` uses the collection seed (0 by default); evaluation uses `--env-seed`
(1 by default), so the evaluated goals are not the ones in the training data. The table says which.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .agent import GatoAgent
from .environments import TASKS, get_task, make_env


def normalized_score(value: float, expert: float, random: float) -> float | None:
    """`(value - random) / (expert - random)`; None when the reference is undefined (expert <= random)."""
    if expert is None or random is None or expert <= random:
        return None
    return (value - random) / (expert - random)


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


def load_model(model_dir: str, device: str | None = None):
    from transformers import AutoModelForCausalLM, AutoProcessor

    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    if device:
        model.to(device)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    return model, processor


def evaluate(
    model,
    processor,
    data_dir: str,
    output_dir: str,
    tasks: list[str] | None = None,
    episodes: int = 5,
    seed: int = 1000,
    env_seed: int = 1,
    temperature: float = 0.0,
    max_episode_steps: int | None = None,
    prompt_tokens: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate `model` on `tasks` (default: every task in `data_dir`); returns and writes the results."""
    from datasets import load_from_disk

    with open(os.path.join(data_dir, "scores.json")) as f:
        scores = json.load(f)
    with open(os.path.join(data_dir, "manifest.json")) as f:
        manifest = json.load(f)
    tasks = tasks or [t for t in manifest["tasks"] if t in TASKS]
    results: dict[str, Any] = {"tasks": {}, "episodes": episodes, "seed": seed, "env_seed": env_seed,
                               "temperature": temperature, "max_episode_steps": max_episode_steps}
    started = time.time()
    bar = tqdm(total=len(tasks) * episodes, desc="evaluate", disable=not progress)
    for task in tasks:
        spec = get_task(task)
        prompt_rows = load_from_disk(os.path.join(data_dir, "episodes", task))
        prompt = prompt_rows[len(prompt_rows) - 1]  # the last episode: held out of training by `train`
        env = make_env(spec, seed=env_seed)
        agent = GatoAgent(model, processor, env.observation_space, env.action_space, prompt=prompt,
                          prompt_tokens=prompt_tokens, temperature=temperature, seed=seed)
        per_episode = []
        for index in range(episodes):
            per_episode.append(play_episode(env, agent, seed + index, max_episode_steps, babyai=spec.domain == "babyai"))
            bar.update(1)
        env.close()
        returns = np.array([e["return"] for e in per_episode])
        reference = scores.get(task, {})
        expert = reference.get("expert", {}).get("mean_return")
        random = reference.get("random", {}).get("mean_return")
        successes = [e["success"] for e in per_episode if e["success"] is not None]
        results["tasks"][task] = {
            "domain": spec.domain,
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "success_rate": float(np.mean(successes)) if successes else None,
            "normalized_score": normalized_score(float(returns.mean()), expert, random),
            "expert_return": expert,
            "random_return": random,
            "expert_success_rate": reference.get("expert", {}).get("success_rate"),
            "random_success_rate": reference.get("random", {}).get("success_rate"),
            "episodes": per_episode,
        }
    bar.close()
    results["seconds"] = time.time() - started
    defined = [t["normalized_score"] for t in results["tasks"].values() if t["normalized_score"] is not None]
    results["summary"] = {
        "tasks": len(results["tasks"]),
        "mean_normalized_score": float(np.mean(defined)) if defined else None,
        "tasks_at_least_50_percent": int(sum(s >= 0.5 for s in defined)),
    }
    write_results(results, output_dir)
    return results


def results_table(results: dict[str, Any]) -> str:
    def number(value, digits=3):
        return "n/a" if value is None else f"{value:.{digits}f}"

    def percent(value):
        return "n/a" if value is None else f"{value:.0%}"

    lines = [
        "| task | domain | model return | expert return | random return | model success | expert success | "
        "random success | expert-normalized score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results["tasks"].items():
        lines.append(
            f"| {task} | {r['domain']} | {number(r['mean_return'])} ± {number(r['std_return'])} | "
            f"{number(r['expert_return'])} | {number(r['random_return'])} | {percent(r['success_rate'])} | "
            f"{percent(r['expert_success_rate'])} | {percent(r['random_success_rate'])} | "
            f"{percent(r['normalized_score'])} |"
        )
    summary = results["summary"]
    lines.append("")
    lines.append(
        f"{summary['tasks_at_least_50_percent']} of {summary['tasks']} tasks at >= 50% of expert; mean "
        f"expert-normalized score {percent(summary['mean_normalized_score'])}. {results['episodes']} episodes per "
        f"task (seeds {results['seed']}...), Meta-World goal set of env seed {results['env_seed']}, "
        f"{'greedy' if results['temperature'] <= 0 else 'temperature ' + str(results['temperature'])} actions"
        + (f", episodes capped at {results['max_episode_steps']} steps" if results["max_episode_steps"] else "")
        + "."
    )
    return "\n".join(lines)


def write_results(results: dict[str, Any], output_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "eval_results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(output_dir, "eval_results.md"), "w") as f:
        f.write(results_table(results) + "\n")
    tasks = list(results["tasks"])
    values = [results["tasks"][t]["normalized_score"] for t in tasks]
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(tasks) + 2), 4.5))
    colors = plt.get_cmap("tab10")
    domains = sorted({results["tasks"][t]["domain"] for t in tasks})
    bars = axis.bar(range(len(tasks)), [0.0 if v is None else v for v in values],
                    color=[colors(domains.index(results["tasks"][t]["domain"])) for t in tasks])
    for bar, value in zip(bars, values):
        label = "n/a" if value is None else f"{value:.0%}"
        axis.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axis.axhline(1.0, color="black", linestyle="--", linewidth=1, label="expert")
    axis.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="50% of expert")
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_xticks(range(len(tasks)))
    axis.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("expert-normalized score")
    axis.set_title("Gato: one set of weights, every task")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "eval_scores.png"), dpi=120)
    plt.close(figure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a saved model directory (model + processor)")
    parser.add_argument("--data", required=True, help="a directory written by `collect` (scores and prompts)")
    parser.add_argument("--output-dir", default=None, help="where to write results (default: <model>/eval)")
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed")
    parser.add_argument("--env-seed", type=int, default=1, help="Meta-World goal-set seed (collection uses 0)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy actions")
    parser.add_argument("--max-episode-steps", type=int, default=None)
    parser.add_argument("--device", default=None)


def main(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    model, processor = load_model(args.model, args.device)
    output_dir = args.output_dir or os.path.join(args.model, "eval")
    results = evaluate(model, processor, args.data, output_dir, args.tasks, args.episodes, args.seed, args.env_seed,
                       args.temperature, args.max_episode_steps)
    print(results_table(results))
    print(f"wrote {output_dir}/eval_results.md, eval_results.json, eval_scores.png")
    return 0
