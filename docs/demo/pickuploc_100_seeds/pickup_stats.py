"""PickupLoc on many seeds: success and normalized score of the model against random, paired on seeds."""
import json
import sys
from math import comb

import numpy as np

from modeling_gato.evaluation.metrics import paired_difference

rows = [json.loads(line) for line in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["policy"], {})[r["seed"]] = r
model = [p for p in by if p not in ("random", "nearest", "1-NN")][0]
seeds = sorted(set(by[model]) & set(by["random"]))
succ = {p: np.array([bool(by[p][s]["success"]) for s in seeds]) for p in (model, "random")}
norm = {p: np.array([by[p][s]["normalized_score"] for s in seeds]) for p in (model, "random")}
for name, x in (("success", succ), ("normalized", norm)):
    # evaluate's paired bootstrap (one task: resampling seeds), on the mean instead of the IQM
    paired = paired_difference({"PickupLoc": np.stack([x[model], x["random"]], axis=1).astype(float)}, np.mean,
                               resamples=10000, seed=0)
    low, high = paired["ci"]
    print(f"{name}: model {x[model].mean():.3f}, random {x['random'].mean():.3f}, paired difference of means "
          f"{paired['difference']:+.3f} [{low:+.3f}, {high:+.3f}] ({len(seeds)} seeds)")
a, b = int(succ[model].sum()), int(succ["random"].sum())
n = len(seeds)
# Fisher's exact test, one-sided (model > random): P(model's count >= a | the a + b successes split at random)
p = sum(comb(n, k) * comb(n, a + b - k) for k in range(a, min(n, a + b) + 1)) / comb(2 * n, a + b)
print(f"successes {a}/{n} vs {b}/{n}; Fisher's exact test (one-sided, model > random) p = {p:.3f}")
