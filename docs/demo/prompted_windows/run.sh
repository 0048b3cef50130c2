#!/usr/bin/env bash
# The 60-minute one-timestep demo (../one_timestep_run_60min: same data, model, weights, schedule, 1,929 steps and
# 45-minute training budget) with one change: each short window starts with the last whole timesteps of another
# episode of its task that fit in 48 tokens (one Meta-World timestep, eight CartPole or InvertedPendulum ones, one
# BabyAI one). Evaluated like the demo (5 episodes, seeds 1000-1004, env seed 1), model only, acting on the current
# timestep after the same prompt (evaluate's default for this model). Random, expert and 1-NN on these seeds are in
# ../one_timestep_run_60min/eval_results.json.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"  # a checkout of bc41fa6 or later
python -m modeling_gato train --data outputs/demo/data --output-dir outputs/demo_prompted/model \
  --variant tiny --model-overrides '{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "head_dim": 32, "intermediate_size": 1024, "max_position_embeddings": 1024}' \
  --weights '{"babyai": 2.0, "text": 0.1, "captions": 0.5, "vqa": 0.25}' \
  --context-length 1024 --batch-size 4 --learning-rate 1e-3 --warmup-steps 50 --prompt-probability 0.25 \
  --short-context-probability 0.9 --short-context-timesteps 1 --short-context-prompt-tokens 48 \
  --continuous-embedding table+fourier --eval-episodes 1 --eval-samples-per-task 8 --eval-steps 482 --save-steps 482 \
  --save-total-limit 4 --logging-steps 20 --bf16 --max-steps 1929 --max-minutes 45
python -m modeling_gato evaluate --model outputs/demo_prompted/model --data outputs/demo/data \
  --output-dir outputs/demo_prompted/eval --episodes 5 --seed 1000 --env-seed 1 --num-envs 5 --baselines \
  --no-card --expert-cache $HOME/.cache/modeling_gato/experts
