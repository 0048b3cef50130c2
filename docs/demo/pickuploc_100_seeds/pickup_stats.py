"""PickupLoc on many seeds: success and normalized score of the model against random, paired on seeds.

    python pickup_stats.py E/eval_episodes.jsonl [E2/eval_episodes.jsonl ...]

Each file: one model and random played on the same seeds (`evaluate --baselines random`). With several files (models
on the same seeds, e.g. two training seeds), each is reported, then the models pooled: per seed the models' mean
against random's, and Fisher's exact test on all the models' episodes against random's."""
import json
import sys
from math import comb

import numpy as np

from modeling_gato.evaluation.metrics import paired_difference


def load(path):
    by = {}
    for line in open(path):
        r = json.loads(line)
        by.setdefault(r["policy"], {})[r["seed"]] = r
    model = [p for p in by if p not in ("random", "nearest", "1-NN")][0]
    return by[model], by["random"]


def fisher_greater(a, n, b, m):
    """Fisher's exact test, one-sided (first > second): P(first's count >= a | the a + b successes of n + m episodes
    split at random)."""
    k = a + b
    return sum(comb(n, x) * comb(m, k - x) for x in range(a, min(n, k) + 1)) / comb(n + m, k)


def report(models, random, label=""):
    seeds = sorted(set(random).intersection(*models))
    for name, key in (("success", "success"), ("normalized", "normalized_score")):
        x = np.array([[float(model[s][key]) for model in models] for s in seeds]).mean(axis=1)
        y = np.array([float(random[s][key]) for s in seeds])
        # evaluate's paired bootstrap (one task: resampling seeds), on the mean instead of the IQM
        paired = paired_difference({"PickupLoc": np.stack([x, y], axis=1)}, np.mean, resamples=10000, seed=0)
        low, high = paired["ci"]
        print(f"{label}{name}: model {x.mean():.3f}, random {y.mean():.3f}, paired difference of means "
              f"{paired['difference']:+.3f} [{low:+.3f}, {high:+.3f}] ({len(seeds)} seeds)")
    a = sum(bool(model[s]["success"]) for model in models for s in seeds)
    b = sum(bool(random[s]["success"]) for s in seeds)
    n, m = len(models) * len(seeds), len(seeds)
    print(f"{label}successes {a}/{n} vs {b}/{m}; Fisher's exact test (one-sided, model > random) "
          f"p = {fisher_greater(a, n, b, m):.3f}")


loaded = [load(path) for path in sys.argv[1:]]
for path, (model, random) in zip(sys.argv[1:], loaded):
    report([model], random, f"{path}: " if len(loaded) > 1 else "")
if len(loaded) > 1:
    randoms = [random for _, random in loaded]
    seeds = sorted(set.intersection(*(set(r) for r in randoms)))
    if any(r[s]["success"] != randoms[0][s]["success"] for r in randoms for s in seeds):
        print("warning: the files' random episodes differ; pooled against the first file's")
    report([model for model, _ in loaded], randoms[0], f"pooled ({len(loaded)} models): ")
