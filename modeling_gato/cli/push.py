"""`python -m modeling_gato push --model <dir> --repo-id <org/name> [--results eval_results.json]`: write the
evaluation into the model card (`evaluation.report.update_model_card`), then upload the directory
(`hub.cards.push_model_directory`)."""

from __future__ import annotations

import argparse
import json

from ..evaluation.report import update_model_card
from ..hub.cards import push_model_directory, require_model_directory
from ..utils.arguments import local_model_directory


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=local_model_directory,
                        help="a saved model directory (config.json, weights, processor, card)")
    parser.add_argument("--repo-id", required=True, help="the Hub repository, e.g. your-name/gato-small")
    parser.add_argument("--results", default=None,
                        help="an eval_results.json of `evaluate`: written into the model card before the upload")
    parser.add_argument("--dataset", default=None, help="Hub id of the training data, recorded in the card")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the cached login)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")


def push_main(args: argparse.Namespace) -> int:
    require_model_directory(args.model)
    if args.results:
        with open(args.results) as f:
            results = json.load(f)
        print(f"wrote the evaluation into {update_model_card(args.model, results, dataset_name=args.dataset)}")
    url = push_model_directory(args.model, args.repo_id, token=args.token, private=True if args.private else None)
    print(f"pushed {args.model} to {url}")
    return 0
