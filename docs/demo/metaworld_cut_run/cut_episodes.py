"""How the data of this run was made: a copy of the demo's collection with each Meta-World episode cut 20 steps
after the first recorded observation where the hand (reach) or the object (push, pick-place) is within 5 cm of the
goal. `collect --steps-after-success '{"metaworld": 20}'` does the same with the environment's own success flag
(push: the same 40 episodes; reach: 12 steps longer on average; pick-place: 4.5 shorter).

    python cut_episodes.py D D_cut   # D: the demo's collection (see README.md)
"""

import shutil
import sys

import numpy as np
from datasets import load_from_disk

STEPS_AFTER = 20
source, target = sys.argv[1], sys.argv[2]
shutil.copytree(source, target)
for task, columns in [("metaworld-reach-v3", slice(0, 3)), ("metaworld-push-v3", slice(4, 7)),
                      ("metaworld-pick-place-v3", slice(4, 7))]:
    rows = load_from_disk(f"{source}/episodes/{task}")

    def cut(row, columns=columns):
        observations = np.asarray(row["continuous_observations"])
        near = np.flatnonzero(np.linalg.norm(observations[:, columns] - observations[:, 36:39], axis=1) < 0.05)
        end = min((near[0] if len(near) else len(observations)) + STEPS_AFTER, len(observations))
        return {key: value[:end] if isinstance(value, list) else value for key, value in row.items()}

    shutil.rmtree(f"{target}/episodes/{task}")
    rows.map(cut, features=rows.features).save_to_disk(f"{target}/episodes/{task}")
