"""`python -m modeling_gato {collect,train,evaluate,act,demo}`: the command line."""

from __future__ import annotations

import argparse
import sys

NOT_YET = {
    "evaluate": "issue 5 (acting and evaluation)",
    "act": "issue 5 (acting and evaluation)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeling_gato",
        description="Gato (Reed et al., 2022): a generalist agent for transformers, datasets and gymnasium.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{collect,train,evaluate,act,demo}")

    demo = commands.add_parser(
        "demo",
        help="the main job: build a model, tokenize an episode, run a forward pass and generate",
        description="Build a Gato model, tokenize a sample episode (text, image, discrete and continuous values), "
        "run a forward pass with the masked loss and a short generate(), save a remote-code directory and "
        "reload it with AutoModel, and print the parameter counts of the paper's three variants.",
    )
    demo.add_argument("--output-dir", default="outputs/demo", help="where the model directory is saved")
    demo.add_argument(
        "--variant", choices=["tiny", "small", "baseline", "large"], default="tiny",
        help="model size for the forward pass (tiny: 2 layers, width 128; small/baseline/large: the paper's)",
    )
    demo.add_argument("--max-new-tokens", type=int, default=8, help="tokens to generate after the text prompt")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="skip the save/reload step (for tests)")

    collect = commands.add_parser(
        "collect",
        help="collect expert and random episodes, text, captions and VQA into a datasets directory",
        description="Run the experts that ship with (or are trained here for) each environment, measure expert "
        "and random returns, and write episodes (one datasets dataset per task), text, captions, VQA, "
        "scores.json and manifest.json, atomically.",
    )
    from .collect import add_arguments as add_collect_arguments

    add_collect_arguments(collect)
    train = commands.add_parser(
        "train",
        help="train or fine-tune with transformers.Trainer (accelerate launch for several processes)",
        description="Train Gato on directories written by `collect` with the paper's optimizer and schedule; "
        "checkpoints, --resume, per-task held-out loss, loss curve PNG and a Hub-ready output directory.",
    )
    from .train import add_arguments as add_train_arguments

    add_train_arguments(train)
    evaluate = commands.add_parser("evaluate", help="evaluate a model in environments (not yet built)")
    evaluate.add_argument("--model", required=False)
    act = commands.add_parser("act", help="run a model as an agent in one environment (not yet built)")
    act.add_argument("--model", required=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "collect":
        from .collect import main as collect_main

        return collect_main(args)
    if args.command == "train":
        from .train import main as train_main

        return train_main(args)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args)
        return 0
    print(
        f"`{args.command}` is not built yet: it is tracked in {NOT_YET[args.command]}.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
