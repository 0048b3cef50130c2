#!/usr/bin/env bash
# Continue the 60-minute one-timestep demo model (demo3: 1,826 steps, 7.5M tokens) with the same recipe for
# another 60 minutes (a warm restart of the paper schedule), then evaluate it like the demo (5 episodes, seeds
# 1000-1004, env seed 1), model only: random, expert and 1-NN on these seeds are in demo3's evaluation.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"  # a checkout of 1eab694 or later
python -m modeling_gato train --data outputs/demo/data --output-dir outputs/demo_continued/model \
  --init-from outputs/demo_one_timestep/model --weights '{"babyai": 2.0, "text": 0.1, "captions": 0.5, "vqa": 0.25}' \
  --context-length 1024 --batch-size 4 --learning-rate 1e-3 --warmup-steps 50 --prompt-probability 0.25 \
  --short-context-probability 0.9 --short-context-timesteps 1 --continuous-embedding table+fourier \
  --eval-episodes 1 --eval-samples-per-task 8 --eval-steps 600 --save-steps 600 --save-total-limit 4 \
  --logging-steps 20 --bf16 --max-steps 3000 --max-minutes 60
python -m modeling_gato evaluate --model outputs/demo_continued/model --data outputs/demo/data \
  --output-dir outputs/demo_continued/eval --episodes 5 --seed 1000 --env-seed 1 --num-envs 5 --baselines \
  --no-card --expert-cache $HOME/.cache/modeling_gato/experts
