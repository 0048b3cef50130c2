"""What the 1-NN baseline's edge is made of: 1-NN on raw observations, on the observations the model sees, and
without the task's identity.

The model reads each continuous observation value as one of 1,024 bins after mu-law (SPEC: `mu = 100`, `M = 256`).
Meta-World positions sit in a narrow band of that scale (the y coordinates, 0.4-0.9 m, span about 40 bins, 8-18 mm
each), so one may suspect the bins, not the learner, of the model's failures on the object tasks. This plays the
1-nearest-neighbour baseline (`acting.baselines`, the one `evaluate --baselines nearest` plays) twice on the same
episode seeds: on the raw training observations, and with every training and query observation replaced by its
bin's value (`discretizer.decode(discretizer.encode(x))`: the very ids the model reads, mapped back). If the
quantized 1-NN keeps its score, the bins hold the information and the gap is the model's.

The baseline also knows which task it plays: `evaluate` builds one index per task. The model, acting on one
timestep without a prompt, is not told: Meta-World's reach, push and pick-place share one observation layout, and
reach and pick-place share their goal and object ranges. The third variant, `pooled`, indexes the training
timesteps of all `--tasks` together (raw observations), so it must tell the task from the observation as the model
must.

    python benchmarks/nearest_ablations.py --data outputs/demo/data --episodes 10 --env-seed 2 \
        --output-dir docs/demo/nearest_ablations

Writes `nearest_ablations.md` and `nearest_ablations.json` (per task and variant: success rate, mean return,
expert-normalized score with its 95% bootstrap interval, and the observation's quantization error in the data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_gato.acting.baselines import (  # noqa: E402
    NearestNeighbourIndex,
    NearestNeighbourPolicy,
    nearest_neighbour_factory,
)
from modeling_gato.processing_gato import GatoDiscretizer  # noqa: E402

META_WORLD = ("metaworld-reach-v3", "metaworld-push-v3", "metaworld-pick-place-v3")


def quantize(values: Any, discretizer: GatoDiscretizer) -> np.ndarray:
    """The value of the bin each observation value falls in (mu-law, 1,024 bins, back): what the model reads."""
    return discretizer.decode(discretizer.encode(np.asarray(values, dtype=np.float64)))


def quantized_rows(rows: list[dict[str, Any]], discretizer: GatoDiscretizer) -> list[dict[str, Any]]:
    """Episode rows with `continuous_observations` replaced by their bins' values (other columns unchanged)."""
    return [{**row, "continuous_observations": [quantize(o, discretizer).tolist() for o in row["continuous_observations"]]}
            for row in rows]


class QuantizedNearestNeighbourPolicy(NearestNeighbourPolicy):
    """1-NN whose queries are quantized like its (quantized) index: it sees what the model sees."""

    def __init__(self, index: NearestNeighbourIndex, observation_space: Any, action_space: Any,
                 discretizer: GatoDiscretizer):
        super().__init__(index, observation_space, action_space)
        self.discretizer = discretizer

    def __call__(self, observation: Any) -> Any:
        return super().__call__(quantize(observation, self.discretizer))


def quantized_factory(rows: list[dict[str, Any]], discretizer: GatoDiscretizer):
    """`factory(env) -> QuantizedNearestNeighbourPolicy` on `rows` quantized; the index is built once, here (the
    quantized twin of `acting.baselines.nearest_neighbour_factory`)."""
    index = NearestNeighbourIndex.from_episodes(quantized_rows(rows, discretizer))

    def factory(env) -> QuantizedNearestNeighbourPolicy:
        return QuantizedNearestNeighbourPolicy(index, env.observation_space, env.action_space, discretizer)

    return factory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a `collect` data directory")
    parser.add_argument("--tasks", nargs="+", default=list(META_WORLD))
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed")
    parser.add_argument("--env-seed", type=int, default=2, help="Meta-World's goal set")
    parser.add_argument("--num-envs", type=int, default=5)
    parser.add_argument("--held-out", type=int, default=1, help="last episodes per task left out of the index")
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)

    from datasets import load_from_disk

    from modeling_gato.acting.rollouts import run_episodes
    from modeling_gato.data.sequences import training_episode_count
    from modeling_gato.evaluation.evaluate import policy_entry, reference_of

    with open(os.path.join(args.data, "scores.json")) as f:
        scores = json.load(f)
    discretizer = GatoDiscretizer()
    seeds = list(range(args.seed, args.seed + args.episodes))
    results: dict[str, Any] = {"data": os.path.abspath(args.data), "seeds": seeds, "env_seed": args.env_seed,
                               "held_out": args.held_out, "tasks": {}}
    lines = ["| task | 1-NN indexed on | success | return | normalized [95% CI] | mean / max quantization error |",
             "|---|---|---|---|---|---|"]
    training = {}
    for task in args.tasks:
        dataset = load_from_disk(os.path.join(args.data, "episodes", task))
        dataset = dataset.select(range(training_episode_count(len(dataset), args.held_out)))
        training[task] = dataset.to_list()
    pooled = nearest_neighbour_factory([row for task in args.tasks for row in training[task]])  # built once
    described = {"raw": "the task's episodes", "quantized": "the task's episodes, quantized",
                 "pooled": f"all {len(args.tasks)} tasks' episodes"}
    for task in args.tasks:
        rows = training[task]
        observations = np.concatenate([np.asarray(r["continuous_observations"], dtype=np.float64) for r in rows])
        error = np.abs(quantize(observations, discretizer) - observations)
        reference = reference_of(task, scores)
        results["tasks"][task] = {"quantization_error_mean": float(error.mean()),
                                  "quantization_error_max": float(error.max())}
        factories = {"raw": nearest_neighbour_factory(rows), "quantized": quantized_factory(rows, discretizer),
                     "pooled": pooled}
        for variant, factory in factories.items():
            played = run_episodes(task, factory, seeds, num_envs=args.num_envs, env_seed=args.env_seed, progress=False)
            entry = policy_entry(task, played, reference)
            results["tasks"][task][variant] = {k: entry[k] for k in ("success_rate", "mean_return", "normalized_score",
                                                                     "normalized_ci", "episode_scores")}
            low, high = entry["normalized_ci"]
            lines.append(f"| {task} | {described[variant]} | {entry['success_rate']:.0%} | {entry['mean_return']:.1f} "
                         f"| {entry['normalized_score']:.0%} [{low:.0%}, {high:.0%}] | "
                         f"{error.mean():.4f} / {error.max():.4f} |")
            print(lines[-1], file=sys.stderr, flush=True)
    table = "\n".join(lines)
    print(table)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "nearest_ablations.md"), "w") as f:
            f.write(f"{table}\n\n{len(seeds)} episodes per task and variant (seeds {seeds[0]}-{seeds[-1]}, env seed "
                    f"{args.env_seed}); quantization error in the observations' own units, over the index's data.\n")
        with open(os.path.join(args.output_dir, "nearest_ablations.json"), "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
