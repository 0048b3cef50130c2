"""Step-time probe of `run.sh`: times the sequence builder and an optimizer step of the paper's small variant at the
run's batch (bf16 autocast, the Trainer's loss with target logits only), saves the random model for the acting smoke
test, and prints one `CALIBRATION {json}` line.

    python benchmarks/device_run/calibrate.py DATA BATCH MODEL_OUT
"""

from __future__ import annotations

import json
import sys
import time

import torch

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor
from modeling_gato.data.collator import GatoDataCollator
from modeling_gato.data.sequences import GatoSequenceBuilder
from modeling_gato.training.train import split_sources


def main() -> int:
    data, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open("docs/demo/training_config.json") as f:
        recipe = json.load(f)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    processor = GatoProcessor()
    train, _, _ = split_sources([data], recipe["weights"], 1)
    context = recipe["context_length"]
    builder = GatoSequenceBuilder(processor, train, context_length=context, seed=0,
                                  **{k: recipe[k] for k in ("prompt_probability", "short_context_probability",
                                                            "short_context_timesteps", "short_context_prompt_tokens")})
    collator = GatoDataCollator(processor, padding="max_length", max_length=context)
    stream = iter(builder)
    start = time.perf_counter()
    samples = [next(stream) for _ in range(4 * batch)]
    cold = time.perf_counter() - start
    start = time.perf_counter()
    samples = [next(stream) for _ in range(4 * batch)]
    warm = time.perf_counter() - start
    model = GatoForCausalModeling(GatoConfig.small(continuous_embedding="table+fourier")).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")

    def step(chunk):
        inputs = {k: v.to(device) for k, v in collator(chunk).items() if isinstance(v, torch.Tensor)}
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(**inputs, target_logits_only=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = []
    for i in range(8 if device == "cuda" else 2):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(samples[(i % 4) * batch:(i % 4 + 1) * batch])
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    print("CALIBRATION " + json.dumps({"device": device, "batch": batch, "cold_samples_per_s": 4 * batch / cold,
                                       "warm_samples_per_s": 4 * batch / warm, "step_times": times,
                                       "params": sum(p.numel() for p in model.parameters())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
