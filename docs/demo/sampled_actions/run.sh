#!/usr/bin/env bash
# Greedy or sampled actions (issue 14). Two BabyAI-only models at the demo's width (4 layers, width 256; the demo's
# data: 1000 expert episodes per level; context 256, batch 8, 600 steps, 90% short windows, bf16; 22 minutes on one
# thread each): windows of 1 timestep (the demo's) and of 1-8 timesteps. Each evaluated on 20 episodes per level
# (seeds 1000-1019), model only: greedy, sampled at temperature 0.5 and 1, and the 1-8 model also seeing its last 8
# timesteps. Then where greedy PickupLoc episodes end (`pickup_trace.py`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$(git rev-parse --show-toplevel)"  # a checkout of 5ab827b or later (the temperature default: its successor)
out=outputs/sampled_actions
python -m modeling_gato collect --output-dir $out/data --episodes 40 --task-episodes '{"babyai": 1000}' \
  --score-episodes 10 --seed 0 --text-paragraphs 2000 --captions-per-task 200 --action-noise '{"mujoco": 0.1}'
for timesteps in 1 8; do
  OMP_NUM_THREADS=1 python -m modeling_gato train --data $out/data --output-dir $out/t$timesteps --variant tiny \
    --model-overrides '{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "head_dim": 32, "intermediate_size": 1024}' \
    --eval-episodes 2 --weights '{"metaworld": 0, "classic": 0, "mujoco": 0, "text": 0, "captions": 0, "vqa": 0}' \
    --max-steps 600 --batch-size 8 --warmup-steps 20 --short-context-probability 0.9 --bf16 \
    --short-context-timesteps $timesteps --context-length 256 --eval-steps 600 --save-steps 600 --logging-steps 100
done
babyai() {  # babyai MODEL OUTPUT [evaluate flags]
  python -m modeling_gato evaluate --model $1 --data $out/data --output-dir $2 --tasks BabyAI-GoToRedBallGrey-v0 \
    BabyAI-GoToLocal-v0 BabyAI-PickupLoc-v0 --episodes 20 --seed 1000 --env-seed 1 --num-envs 10 --no-offline \
    --no-card --baselines "${@:3}"
}
babyai $out/t1 $out/eval_t1 --temperature 0
babyai $out/t1 $out/eval_t1_temp05 --temperature 0.5
babyai $out/t1 $out/eval_t1_temp1 --temperature 1
babyai $out/t8 $out/eval_t8_h1 --temperature 0
babyai $out/t8 $out/eval_t8_h8 --temperature 0 --history-steps 8 --prompt-tokens 0
python "$here/pickup_trace.py" $out/t1 20 0
python "$here/pickup_trace.py" $out/t1 20 1
