"""GPU benchmark: training MFU (small and baseline, length 1024) and acting frequency of the 1.18B variant.

    PYTHONPATH=. python benchmarks/gpu.py [--quick] [--compile]

bf16 autocast (fp32 master weights) for training, bf16 weights for acting; SDPA (PyTorch picks its flash kernel
for bf16 on Hopper) and flash_attention_2 when the package is installed; `--compile` adds torch.compile rows.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Actor, matmul_ceiling, median_time, training_flops_per_token  # noqa: E402

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor  # noqa: E402

H100_BF16_DENSE = 989e12


def train_tokens_per_s(config, batch, seq, steps, compile_model=False, attn="sdpa"):
    torch.manual_seed(0)
    config._attn_implementation = attn
    model = GatoForCausalModeling(config).cuda().train()
    step_model = torch.compile(model) if compile_model else model
    ids = torch.randint(0, 33024, (batch, seq), device="cuda")
    local = torch.arange(seq, device="cuda").remainder(44).where(torch.arange(seq, device="cuda").remainder(44) < 39,
                                                                   torch.tensor(-1, device="cuda")).expand(batch, seq)
    loss_mask = local < 0

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = step_model(input_ids=ids, local_positions=local, loss_mask=loss_mask)
        out.loss.backward()
        model.zero_grad(set_to_none=True)

    t, _ = median_time(step, steps, warmup=3, sync=torch.cuda.synchronize)
    del model, step_model
    torch.cuda.empty_cache()
    return batch * seq / t


def acting_hz(config, steps, cache_kind, compile_model=False):
    from transformers import StaticCache

    torch.manual_seed(0)
    model = GatoForCausalModeling(config).to("cuda", torch.bfloat16).eval()
    # CUDA graphs through torch.compile: the decoder forward of the step's two shapes (the observation chunk, then
    # one action token) is captured once; the prefill stays eager.
    decoder = torch.compile(model.model.forward, mode="reduce-overhead", dynamic=False) if compile_model else None
    factory = (lambda: StaticCache(config=config, max_cache_len=config.max_position_embeddings)) if cache_kind == "static" else None
    actor = Actor(model, GatoProcessor(), "metaworld", cached=cache_kind != "recompute", cache_factory=factory,
                  decoder=decoder)
    length = actor.prepare()
    t, _ = median_time(actor.step, steps, warmup=4 if compile_model else 2, sync=torch.cuda.synchronize)
    del model, actor
    torch.cuda.empty_cache()
    return 1.0 / t, t, length


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows")
    parser.add_argument("--skip-train", action="store_true", help="acting rows only")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = True
    steps = 5 if args.quick else 10
    name = torch.cuda.get_device_name()
    try:
        import flash_attn  # noqa: F401

        has_flash = True
    except ImportError:
        has_flash = False
    print(f"# Gato GPU benchmark, {datetime.date.today()}, {name}")
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, "
          f"Python {platform.python_version()}, flash_attn package: {has_flash}\n")

    ceilings = {}
    for size in (4096, 8192):
        ceilings[size] = matmul_ceiling(torch.bfloat16, torch.device("cuda"), size=size, repeats=5)
    measured = max(ceilings.values())
    print("| measurement | value |\n|---|---|")
    for size, value in ceilings.items():
        print(f"| bf16 dense matmul {size}x{size} | {value / 1e12:.0f} TFLOP/s |")
    print(f"| peak used for MFU | {H100_BF16_DENSE / 1e12:.0f} TFLOP/s (H100 SXM bf16 dense) and the measured {measured / 1e12:.0f} |")

    rows = []
    variants = [("small", GatoConfig.small(), 32), ("baseline", GatoConfig.baseline(), 16)]
    attns = ["sdpa"] + (["flash_attention_2"] if has_flash else [])
    for variant, config, batch in [] if args.skip_train else variants:
        for attn in attns:
            for compiled in ([False, True] if args.compile else [False]):
                label = f"train {variant}, batch {batch}x1024, bf16 autocast, {attn}{', compiled' if compiled else ''}"
                try:
                    tps = train_tokens_per_s(config, batch, 1024, steps, compiled, attn)
                    flops = training_flops_per_token(config, 1024) * tps
                    flops_out = training_flops_per_token(config, 1024, include_output=True) * tps
                    rows.append((label, f"{tps:,.0f} tokens/s; MFU {flops / H100_BF16_DENSE:.1%} of 989 TFLOP/s, "
                                        f"{flops / measured:.1%} of measured matmul "
                                        f"(with the output layer: {flops_out / H100_BF16_DENSE:.1%} / {flops_out / measured:.1%})"))
                except Exception as error:  # report, go on
                    rows.append((label, f"failed: {type(error).__name__}: {str(error)[:200]}"))
                    traceback.print_exc()
    for cache_kind, compiled in [("dynamic", False), ("static", False), ("recompute", False)] + (
        [("static", True)] if args.compile else []
    ):
        label = f"act large (1.18B), Meta-World step at full context, bf16, {cache_kind}{' cache' if cache_kind != 'recompute' else ''}{', compiled (reduce-overhead)' if compiled else ''}"
        try:
            hz, t, length = acting_hz(GatoConfig.large(), 3 if cache_kind == "recompute" else steps * 3, cache_kind, compiled)
            rows.append((label, f"{hz:,.1f} Hz ({t * 1000:.1f} ms/step, context {length} tokens)"))
        except Exception as error:
            rows.append((label, f"failed: {type(error).__name__}: {str(error)[:200]}"))
            traceback.print_exc()
    print("\n| benchmark | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
