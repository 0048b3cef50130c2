"""PickupLoc successes by mission kind (location-relative or not) for the runs given, on the seeds they played."""
import json
import sys

import gymnasium as gym
import minigrid  # noqa: F401  (registers BabyAI)

runs = {path.split("/")[-2] if path.endswith(".jsonl") else path: path for path in sys.argv[1:]}
episodes = {}
for name, path in runs.items():
    for line in open(path):
        r = json.loads(line)
        episodes.setdefault((name, r["policy"]), {})[r["seed"]] = r["success"]
seeds = sorted(next(iter(episodes.values())))
env = gym.make("BabyAI-PickupLoc-v0")
kind = {}
for s in seeds:
    _, _ = env.reset(seed=s)
    mission = env.unwrapped.mission
    kind[s] = "location" if any(w in mission for w in ("left", "right", "front", "behind")) else "plain"
for k in ("location", "plain"):
    chosen = [s for s in seeds if kind[s] == k]
    cells = [f"{name} {policy}: {sum(v[s] for s in chosen)}/{len(chosen)}" for (name, policy), v in episodes.items()]
    print(f"{k:8s} missions ({len(chosen)}): " + "; ".join(cells))
