"""One Meta-World task of the demo's data D, as collected (NAME) and with the previous-frame block obs[18:36]
zeroed (NAME_nv, written NAMEnv):  python make_subsets.py D TASK NAME"""

import json
import os
import shutil
import sys

import datasets
import numpy as np

src, task, base = sys.argv[1:4]
for name, zero in ((base, False), (base + "nv", True)):
    out = name
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out + "/episodes")
    for d in ("text", "captions", "vqa"):
        shutil.copytree(f"{src}/{d}", f"{out}/{d}")
    m = json.load(open(f"{src}/manifest.json"))
    m["tasks"] = {k: v for k, v in m["tasks"].items() if k == task}
    json.dump(m, open(f"{out}/manifest.json", "w"), indent=1)
    shutil.copy(f"{src}/scores.json", f"{out}/scores.json")
    ds = datasets.load_from_disk(f"{src}/episodes/{task}")
    if zero:

        def z(row):
            o = np.asarray(row["continuous_observations"], dtype=np.float32).copy()
            o[:, 18:36] = 0
            return {"continuous_observations": o}

        ds = ds.map(z)
    ds.save_to_disk(f"{out}/episodes/{task}")
