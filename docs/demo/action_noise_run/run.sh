#!/usr/bin/env bash
# The 60-minute one-timestep demo (../one_timestep_run_60min: same model, weights, schedule, 1,929 steps and 45-minute
# training budget) with one change in the data: InvertedPendulum's 40 expert episodes are collected with Gaussian
# noise of 0.1 half action ranges on the executed actions, the PPO expert's own actions recorded
# (`collect --action-noise '{"mujoco": 0.1}'`). Every other task's data is the same as the demo's (same seeds,
# deterministic experts). Evaluated like the demo (5 episodes, seeds 1000-1004, env seed 1), model only (a bare
# --baselines means none); random, expert and 1-NN: ../one_timestep_run_60min for the 7 unchanged tasks and the
# last command below for InvertedPendulum, whose 1-NN reads the noisy episodes (baselines.json joins them).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"  # a checkout of f44dfc9 or later
python -m modeling_gato collect --output-dir outputs/demo_noise/data --episodes 40 --score-episodes 10 --seed 0 \
  --text-paragraphs 2000 --captions-per-task 200 --action-noise '{"mujoco": 0.1}'
python -m modeling_gato train --data outputs/demo_noise/data --output-dir outputs/demo_noise/model \
  --variant tiny --model-overrides '{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "head_dim": 32, "intermediate_size": 1024, "max_position_embeddings": 1024}' \
  --weights '{"babyai": 2.0, "text": 0.1, "captions": 0.5, "vqa": 0.25}' \
  --context-length 1024 --batch-size 4 --learning-rate 1e-3 --warmup-steps 50 --prompt-probability 0.25 \
  --short-context-probability 0.9 --short-context-timesteps 1 \
  --continuous-embedding table+fourier --eval-episodes 1 --eval-samples-per-task 8 --eval-steps 482 --save-steps 482 \
  --save-total-limit 4 --logging-steps 20 --bf16 --max-steps 1929 --max-minutes 45
python -m modeling_gato evaluate --model outputs/demo_noise/model --data outputs/demo_noise/data \
  --output-dir outputs/demo_noise/eval --episodes 5 --seed 1000 --env-seed 1 --num-envs 5 --baselines \
  --no-card --expert-cache $HOME/.cache/modeling_gato/experts
python -m modeling_gato evaluate --model outputs/demo_noise/model --data outputs/demo_noise/data \
  --output-dir outputs/demo_noise/eval_ip_baselines --tasks InvertedPendulum-v5 --episodes 5 --seed 1000 --env-seed 1 \
  --num-envs 5 --no-offline --no-card --expert-cache $HOME/.cache/modeling_gato/experts
