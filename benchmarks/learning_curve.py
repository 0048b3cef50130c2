"""Closed-loop learning curve: expert-normalized score per domain against training tokens, from checkpoints.

Plays every `checkpoint-<step>` of a training run (and the final model) in every task's environment with
`modeling_gato.evaluation.evaluate` (the model only, actions sampled as `evaluate` does by default, the same episode
seeds for every checkpoint), and writes
`learning_curve.md`, `learning_curve.json` and `learning_curve.png`: per domain and overall, the mean of task
scores and the IQM with its 95% stratified-bootstrap interval, against the tokens trained on
(`step x batch x accumulation x context`, from `training_config.json`).

    python benchmarks/learning_curve.py --model outputs/demo/model --data outputs/demo/data \
        --output-dir docs/demo/learning_curve --episodes 5 --num-envs 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def checkpoints(model_dir: str) -> list[tuple[int, str]]:
    """`(step, directory)` of every checkpoint holding weights, then the final model (its step from the history)."""
    found = []
    for name in os.listdir(model_dir):
        match = re.fullmatch(r"checkpoint-(\d+)", name)
        if match and os.path.exists(os.path.join(model_dir, name, "model.safetensors")):
            found.append((int(match.group(1)), os.path.join(model_dir, name)))
    final_step = None
    losses = os.path.join(model_dir, "losses.json")
    if os.path.exists(losses):
        with open(losses) as f:
            final_step = max((h["step"] for h in json.load(f) if "step" in h), default=None)
    if final_step is not None and final_step not in {step for step, _ in found}:
        found.append((final_step, model_dir))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a training output directory (with checkpoint-<step>/)")
    parser.add_argument("--data", required=True, help="the directory written by `collect`")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed (the demo evaluates from 1000)")
    parser.add_argument("--env-seed", type=int, default=1)
    parser.add_argument("--history-steps", type=int, default=None,
                        help="as `evaluate --history-steps` (default: the model's training short-context window)")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="as `evaluate --prompt-tokens`")
    parser.add_argument("--temperature", type=float, default=1.0, help="as `evaluate --temperature` (0: greedy)")
    parser.add_argument("--continuous-temperature", type=float, default=None,
                        help="as `evaluate --continuous-temperature` (default: --temperature)")
    parser.add_argument("--tasks", nargs="*", default=None, help="as `evaluate --tasks` (default: every task)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from modeling_gato import GatoForCausalModeling, GatoProcessor
    from modeling_gato.evaluation.evaluate import acting_settings, evaluate
    from modeling_gato.evaluation.report import actions_phrase

    with open(os.path.join(args.model, "training_config.json")) as f:
        training = json.load(f)
    tokens_per_step = training["batch_size"] * training["gradient_accumulation_steps"] * training["context_length"]
    processor = GatoProcessor.from_pretrained(args.model)
    acting = acting_settings(args.history_steps, args.prompt_tokens, args.model)
    os.makedirs(args.output_dir, exist_ok=True)
    points = []
    for step, directory in checkpoints(args.model):
        model = GatoForCausalModeling.from_pretrained(directory).eval()
        with torch.no_grad():
            results = evaluate(model, processor, args.data, os.path.join(args.output_dir, f"step-{step}"),
                               episodes=args.episodes, seed=args.seed, env_seed=args.env_seed, num_envs=args.num_envs,
                               baselines=(), offline=False, held_out=training.get("eval_episodes", 1),
                               temperature=args.temperature, continuous_temperature=args.continuous_temperature,
                               tasks=args.tasks, **acting)
        summary = results["summary"]
        point = {"step": step, "tokens": step * tokens_per_step, "overall": summary["overall"],
                 "domains": summary["domains"],
                 "tasks": {task: row.get("normalized_score") for task, row in results["tasks"].items()}}
        points.append(point)
        print(f"step {step}: overall mean {summary['overall']['mean']:.3f}, IQM {summary['overall']['iqm']:.3f}",
              flush=True)

    with open(os.path.join(args.output_dir, "learning_curve.json"), "w") as f:
        json.dump(points, f, indent=1)
    domains = sorted({d for p in points for d in p["domains"]})
    lines = [f"Closed-loop expert-normalized score against training tokens ({args.episodes} episodes per task and "
             f"checkpoint, seeds {args.seed}-{args.seed + args.episodes - 1}, "
             f"{actions_phrase(args.temperature, continuous_temperature=args.continuous_temperature)}, history {acting['history_steps']} "
             f"timesteps, prompt tokens {acting['prompt_tokens']}; mean of task scores, IQM [95% CI]).",
             "", "| step | tokens | " + " | ".join(domains) + " | all |", "|---|---|" + "---|" * (len(domains) + 1)]
    for p in points:
        cells = []
        for d in [*domains, None]:
            s = p["overall"] if d is None else p["domains"].get(d)
            cells.append("n/a" if s is None or s.get("mean") is None else
                         f"{s['mean']:.2f} / {s['iqm']:.2f} [{s['iqm_ci'][0]:.2f}, {s['iqm_ci'][1]:.2f}]")
        lines.append(f"| {p['step']} | {p['tokens'] / 1e6:.1f}M | " + " | ".join(cells) + " |")
    with open(os.path.join(args.output_dir, "learning_curve.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for d in [*domains, None]:
        series = [(p["tokens"] / 1e6, (p["overall"] if d is None else p["domains"].get(d, {})).get("mean"))
                  for p in points]
        series = [(x, y) for x, y in series if y is not None]
        if series:
            x, y = zip(*series)
            axis.plot(x, y, marker="o", label=d or "all (mean of tasks)", linewidth=3 if d is None else 1.5)
    axis.axhline(0, color="grey", linestyle=":", label="random")
    axis.axhline(1, color="black", linestyle=":", label="expert")
    axis.set_xlabel("training tokens (millions)")
    axis.set_ylabel("expert-normalized return (mean of tasks)")
    axis.set_title("Closed-loop learning curve per domain")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(args.output_dir, "learning_curve.png"), dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
