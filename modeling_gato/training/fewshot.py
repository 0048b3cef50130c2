"""`python -m modeling_gato adapt`: few-shot adaptation of a trained model to a task it has not seen.

The recipe (paper section 5.2, at our scale), in one output directory:

    <output_dir>/
      data/                 `collect` of the task: K + 1 expert episodes (the last one is the prompt, never trained
                            on) and the task's expert / random reference scores
      before/               `evaluate` of the given model on the task (E episodes)
      model/                the model fine-tuned through `Trainer` (`train.train`, `init_from` the given model) on
                            the K demonstrations: Hub-ready, its card holding the "after" evaluation (model-index)
      after/                `evaluate` of the fine-tuned model on the same E episodes (same seeds, same prompt)
      adapt_results.json    before / after: return, success rate, expert-normalized score; steps, minutes
      adapt_results.md      the same as a table, with the command that reproduces it

Demonstration seeds (`seed` ... `seed + K`) and evaluation seeds (`eval_seed` ... `eval_seed + E - 1`) must not
overlap, so the evaluated BabyAI levels are not the demonstrated ones. Meta-World's set of 50 goals comes from
the environment seed (`seed` for the demonstrations, `env_seed` for evaluation) and the episode seed picks one.

Held-out tasks (`envs.tasks.HELD_OUT_TASKS`) are never in the default collection, so a model trained with
the defaults has not seen them; any other task can be adapted to as well (the results say whether it was held out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import time
from dataclasses import dataclass, fields
from typing import Any

import torch

from ..data.collect import collect
from ..envs.tasks import get_task, task_name
from ..evaluation.evaluate import evaluate
from ..hub.cards import format_number, format_percent
from ..modeling_gato import GatoForCausalModeling
from ..processing_gato import GatoProcessor
from ..utils.arguments import model_directory, non_negative_int, positive_float, positive_int
from ..utils.settings import JobSettings
from .train import TrainConfig, train

RESULT_KEYS = ("mean_return", "std_return", "success_rate", "normalized_score")


def _load(model_dir: str) -> tuple[GatoForCausalModeling, GatoProcessor]:
    """The model and processor of a saved directory, with this package's classes (the same code before and after)."""
    return GatoForCausalModeling.from_pretrained(model_dir).eval(), GatoProcessor.from_pretrained(model_dir)


def relative_weight_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    """`||after - before|| / ||before||` over all parameters (L2); the two state dicts must have the same keys."""
    if before.keys() != after.keys():
        raise ValueError(f"state dicts differ in keys: {sorted(set(before) ^ set(after))[:5]}")
    delta = sum(float((after[k].double() - before[k].double()).pow(2).sum()) for k in before)
    norm = sum(float(before[k].double().pow(2).sum()) for k in before)
    return math.sqrt(delta / norm) if norm > 0 else math.sqrt(delta)


def adapt_command(model_dir: str, task: str, output_dir: str, config: AdaptConfig) -> str:
    """The `python -m modeling_gato adapt` command line for `config` (settings left at None, the expert cache,
    --overwrite and the progress bar are omitted: they do not change the results)."""
    argv = ["python", "-m", "modeling_gato", "adapt", "--model", model_dir, "--task", task, "--output-dir", output_dir]
    for field in fields(config):
        value = getattr(config, field.name)
        if value is None or field.name in ("cache_dir", "overwrite", "progress"):
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, float):
            value = f"{value:g}"
        argv += ["--" + field.name.replace("_", "-"), str(value)]
    return shlex.join(argv)


