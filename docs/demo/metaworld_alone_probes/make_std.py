"""NAME: one task of the demo data D with every observation dimension standardized by its mean and std over the data (std < 1e-6:
left as is); stats in NAME/obs_stats.npz.   python make_std.py TASK NAME D"""

import json
import os
import shutil
import sys

import datasets
import numpy as np

task = sys.argv[1]
name = sys.argv[2]
src, out = sys.argv[3], name
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out + "/episodes")
for d in ("text", "captions", "vqa", "scores.json"):
    os.symlink(f"{src}/{d}", f"{out}/{d}")
m = json.load(open(f"{src}/manifest.json"))
m["tasks"] = {k: v for k, v in m["tasks"].items() if k == task}
json.dump(m, open(f"{out}/manifest.json", "w"), indent=1)
ds = datasets.load_from_disk(f"{src}/episodes/{task}")
allobs = np.concatenate([np.asarray(o, np.float32) for o in ds["continuous_observations"]])
mean, std = allobs.mean(0), allobs.std(0)
keep = std < 1e-6
mean[keep], std[keep] = 0.0, 1.0
np.savez(f"{out}/obs_stats.npz", mean=mean, std=std)
print("std", np.round(std, 3))


def z(row):
    o = (np.asarray(row["continuous_observations"], dtype=np.float32) - mean) / std
    return {"continuous_observations": o.astype(np.float32)}


ds.map(z).save_to_disk(f"{out}/episodes/{task}")
