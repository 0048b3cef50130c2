#!/usr/bin/env bash
# The task-identity probe (issue 14): the Meta-World-only tiny recipe of ../prompted_windows (one-timestep windows,
# 1,800 steps of batch 8, context 256), trained twice on the demo's collected data: as collected, and with each
# Meta-World timestep given one more observation token, its task's index (reach 0, push 1, pick-place 2) as a
# discrete observation, the way Meta-World's MT10/MT50 benchmarks append a one-hot task id. Both evaluated on 10
# episodes per task, seeds 1000-1009, goal set 1, model only. `taskid.py` builds the indexed data and, for the
# indexed model, wraps each Meta-World environment so that it returns the same index (the package has no such
# option: this is a probe, measured and not adopted).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$(git rev-parse --show-toplevel)"  # a checkout of 5ab827b or later
python -m modeling_gato collect --output-dir outputs/taskid/data --episodes 40 --task-episodes '{"babyai": 1000}' \
  --score-episodes 10 --seed 0 --text-paragraphs 2000 --captions-per-task 200 --action-noise '{"mujoco": 0.1}'
python "$here/taskid.py" build outputs/taskid/data outputs/taskid/indexed
for run in plain indexed; do
  data=outputs/taskid/data; [ $run = indexed ] && data=outputs/taskid/indexed
  OMP_NUM_THREADS=1 python -m modeling_gato train --data $data --output-dir outputs/taskid/$run --variant tiny \
    --eval-episodes 2 --weights '{"babyai": 0, "classic": 0, "mujoco": 0, "text": 0, "captions": 0, "vqa": 0}' \
    --max-steps 1800 --batch-size 8 --warmup-steps 20 --short-context-probability 1 --short-context-timesteps 1 \
    --context-length 256 --eval-steps 1800 --save-steps 1800 --logging-steps 100
done
python "$here/taskid.py" eval outputs/taskid/plain outputs/taskid/data outputs/taskid/eval_plain
python "$here/taskid.py" eval outputs/taskid/indexed outputs/taskid/indexed outputs/taskid/eval_indexed --ids
