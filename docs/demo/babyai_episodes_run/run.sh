#!/usr/bin/env bash
# The 60-minute one-timestep generalist of ../action_noise_run (same model, weights, schedule, 1,929 steps and 45-minute
# training budget; InvertedPendulum collected with action noise 0.1) with one change in the data: 1000 expert
# episodes per BabyAI level instead of 40 (`collect --task-episodes '{"babyai": 1000}'`; ~5.7K steps a level instead
# of ~230). Every other task's data is the same (same seeds, deterministic experts). Evaluated like the demo (5
# episodes, seeds 1000-1004, env seed 1), model only (a bare --baselines means none); BabyAI again with random,
# expert and 1-NN on 5 and on 20 episodes (the 1-NN reads the 1000 episodes). Random, expert and 1-NN for the other
# tasks: ../one_timestep_run_60min (Meta-World, CartPole) and ../action_noise_run (InvertedPendulum); baselines.json
# joins them.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"  # a checkout of ca5b1c8 or later
python -m modeling_gato collect --output-dir outputs/babyai1000/data --episodes 40 --task-episodes '{"babyai": 1000}' \
  --score-episodes 10 --seed 0 --text-paragraphs 2000 --captions-per-task 200 --action-noise '{"mujoco": 0.1}'
python -m modeling_gato train --data outputs/babyai1000/data --output-dir outputs/babyai1000/model \
  --variant tiny --model-overrides '{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "head_dim": 32, "intermediate_size": 1024, "max_position_embeddings": 1024}' \
  --weights '{"babyai": 2.0, "text": 0.1, "captions": 0.5, "vqa": 0.25}' \
  --context-length 1024 --batch-size 4 --learning-rate 1e-3 --warmup-steps 50 --prompt-probability 0.25 \
  --short-context-probability 0.9 --short-context-timesteps 1 \
  --continuous-embedding table+fourier --eval-episodes 1 --eval-samples-per-task 8 --eval-steps 482 --save-steps 482 \
  --save-total-limit 4 --logging-steps 20 --bf16 --max-steps 1929 --max-minutes 45
python -m modeling_gato evaluate --model outputs/babyai1000/model --data outputs/babyai1000/data \
  --output-dir outputs/babyai1000/eval --episodes 5 --seed 1000 --env-seed 1 --num-envs 5 --baselines \
  --no-card --expert-cache $HOME/.cache/modeling_gato/experts
for episodes in 5 20; do
  python -m modeling_gato evaluate --model outputs/babyai1000/model --data outputs/babyai1000/data \
    --output-dir outputs/babyai1000/eval_babyai$episodes --tasks BabyAI-GoToRedBallGrey-v0 BabyAI-GoToLocal-v0 \
    BabyAI-PickupLoc-v0 --episodes $episodes --seed 1000 --env-seed 1 --num-envs $((episodes < 10 ? episodes : 10)) \
    --no-offline --no-card --expert-cache $HOME/.cache/modeling_gato/experts
done
python - <<'PY'  # caption grounding on the held-out captions, beside the template prior and the best constant caption
import json
from modeling_gato import GatoForCausalModeling, GatoProcessor
from modeling_gato.evaluation.caption_grounding import grounding_table, measure_caption_grounding
model = GatoForCausalModeling.from_pretrained("outputs/babyai1000/model").eval()
result = measure_caption_grounding(model, GatoProcessor.from_pretrained("outputs/babyai1000/model"), "outputs/babyai1000/data")
json.dump(result, open("outputs/babyai1000/caption_grounding.json", "w"), indent=1)
print(grounding_table(result))
PY
