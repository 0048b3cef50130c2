#!/usr/bin/env bash
# The demo generalist with a task index on every Meta-World timestep (issue 14): the table's data, configuration and
# seed, 2,700 steps; evaluated on the table's seeds (5 episodes a task, 1000-1004, goal set 2, sampled), model only.
# D: the table's data (`collect ... --steps-after-success '{"metaworld": 60}'`, see ../metaworld_hold_run/);
# CONFIG: the table model's training_config.json (../training_config.json).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=${1:?the table's data directory}; CONFIG=${2:-$here/../training_config.json}
cd "$(git rev-parse --show-toplevel)"
python "$here/../task_identity_probe/taskid.py" build "$D" outputs/task_index/data --all
python -m modeling_gato train --config "$CONFIG" --data outputs/task_index/data --seed 1 --max-steps 2700 \
  --max-minutes 300 --output-dir outputs/task_index/model
python "$here/../task_identity_probe/taskid.py" eval outputs/task_index/model outputs/task_index/data \
  outputs/task_index/eval --ids --all --episodes 5 --env-seed 2 --temperature 1
