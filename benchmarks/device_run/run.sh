#!/bin/bash
# The table's recipe on the paper's small variant, then `evaluate` of the trained model, in one call of a lent GPU
# machine (docs/demo/gpu_small_run/): unpack what build_site.py packed, time a step, smoke-test acting on CUDA (the
# CPU evaluates if it fails), size max_steps to the seconds left, train, evaluate, pack the results (no weights).
# Usage: bash benchmarks/device_run/run.sh <total seconds>; writes $OUT/log.txt, $OUT/train.tgz, $OUT/results.tgz
# PHASE=train stops after training (the model stays in /tmp/gato/model while the machine is held: EVAL_BUDGET 0);
# PHASE=evaluate, in the next call on the same warm machine, only evaluates it (resuming an evaluation cut short).
# Environment: PY (python3), BATCH (32), SEED (1), EVAL_BUDGET (150 s), MAX_STEPS (else sized to the time left),
# EVAL_ARGS (appended to evaluate's arguments: later ones win, e.g. "--episodes 10 --num-envs 10").
TOTAL=${1:-540}
START=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
W=/tmp/gato; mkdir -p $W
exec > >(tee $OUT/log.txt) 2>&1
elapsed() { echo $(( $(date +%s) - START )); }
PHASE=${PHASE:-all}
case $PHASE in all|train|evaluate) ;; *) echo "PHASE: expected all, train or evaluate, got '$PHASE'"; exit 2;; esac
if [ "$PHASE" = evaluate ] && [ -f $W/trained ]; then
  echo "== phase evaluate: the model trained in an earlier call is in $W/model"
elif [ "$PHASE" = evaluate ]; then
  echo "PHASE=evaluate needs $W/model from a PHASE=train call on the same machine: not there (training failed, or"
  echo "the machine was released)"; exit 6
else
  echo "== unpack at $(elapsed) s"
  tar xJf .gpu/site.tar.xz -C $W && tar xJf .gpu/D.tar.xz -C $W || exit 3
fi
export PYTHONPATH=$W/site:$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PY=${PY:-python3}
$PY -c "import sys, torch, transformers, datasets, accelerate, pyarrow, numpy, gymnasium, minigrid, metaworld, mujoco; print(sys.version); print('torch', torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''); print('transformers', transformers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, 'pyarrow', pyarrow.__version__, 'numpy', numpy.__version__)" || exit 4
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>/dev/null
BATCH=${BATCH:-32}
EVAL_DEVICE=cuda
if [ "$PHASE" != evaluate ]; then  # phases all and train
  echo "== calibrate at $(elapsed) s"
  $PY benchmarks/device_run/calibrate.py $W/D $BATCH $W/rand 2>&1 | grep -v Warning | tail -3 | tee $W/calibration.txt
  grep -q CALIBRATION $W/calibration.txt || exit 5
  echo "== acting smoke test (random small model) at $(elapsed) s"
  $PY -m modeling_gato evaluate --model $W/rand --data $W/D --episodes 1 --max-episode-steps 5 --num-envs 1 \
      --tasks BabyAI-GoToLocal-v0 metaworld-reach-v3 --baselines --no-offline --no-card --device cuda \
      --output-dir $W/smoke > $W/smoke.log 2>&1 || { tail -20 $W/smoke.log; echo "acting on cuda failed: evaluate on the CPU"; EVAL_DEVICE=cpu; }
  tail -3 $W/smoke.log
  echo "== train at $(elapsed) s"
  if [ "$PHASE" = train ]; then EVAL_BUDGET=${EVAL_BUDGET:-0}; else EVAL_BUDGET=${EVAL_BUDGET:-150}; fi
  $PY - "$TOTAL" "$(elapsed)" "$EVAL_BUDGET" "$W" "$BATCH" <<'PYEOF'
import json, sys
total, now, eval_budget, w, batch = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
cal = json.loads(open(f"{w}/calibration.txt").read().split("CALIBRATION ", 1)[1].splitlines()[0])
times = cal["step_times"][3:] or cal["step_times"]
step = sorted(times)[len(times) // 2]  # median after warm-up
seconds = total - now - eval_budget - 60  # start-up, held-out evaluations and the save
import os
steps = int(os.environ.get("MAX_STEPS") or max(100, int(seconds / (step * 1.2))))
cfg = json.load(open("docs/demo/training_config.json"))
cfg.update(data=[f"{w}/D"], output_dir=f"{w}/model", variant="small", model_overrides={}, batch_size=batch,
           learning_rate=5e-4, warmup_steps=100, max_steps=steps, eval_steps=max(1, steps // 6), save_steps=steps,
           save_total_limit=1, logging_steps=20, max_minutes=seconds / 60, dataloader_num_workers=6, bf16=True,
           seed=int(os.environ.get("SEED") or 1), eval_samples_per_task=8)
json.dump(cfg, open(f"{w}/gpu_config.json", "w"), indent=2)
print(f"median step {step:.3f} s at batch {batch}; {seconds:.0f} s for training -> max_steps {steps}")
PYEOF
  $PY -m modeling_gato train --config $W/gpu_config.json > $W/train.log 2>&1; TRAIN_RC=$?; echo "train exit $TRAIN_RC"
  grep -v "it/s\]\|s/it\]" $W/train.log | tail -25
  cp $W/calibration.txt $W/gpu_config.json $W/smoke.log $W/model/ 2>/dev/null
  (cd $W && tar czf $OUT/train.tgz --exclude='*.safetensors' --exclude='checkpoint-*' --exclude='*.bin' model train.log)
  echo "$EVAL_DEVICE" > $W/eval_device
  if [ $TRAIN_RC = 0 ]; then touch $W/trained; else rm -f $W/trained; fi
fi
if [ "$PHASE" = train ]; then ls -la $OUT; echo "done (phase train) at $(elapsed) s"; exit $TRAIN_RC; fi
EVAL_DEVICE=$(cat $W/eval_device 2>/dev/null || echo cuda)
LEFT=$(( TOTAL - $(elapsed) - 12 ))
EVAL_LOG=eval.log; [ "$PHASE" = evaluate ] && [ -f $W/eval.log ] && EVAL_LOG=eval_resumed.log
echo "== evaluate on $EVAL_DEVICE at $(elapsed) s (at most $LEFT s)"
timeout $LEFT $PY -m modeling_gato evaluate --model $W/model --data $W/D --episodes 5 --seed 1000 --env-seed 2 --num-envs 5 $EVAL_ARGS \
    --baselines --device $EVAL_DEVICE --output-dir $W/model/eval > $W/$EVAL_LOG 2>&1; echo "evaluate exit $?"
grep -v "it/s\]\|s/it\]" $W/$EVAL_LOG | tail -60
echo "== pack at $(elapsed) s"
cd $W && tar czf $OUT/results.tgz --exclude='*.safetensors' --exclude='checkpoint-*' --exclude='*.bin' model train.log eval*.log
ls -la $OUT; echo "done at $(elapsed) s"