@dataclass
class AdaptConfig(JobSettings):
    """What `adapt` does; every field is also a command-line flag of `adapt` (`--field-name`).

    `demonstrations` expert episodes (seeds `seed`...; one more is the evaluation prompt), `steps` optimizer steps
    of `batch_size` at peak `learning_rate`, evaluation on `eval_episodes` episodes (seeds `eval_seed`..., Meta-World
    goal set `env_seed`) before and after. `context_length` defaults to the model's `max_position_embeddings`;
    `train_settings` overrides any other `TrainConfig` field (e.g. `{"prompt_probability": 0.5}`); `max_minutes`
    bounds the fine-tuning's wall clock; `reference_episodes`: expert and random episodes for the references;
    `cache_dir`: the expert cache (the expert is trained there once by the collection)."""

    demonstrations: int = 20
    steps: int = 200
    eval_episodes: int = 20
    seed: int = 0
    eval_seed: int = 1000
    env_seed: int = 1
    learning_rate: float = 1e-4
    batch_size: int = 4
    context_length: int | None = None
    reference_episodes: int = 20
    max_episode_steps: int | None = None
    max_minutes: float | None = None
    cache_dir: str | None = None
    train_settings: dict[str, Any] | None = None
    overwrite: bool = False
    progress: bool = True


