"""The model's episodes from one `evaluate` run beside the baselines of another, played on the same seeds.

The lent GPU has time to evaluate the model only (`evaluate --baselines`); random and 1-NN do not depend on the model
and are played here on the CPU with the same data, seeds, goal set, `--num-envs` and held-out episodes (1-NN indexes
all but them; the default follows the model's training), e.g. with any model directory:

    python -m modeling_gato evaluate --model M --data D --episodes 10 --seed 1000 --env-seed 2 --num-envs 10 \\
        --held-out 1 --baselines random nearest --output-dir B

Usage: python benchmarks/device_run/combine.py MODEL_EVAL BASELINE_EVAL OUTPUT

Refuses runs whose seeds, episodes, goal set, `--num-envs`, held-out episodes, tasks or references (the expert and
random returns of `scores.json`) differ. Writes the `evaluate` report (`eval_results.md` / `.json`,
`eval_episodes.jsonl`, `eval_scores.png`) of the model's results with the other run's baselines, their summaries and
the paired comparisons recomputed (`evaluate.baseline_reports`).
"""

import json
import os
import sys

from modeling_gato.evaluation.evaluate import baseline_reports
from modeling_gato.evaluation.report import write_results

SAME = ("episodes", "seed", "env_seed", "num_envs", "max_episode_steps", "held_out")
REFERENCE = ("expert_return", "random_return")


def combine(model_results: dict, baseline_results: dict) -> dict:
    for key in SAME:
        if model_results.get(key) != baseline_results.get(key):
            raise ValueError(f"{key}: the model was evaluated with {model_results.get(key)!r}, the baselines with "
                             f"{baseline_results.get(key)!r}; they must be played on the same episodes.")
    if set(model_results["tasks"]) != set(baseline_results["tasks"]):
        raise ValueError(f"tasks: {sorted(model_results['tasks'])} against {sorted(baseline_results['tasks'])}.")
    for task, entry in model_results["tasks"].items():
        for key in REFERENCE:
            if entry.get(key) != baseline_results["tasks"][task].get(key):
                raise ValueError(f"{task}: {key} {entry.get(key)} against {baseline_results['tasks'][task].get(key)}; "
                                 "the two runs did not read the same scores.json.")
    results = dict(model_results, baselines=baseline_results["baselines"])
    results.update(baseline_reports(results["tasks"], results["baselines"], results["summary"]["confidence"],
                                    results["summary"]["resamples"]))
    results["baselines_from"] = baseline_results.get("data_dir")  # the model run's data_dir stays in "data_dir"
    return results


def main(model_dir: str, baseline_dir: str, output_dir: str) -> None:
    def read(directory):
        with open(os.path.join(directory, "eval_results.json")) as f:
            return json.load(f)

    results = combine(read(model_dir), read(baseline_dir))
    write_results(results, output_dir)
    print(f"wrote {output_dir}/eval_results.md")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
