#!/usr/bin/env bash
# Random executed actions in BabyAI's demonstrations (issue 14): `collect --action-epsilon '{"babyai": 0.3}'` against
# the clean demonstrations, each into a BabyAI-only model at the demo's width (the recipe of ../sampled_actions:
# context 256, batch 8, 600 steps, 90% one-timestep windows, bf16, one thread), evaluated on 20 episodes per level
# (seeds 1000-1019) with sampled actions, then where PickupLoc episodes end (../sampled_actions/pickup_trace.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$(git rev-parse --show-toplevel)"  # a checkout of c8a9f5e or later
out=outputs/action_epsilon
babyai="BabyAI-GoToRedBallGrey-v0 BabyAI-GoToLocal-v0 BabyAI-PickupLoc-v0"
common="--episodes 40 --task-episodes {\"babyai\":1000} --score-episodes 10 --seed 0 --text-paragraphs 2000 --captions-per-task 200"
python -m modeling_gato collect --output-dir $out/clean --tasks $babyai $common
python -m modeling_gato collect --output-dir $out/epsilon --tasks $babyai $common --action-epsilon '{"babyai": 0.3}'
train() {  # train DATA OUTPUT SEED
  OMP_NUM_THREADS=1 python -m modeling_gato train --data $1 --output-dir $2 --variant tiny \
    --model-overrides '{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "head_dim": 32, "intermediate_size": 1024}' \
    --eval-episodes 2 --weights '{"text": 0, "captions": 0, "vqa": 0}' --max-steps 600 --batch-size 8 --warmup-steps 20 \
    --short-context-probability 0.9 --bf16 --context-length 256 --eval-steps 600 --save-steps 600 --logging-steps 100 \
    --seed $3
}
train $out/epsilon $out/epsilon_s0 0 & train $out/clean $out/clean_s1 1 & wait
for run in epsilon:epsilon_s0 clean:clean_s1; do
  data=${run%%:*} model=${run#*:}
  python -m modeling_gato evaluate --model $out/$model --data $out/$data --output-dir $out/eval_$model --tasks $babyai \
    --episodes 20 --seed 1000 --env-seed 1 --num-envs 10 --no-offline --no-card
  python "$here/../sampled_actions/pickup_trace.py" $out/$model 20 1
done
