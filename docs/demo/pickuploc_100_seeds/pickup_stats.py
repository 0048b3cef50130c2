"""PickupLoc on many seeds: success and normalized score of the model against random, paired on seeds."""
import json
import sys
from math import comb

import numpy as np

rows = [json.loads(line) for line in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["policy"], {})[r["seed"]] = r
names = {p: p for p in by}
model = [p for p in by if p not in ("random", "nearest", "1-NN")][0]
seeds = sorted(set(by[model]) & set(by["random"]))
succ = {p: np.array([bool(by[p][s]["success"]) for s in seeds]) for p in (model, "random")}
norm = {p: np.array([by[p][s]["normalized_score"] for s in seeds]) for p in (model, "random")}
rng = np.random.default_rng(0)
idx = rng.integers(0, len(seeds), (10000, len(seeds)))
for name, x in (("success", succ), ("normalized", norm)):
    d = x[model].astype(float) - x["random"].astype(float)
    boot = d[idx].mean(1)
    print(f"{name}: model {x[model].mean():.3f}, random {x['random'].mean():.3f}, paired difference of means "
          f"{d.mean():+.3f} [{np.percentile(boot, 2.5):+.3f}, {np.percentile(boot, 97.5):+.3f}] ({len(seeds)} seeds)")
a, b = int(succ[model].sum()), int(succ["random"].sum())
n = len(seeds)
# Fisher's exact test, one-sided (model > random): P(model's count >= a | the a + b successes split at random)
p = sum(comb(n, k) * comb(n, a + b - k) for k in range(a, min(n, a + b) + 1)) / comb(2 * n, a + b)
print(f"successes {a}/{n} vs {b}/{n}; Fisher's exact test (one-sided, model > random) p = {p:.3f}")