def adapt(model_dir: str, task: str, output_dir: str, config: AdaptConfig | None = None,
          **settings: Any) -> dict[str, Any]:
    """Fine-tune the model in `model_dir` on `config.demonstrations` expert episodes of `task` for `config.steps`
    optimizer steps and evaluate it before and after on `config.eval_episodes` episodes; writes and returns the
    results. `config` is an `AdaptConfig`; keyword `settings` are its fields, overriding it."""
    config = AdaptConfig.with_settings(config, settings, "adapt()")
    spec = get_task(task)
    if config.demonstrations < 1 or config.steps < 1 or config.eval_episodes < 1:
        raise ValueError(f"demonstrations={config.demonstrations}, steps={config.steps} and "
                         f"eval_episodes={config.eval_episodes} must be >= 1.")
    demo_seeds = range(config.seed, config.seed + config.demonstrations + 1)
    eval_seeds = range(config.eval_seed, config.eval_seed + config.eval_episodes)
    if set(demo_seeds) & set(eval_seeds):
        raise ValueError(
            f"demonstration seeds {demo_seeds.start}..{demo_seeds.stop - 1} overlap evaluation seeds "
            f"{eval_seeds.start}..{eval_seeds.stop - 1}: pass a --seed or --eval-seed that keeps them apart."
        )
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        if not config.overwrite:
            raise FileExistsError(f"{output_dir} exists and is not empty; pass --overwrite to replace its results.")
    os.makedirs(output_dir, exist_ok=True)
    data_dir, model_out = os.path.join(output_dir, "data"), os.path.join(output_dir, "model")
    minutes: dict[str, float] = {}
    started = time.time()

    clock = time.time()
    collect(data_dir, tasks=[task], episodes=config.demonstrations + 1, score_episodes=config.reference_episodes, seed=config.seed,
            text_paragraphs=1, captions_per_task=0, cache_dir=config.cache_dir, overwrite=config.overwrite, progress=config.progress)
    minutes["collect"] = (time.time() - clock) / 60

    def run_evaluation(directory: str, name: str, **options) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        clock = time.time()
        model, processor = _load(directory)
        with torch.no_grad():
            results = evaluate(model, processor, data_dir, os.path.join(output_dir, name), tasks=[task],
                               episodes=config.eval_episodes, seed=config.eval_seed, env_seed=config.env_seed,
                               max_episode_steps=config.max_episode_steps, expert_cache=config.cache_dir, progress=config.progress,
                               fresh=True, **options)  # the model was just (re)trained: an old journal is stale
        minutes[name] = (time.time() - clock) / 60
        baselines[name] = {policy: rows[task] for policy, rows in results.get("baselines", {}).items() if task in rows}
        return results["tasks"][task], {k: v.detach().clone() for k, v in model.state_dict().items()}

    baselines: dict[str, dict[str, Any]] = {}
    # the baselines (random, expert, 1-NN on the K demonstrations) play the same seeds once, beside "before"
    before, initial = run_evaluation(model_dir, "before")
    context = config.context_length or initial_context(model_dir)
    settings: dict[str, Any] = dict(
        data=[data_dir], output_dir=model_out, init_from=model_dir, context_length=context, max_steps=config.steps,
        batch_size=config.batch_size, learning_rate=config.learning_rate, warmup_steps=max(1, config.steps // 10),
        eval_episodes=1,  # the last episode (the evaluation prompt) is held out of training: its loss is logged
        eval_samples_per_task=4, eval_steps=max(1, config.steps // 4), save_steps=config.steps + 1, save_total_limit=1,
        logging_steps=max(1, config.steps // 20), weights={"text": 0.0, "captions": 0.0, "vqa": 0.0},
        max_minutes=config.max_minutes, seed=config.seed,
    )
    settings.update(config.train_settings or {})
    clock = time.time()
    summary = train(TrainConfig(**settings))
    minutes["train"] = (time.time() - clock) / 60
    after, adapted = run_evaluation(model_out, "after", baselines=(), model_dir=model_out)  # metrics into its card
    minutes["total"] = (time.time() - started) / 60

    with open(os.path.join(data_dir, "scores.json")) as f:
        reference = json.load(f).get(task, {})
    losses = [h["loss"] for h in summary["history"] if "loss" in h]
    held_out_losses = [h[f"eval_{task}_loss"] for h in summary["history"] if f"eval_{task}_loss" in h]
    results: dict[str, Any] = {
        "task": task,
        "domain": spec.domain,
        "held_out": spec.held_out,
        "model": model_dir,
        "adapted_model": model_out,
        "demonstrations": config.demonstrations,
        "demonstration_seeds": [demo_seeds.start, demo_seeds.stop - 2],
        "prompt_episode_seed": demo_seeds.stop - 1,
        "evaluation": {"episodes": config.eval_episodes, "seeds": [eval_seeds.start, eval_seeds.stop - 1],
                       "env_seed": config.env_seed, "max_episode_steps": config.max_episode_steps},
        "training": {"steps": summary["global_step"], "batch_size": settings["batch_size"],
                     "context_length": settings["context_length"], "learning_rate": settings["learning_rate"],
                     "train_loss": summary["train_loss"], "first_logged_loss": losses[0] if losses else None,
                     "last_logged_loss": losses[-1] if losses else None,
                     "prompt_episode_loss": held_out_losses[-1] if held_out_losses else None},
        "before": {k: before[k] for k in RESULT_KEYS},
        "after": {k: after[k] for k in RESULT_KEYS},
        "expert": {"mean_return": before["expert_return"], "success_rate": before["expert_success_rate"],
                   "episodes": reference.get("expert", {}).get("episodes"), "policy": spec.expert},
        "random": {"mean_return": before["random_return"], "success_rate": before["random_success_rate"],
                   "episodes": reference.get("random", {}).get("episodes")},
        "baselines": {policy: {key: row.get(key) for key in RESULT_KEYS} for policy, row in baselines["before"].items()},
        "weights_relative_change": relative_weight_change(initial, adapted),
        "minutes": minutes,
        "command": adapt_command(model_dir, task, output_dir, config),
    }
    with open(os.path.join(output_dir, "adapt_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(output_dir, "adapt_results.md"), "w") as f:
        f.write(results_markdown(results))
    return results


def initial_context(model_dir: str) -> int:
    """The context of a saved model (its `max_position_embeddings`)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        return int(json.load(f)["max_position_embeddings"])


def results_markdown(results: dict[str, Any]) -> str:
    """`adapt_results.md`: the before / after table beside the expert and random references."""

    training, evaluation = results["training"], results["evaluation"]
    first, last = results["demonstration_seeds"]
    lines = [
        f"# Few-shot adaptation: {results['task']}",
        "",
        f"`{results['model']}` ({'held out of its training data' if results['held_out'] else 'a task of the default collection'}) "
        f"fine-tuned on {results['demonstrations']} expert demonstrations (seeds {first}-{last}) for "
        f"{training['steps']} steps of {training['batch_size']} x {training['context_length']} tokens (peak learning "
        f"rate {training['learning_rate']:g}), {results['minutes']['train']:.1f} minutes; evaluated on "
        f"{evaluation['episodes']} episodes (seeds {evaluation['seeds'][0]}-{evaluation['seeds'][1]}, environment seed "
        f"{evaluation['env_seed']}) before and after, prompted with one more expert episode (seed "
        f"{results['prompt_episode_seed']}, not trained on). Greedy actions. Expert-normalized score: "
        "`(R - R_random) / (R_expert - R_random)` with the references of the last two rows (`data/scores.json`).",
        "",
        "| policy | mean return | success | expert-normalized score |",
        "|---|---|---|---|",
    ]
    for name, label in (("before", "model before"), ("after", f"model after {training['steps']} steps")):
        row = results[name]
        lines.append(f"| {label} | {format_number(row['mean_return'])} ± {format_number(row['std_return'])} | "
                     f"{format_percent(row['success_rate'])} | {format_percent(row['normalized_score'])} |")
    labels = {"random": "random, same seeds", "expert": "expert, same seeds",
              "nearest": f"1-NN on the {results['demonstrations']} demonstrations, same seeds"}
    for name, row in results.get("baselines", {}).items():
        lines.append(f"| {labels.get(name, name)} | {format_number(row['mean_return'])} ± {format_number(row['std_return'])} | "
                     f"{format_percent(row['success_rate'])} | {format_percent(row['normalized_score'])} |")
    for name in ("expert", "random"):
        row = results[name]
        episodes = f", {row['episodes']} episodes" if row.get("episodes") else ""
        lines.append(f"| {name} reference ({row.get('policy', 'uniform')}{episodes}) | {format_number(row['mean_return'])} | "
                     f"{format_percent(row['success_rate'])} | {'100%' if name == 'expert' else '0%'} |")
    lines += [
        "",
        f"Train loss {format_number(training['first_logged_loss'])} (first logged) -> {format_number(training['last_logged_loss'])} "
        f"(last logged); loss on the prompt episode {format_number(training['prompt_episode_loss'])}. Weights moved by "
        f"{results['weights_relative_change']:.2%} (relative L2). Total {results['minutes']['total']:.1f} minutes.",
        "",
        f"Reproduce: `{results['command']}`",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=model_directory, help="a saved model directory (model + processor)")
    parser.add_argument("--task", required=True, type=task_name,
                        help="the task to adapt to, e.g. a held-out one: BabyAI-GoToObj-v0, metaworld-button-press-v3")
    parser.add_argument("--output-dir", required=True, help="where data, before/after evaluations and the model go")
    parser.add_argument("--demonstrations", type=positive_int, default=20, help="expert episodes fine-tuned on (K)")
    parser.add_argument("--steps", type=positive_int, default=200, help="fine-tuning optimizer steps")
    parser.add_argument("--eval-episodes", type=positive_int, default=20, help="evaluation episodes, before and after")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="first demonstration seed (and the training seed)")
    parser.add_argument("--eval-seed", type=non_negative_int, default=1000, help="first evaluation episode seed")
    parser.add_argument("--env-seed", type=non_negative_int, default=1, help="Meta-World goal-set seed of the evaluation")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-4, help="peak learning rate")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--context-length", type=positive_int, default=None, help="default: the model's context")
    parser.add_argument("--reference-episodes", type=positive_int, default=20, help="random-policy episodes for the reference")
    parser.add_argument("--max-episode-steps", type=positive_int, default=None)
    parser.add_argument("--max-minutes", type=positive_float, default=None, help="wall-clock budget of the fine-tuning")
    parser.add_argument("--cache-dir", "--expert-cache", dest="cache_dir", default=None,
                        help="where trained stable-baselines3 experts are cached")
    parser.add_argument("--train-settings", type=json.loads, default=None,
                        help='JSON TrainConfig fields, e.g. \'{"prompt_probability": 0.5}\'')
    parser.add_argument("--overwrite", action="store_true")


def main(args: argparse.Namespace) -> int:
    config = AdaptConfig(**{f.name: getattr(args, f.name) for f in fields(AdaptConfig) if f.name != "progress"})
    results = adapt(args.model, args.task, args.output_dir, config)
    print(results_markdown(results))
    print(f"wrote {args.output_dir}/adapt_results.md, adapt_results.json")
    return 0
