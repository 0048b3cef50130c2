# The probes of README.md, in order (2-core machine, ~10 minutes a probe). D: the demo's data (README, "Results on
# this machine": collect ... --steps-after-success '{"metaworld": 60}'). Run from an empty directory.
set -e
D=${D:?the demo data directory}
HERE=$(dirname "$0")
MODEL='{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "head_dim": 32, "intermediate_size": 1024, "max_position_embeddings": 1024}'
train() {  # name steps
  python -m modeling_gato train --data "$1" --output-dir "m_$1" --variant tiny --model-overrides "$MODEL" \
    --weights '{"text": 0, "captions": 0, "vqa": 0}' --max-steps "$2" --batch-size 8 --context-length 256 \
    --short-context-probability 1 --short-context-timesteps 1 --continuous-embedding table+fourier --warmup-steps 50 \
    --eval-episodes 2 --eval-steps $(( $2 / 2 )) --save-steps "$2" --no-bf16 --seed 1
}
evaluate() {  # name task [--zero-previous | --standardize stats.npz]
  name=$1 task=$2; shift 2
  python "$HERE/eval_probe.py" "$@" evaluate --model "m_$name" --data "$name" --episodes 10 --seed 1000 --env-seed 2 \
    --tasks "$task" --baselines random nearest --no-offline --videos 0 --no-card --num-envs 5 --output-dir "eval_$name"
}
noisy() {  # name task
  python -m modeling_gato collect --output-dir "$1" --tasks "$2" --episodes 200 --score-episodes 10 --seed 0 \
    --text-paragraphs 20 --captions-per-task 1 --action-noise 0.1 --steps-after-success '{"metaworld": 60}'
}
python "$HERE/make_subsets.py" "$D" metaworld-reach-v3 R        # R and Rnv (previous frame zeroed)
train R 600; evaluate R metaworld-reach-v3
train Rnv 600; evaluate Rnv metaworld-reach-v3 --zero-previous
python "$HERE/make_subsets.py" "$D" metaworld-push-v3 P         # P and Pnv
train P 1200; evaluate P metaworld-push-v3
train Pnv 1200; evaluate Pnv metaworld-push-v3 --zero-previous
python "$HERE/make_std.py" metaworld-push-v3 P_std "$D"
train P_std 1200; evaluate P_std metaworld-push-v3 --standardize P_std/obs_stats.npz
noisy P_noise metaworld-push-v3
train P_noise 1200; python -m modeling_gato evaluate --model m_P_noise --data P_noise --episodes 10 --seed 1000 \
  --env-seed 2 --tasks metaworld-push-v3 --baselines random nearest --no-offline --videos 0 --no-card --num-envs 5 \
  --output-dir eval_P_noise
# training seed 2 of P_noise: the same train/evaluate with --seed 2 (m_P_noise_s2, eval_P_noise_seed2.md)
python "$HERE/make_subsets.py" "$D" metaworld-pick-place-v3 PP
train PP 1200; evaluate PP metaworld-pick-place-v3
noisy PP_noise metaworld-pick-place-v3
train PP_noise 1200; evaluate PP_noise metaworld-pick-place-v3
# diagnostics
python "$HERE/slot_probe.py" m_P metaworld-push-v3
python "$HERE/push_trace.py" m_P
python "$HERE/goal_probe.py" m_R
