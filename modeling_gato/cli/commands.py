"""`python -m modeling_gato {collect,train,evaluate,act,adapt,offline,scores,push,demo}`: the command line."""

from __future__ import annotations

import argparse
import sys

from ..envs.tasks import task_name
from ..utils.arguments import (
    OneLineParser,
    data_directory,
    model_directory,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)


def _action_noise(text: str):
    from ..data.collect import action_noise_argument

    return action_noise_argument(text)


def _steps_after_success(text: str):
    from ..data.collect import steps_after_success_argument

    return steps_after_success_argument(text)


def _action_epsilon(text: str):
    from ..data.collect import action_epsilon_argument

    return action_epsilon_argument(text)


def _task_episodes(text: str):
    from ..data.collect import task_episodes_argument

    return task_episodes_argument(text)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m modeling_gato",
        description="Gato (Reed et al., 2022): a generalist agent for transformers, datasets and gymnasium.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{collect,train,evaluate,act,adapt,offline,scores,push,demo}")

    demo = commands.add_parser(
        "demo",
        help="the main job: collect, train one generalist, evaluate it everywhere, write the report",
        description="Collect expert data from every environment, train one small Gato on all of it (environments, "
        "text, captions, VQA) within --minutes on this machine, evaluate it on every task and write "
        "<output-dir>/report.md with tables, plots, captions and text completions, plus a Hub-ready model "
        "directory. --quick: tiny settings for tests. --core: only the core walk-through (no environments).",
    )
    demo.add_argument("--output-dir", default="outputs/demo", help="where data, model, evaluation and report go")
    demo.add_argument("--minutes", type=positive_float, default=None,
                      help="wall-clock budget of the whole demo (default 60; 3 with --quick)")
    demo.add_argument("--episodes", type=positive_int, default=40, help="expert episodes collected per task")
    demo.add_argument("--eval-episodes", type=positive_int, default=5, help="evaluation episodes per task")
    demo.add_argument("--data", type=data_directory, default=None, help="use this `collect` directory instead of collecting")
    demo.add_argument("--recollect", action="store_true", help="collect again even if <output-dir>/data exists")
    demo.add_argument("--action-noise", type=_action_noise, default=None,
                      help="collect's --action-noise for the demo's data (default: the demo's, "
                      "'{\"mujoco\": 0.1}'; 0 for none)")
    demo.add_argument("--action-epsilon", type=_action_epsilon, default=0.0,
                      help="collect's --action-epsilon for the demo's data (default 0: none)")
    demo.add_argument("--steps-after-success", type=_steps_after_success, default=None,
                      help="collect's --steps-after-success for the demo's data (default: the demo's, "
                      "'{\"metaworld\": 60}'; '{}' for whole episodes)")
    demo.add_argument("--task-episodes", type=_task_episodes, default=None,
                      help="collect's --task-episodes for the demo's data (default: the demo's, "
                      "'{\"babyai\": 1000, \"metaworld\": 200}'; '{}' for --episodes everywhere)")
    demo.add_argument("--expert-cache", default=None, help="where trained stable-baselines3 experts are cached")
    demo.add_argument("--weights", default=None, help='JSON task/domain weights, e.g. \'{"text": 0.5}\'')
    demo.add_argument("--max-steps", type=positive_int, default=None, help="training steps (default: fit the time budget)")
    demo.add_argument("--quick", action="store_true", help="tiny settings, a few minutes (for the test suite)")
    demo.add_argument("--core", action="store_true", help="only the core walk-through: model, processor, generate")
    demo.add_argument(
        "--variant", choices=["tiny", "small", "baseline", "large"], default="tiny",
        help="--core only: model size for the forward pass",
    )
    demo.add_argument("--max-new-tokens", type=positive_int, default=8, help="--core only: tokens to generate")
    demo.add_argument("--seed", type=non_negative_int, default=0)

    collect = commands.add_parser(
        "collect",
        help="collect expert and random episodes, text, captions and VQA into a datasets directory",
        description="Run the experts that ship with (or are trained here for) each environment, measure expert "
        "and random returns, and write episodes (one datasets dataset per task), text, captions, VQA, "
        "scores.json and manifest.json, atomically.",
    )
    from ..data.collect import add_arguments as add_collect_arguments

    add_collect_arguments(collect)
    scores = commands.add_parser(
        "scores",
        help="re-measure the expert and random reference scores of a collect directory, with provenance",
        description="Measure, per task, the expert's and a seeded random policy's mean return and success rate over "
        "N episodes each, with package versions, seeds and the expert's origin; refuse a task where the expert does "
        "not beat random; write them into scores.json, manifest.json, each task's dataset metadata and the card.",
    )
    from ..data.scores import add_arguments as add_scores_arguments

    add_scores_arguments(scores)
    train = commands.add_parser(
        "train",
        help="train or fine-tune with transformers.Trainer (accelerate launch for several processes)",
        description="Train Gato on directories written by `collect` with the paper's optimizer and schedule; "
        "checkpoints, --resume, per-task held-out loss, loss curve PNG and a Hub-ready output directory.",
    )
    from ..training.train import add_arguments as add_train_arguments

    add_train_arguments(train)
    evaluate = commands.add_parser(
        "evaluate",
        help="run a saved model as an agent on every task beside random, expert and 1-NN baselines",
        description="Evaluate a saved model in each task's environment (N environments at once, one batched model "
        "call per token), prompted with a demonstration from the collected data, beside random, expert and "
        "1-nearest-neighbour baselines on the same seeds: return, success, expert-normalized score with bootstrap "
        "intervals, per-domain IQM and >= 50% / >= 80% counts, offline action prediction. Writes markdown, JSON, "
        "per-episode JSONL, a bar chart with error bars, optional GIFs, and the metrics into the model card.",
    )
    from ..evaluation.evaluate import add_arguments as add_evaluate_arguments

    add_evaluate_arguments(evaluate)
    adapt = commands.add_parser(
        "adapt",
        help="few-shot adaptation: fine-tune a saved model on K demonstrations of a task, score before and after",
        description="Collect K expert demonstrations of a task (e.g. a held-out one: BabyAI-GoToObj-v0, "
        "metaworld-button-press-v3), evaluate the model on it, fine-tune it through Trainer, evaluate again; writes "
        "adapt_results.md / .json (return, success, expert-normalized score before and after, steps, minutes).",
    )
    from ..training.fewshot import add_arguments as add_adapt_arguments

    add_adapt_arguments(adapt)
    offline = commands.add_parser(
        "offline",
        help="offline action prediction: next-action accuracy / error on held-out episodes, no environment",
        description="Score a saved model's greedy next-action predictions given the true history (teacher forcing) "
        "on the last --held-out episodes of each task of an episode directory (from `collect` or a converter): "
        "accuracy for discrete actions, MAE / RMSE in action units for continuous ones; writes "
        "offline_results.md / .json.",
    )
    from ..evaluation.offline import add_arguments as add_offline_arguments

    add_offline_arguments(offline)
    push = commands.add_parser(
        "push",
        help="upload a saved model directory (weights, processor, remote code, card with metrics) to the Hub",
        description="Create the Hub repository if needed and upload the whole model directory with its model card "
        "(--results: write an evaluate eval_results.json into the card's model-index first); checkpoints are left out.",
    )
    from .push import add_push_arguments

    add_push_arguments(push)
    act = commands.add_parser(
        "act",
        help="run a saved model as an agent in one environment and print what happens",
        description="Play episodes of one task with a saved model and print each episode's return, length and "
        "success. The agent acts as `evaluate`'s does: the same seeds (1000, 1001, ...; Meta-World goal set "
        "--env-seed), actions sampled at temperature 1, and the history and prompt the model trained with. "
        "`act --seed S --episodes N` plays the episodes `evaluate --seed S --episodes N` reports for the model.",
    )
    act.add_argument("--model", required=True, type=model_directory, help="a saved model directory (model + processor)")
    act.add_argument("--task", required=True, type=task_name, help="a task name (see `collect --help`)")
    act.add_argument("--data", type=data_directory, default=None,
                     help="a `collect` directory: the end of its last episode of the task is the demonstration prompt "
                     "when the agent acts with one (as `evaluate` does); without it the agent acts unprompted")
    act.add_argument("--episodes", type=positive_int, default=1)
    act.add_argument("--seed", type=non_negative_int, default=1000,
                     help="seed of the first episode (default 1000, `evaluate`'s); episode k plays seed + k")
    act.add_argument("--env-seed", type=non_negative_int, default=1,
                     help="the environments' seed: Meta-World's goal set (default 1, `evaluate`'s)")
    act.add_argument("--temperature", type=non_negative_float, default=1.0,
                     help="1 (default): sample each action token, as `evaluate` and the paper do; 0: greedy")
    act.add_argument("--continuous-temperature", type=non_negative_float, default=None,
                     help="the temperature of continuous (Box) action tokens instead (default: --temperature)")
    act.add_argument("--history-steps", type=non_negative_int, default=None,
                     help="timesteps of the episode the agent sees besides the prompt; 0: the whole window; default: "
                     "as `evaluate`, what the model trained on (1 after short-context training, else the whole window)")
    act.add_argument("--prompt-tokens", type=non_negative_int, default=None,
                     help="token budget of the demonstration prompt (0: none); default: as `evaluate`")
    act.add_argument("--max-episode-steps", type=positive_int, default=None)
    act.add_argument("--num-envs", type=positive_int, default=4,
                     help="environments played at once by one batched agent (default 4, `evaluate`'s); a sampled "
                     "episode is the same at any number up to float rounding")
    act.add_argument("--device", default=None, help="where the model runs (default: the CPU)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a bad argument or input (ValueError, a missing or existing file, an output locked by another
    run) ends with a one-line
    `error: ...` and exit status 2 instead of a traceback (GATO_TRACEBACK=1 shows the traceback)."""
    import os

    from ..utils.jobs import OutputLockedError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError, OutputLockedError) as error:
        if os.environ.get("GATO_TRACEBACK"):
            raise
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")


def _run(args: argparse.Namespace) -> int:
    if args.command == "collect":
        from ..data.collect import main as collect_main

        return collect_main(args)
    if args.command == "train":
        from ..training.train import main as train_main

        return train_main(args)
    if args.command == "evaluate":
        from ..evaluation.evaluate import main as evaluate_main

        return evaluate_main(args)
    if args.command == "act":
        return act_main(args)
    if args.command == "scores":
        from ..data.scores import main as scores_main

        return scores_main(args)
    if args.command == "push":
        from .push import push_main

        return push_main(args)
    if args.command == "offline":
        from ..evaluation.offline import main as offline_main

        return offline_main(args)
    if args.command == "adapt":
        from ..training.fewshot import main as adapt_main

        return adapt_main(args)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def episode_line(result: dict) -> str:
    """`act`'s line for one episode of `run_episodes`."""
    if result.get("error"):
        return f"seed {result['seed']}: failed after {result['length']} steps: {result['error']}"
    success = "n/a" if result["success"] is None else result["success"]
    return f"seed {result['seed']}: return {result['return']:.3f}, {result['length']} steps, success {success}"


