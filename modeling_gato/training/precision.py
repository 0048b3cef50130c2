"""Whether bf16 autocast pays on this machine, measured rather than assumed.

On a CPU with native bf16 instructions (AVX512-BF16, AMX) bf16 autocast trained the demo model 1.2-2.5x faster per
step than float32. On a CPU without them PyTorch's bf16 matrix product falls back to a slow path: on a 2-core AMD
EPYC with AVX2 only (2026-12-03, torch 2.13.0) a 4096 x 1024 x 4096 product took 87 s in bf16 against 0.30 s in
float32, and a demo training step 55 s against 3 s. `bf16_autocast_speedup` times one linear layer's forward and
backward both ways (under a second where bf16 is native, about three where it is not); `prefer_bf16` turns that ratio
into the choice.
"""

from __future__ import annotations

import time

import torch

# bf16 is chosen when it is at least this much faster than float32: on a machine where both run at about the same
# speed float32 is kept (no rounding of activations for nothing), and timing noise cannot flip the choice between
# a 1.0x and a 30x-slower machine.
BF16_MIN_SPEEDUP = 1.1


def bf16_autocast_speedup(hidden_size: int = 256, tokens: int = 1024, repeats: int = 3,
                          device: str | torch.device = "cpu") -> float:
    """float32 time / bf16-autocast time of a `hidden_size` -> 4 x `hidden_size` linear layer's forward and backward
    on `tokens` rows (the shape of the demo model's MLP), the median of `repeats` after one warm-up; > 1: bf16 faster.
    """
    if hidden_size < 1 or tokens < 1 or repeats < 1:
        raise ValueError(f"hidden_size, tokens and repeats must be >= 1, got {hidden_size}, {tokens}, {repeats}.")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(tokens, hidden_size, generator=generator).to(device).requires_grad_()
    layer = torch.nn.Linear(hidden_size, 4 * hidden_size).to(device)

    def seconds(bf16: bool) -> float:
        timings = []
        for _ in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = layer(inputs)
            out.float().sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings.append(time.perf_counter() - start)
            layer.zero_grad(set_to_none=True)
            inputs.grad = None
        return sorted(timings[1:])[len(timings[1:]) // 2]

    return seconds(False) / max(seconds(True), 1e-9)


def prefer_bf16(speedup: float, min_speedup: float = BF16_MIN_SPEEDUP) -> bool:
    """True when bf16 autocast measured at least `min_speedup` times as fast as float32."""
    if not speedup > 0:
        raise ValueError(f"speedup must be a positive ratio of times, got {speedup}.")
    return speedup >= min_speedup


def describe_speedup(speedup: float) -> str:
    """'1.8x faster' / '31.4x slower' (bf16 autocast against float32)."""
    return f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