def act_main(args: argparse.Namespace) -> int:
    """`act`: `evaluate`'s model episodes of one task, printed in seed order as they end (no baselines, no files)."""
    import torch

    from ..acting.rollouts import gato_policy, run_episodes
    from ..evaluation.evaluate import acting_settings, task_prompt
    from ..evaluation.report import actions_phrase
    from ..hub.loading import load_model

    settings = acting_settings(args.history_steps, args.prompt_tokens, args.model)
    prompt = task_prompt(args.data, args.task) if args.data else None
    torch.manual_seed(args.seed)  # as `evaluate` does
    model, processor = load_model(args.model, args.device)
    history, budget = settings["history_steps"], settings["prompt_tokens"]
    seen = ("the whole episode" if history is None else "the current timestep" if history == 1
            else f"the last {history} timesteps")
    size = "a quarter of the context" if budget is None else f"{budget} tokens"
    shown = "no prompt" if budget == 0 or prompt is None else f"a prompt of {size} from {args.data}"
    if budget != 0 and prompt is None:
        print(f"act: no --data, so no demonstration prompt; `evaluate` prompts this model with the end of the task's "
              f"last episode ({size})", file=sys.stderr)
    print(f"acting on {seen}, {shown}, {actions_phrase(args.temperature, continuous_temperature=args.continuous_temperature)}",
          flush=True)
    policy = gato_policy(model, processor, args.task, num_envs=args.num_envs, prompt=prompt,
                         temperature=args.temperature, continuous_temperature=args.continuous_temperature, **settings)
    ended: dict[int, dict] = {}
    printed = 0

    def show(index: int, result: dict) -> None:  # episodes end in any order; print them in seed order
        nonlocal printed
        ended[index] = result
        while printed in ended:
            print(episode_line(ended.pop(printed)), flush=True)
            printed += 1

    run_episodes(args.task, policy, [args.seed + k for k in range(args.episodes)], num_envs=args.num_envs,
                 env_seed=args.env_seed, max_episode_steps=args.max_episode_steps, progress=False, on_episode=show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
