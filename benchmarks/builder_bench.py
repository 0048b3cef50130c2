"""Training-data benchmark: milliseconds to build one sample with `GatoSequenceBuilder`, by token-cache size.

`train` builds its samples in the training process (Trainer's default: no dataloader workers), so this time is
part of every step. A sample reads a random episode per window (short-context samples read one per timestep
window), so when the cache holds fewer tokenized episodes than the data has, most windows re-read and re-tokenize
an episode (decoding all of its images). Rows: the paper's stream (no short windows), the default mixture (50% of
windows of 1-4 timesteps) and the one-timestep mixture (90%), each with the old cache of 64 rows and the default.

    python benchmarks/builder_bench.py --data outputs/demo/data      # a `collect` directory
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modeling_gato import GatoProcessor  # noqa: E402
from modeling_gato.data.sequences import GatoSequenceBuilder  # noqa: E402
from modeling_gato.training.train import split_sources  # noqa: E402

DEMO_WEIGHTS = {"babyai": 2.0, "text": 0.1, "captions": 0.5, "vqa": 0.25}


def time_samples(sources, cache: int, probability: float, timesteps: int, samples: int, warm: int,
                 context_length: int, repeats: int) -> float:
    """Median over `repeats` of the mean milliseconds per sample, after `warm` samples (which fill the cache)."""
    builder = GatoSequenceBuilder(GatoProcessor(), sources, context_length=context_length, seed=0,
                                  short_context_probability=probability, short_context_timesteps=timesteps,
                                  token_cache_size=cache)
    stream = iter(builder)
    for _ in range(warm):
        next(stream)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(samples):
            next(stream)
        times.append((time.perf_counter() - start) / samples * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `collect` directory")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--warm", type=int, default=300, help="samples drawn first (they fill the cache)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--context-length", type=int, default=1024)
    args = parser.parse_args()
    sources, _, _ = split_sources([args.data], DEMO_WEIGHTS, 1)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; data {args.data}; context "
          f"{args.context_length}; median of {args.repeats} x {args.samples} samples after {args.warm}\n")
    print("| stream | cache 64 rows (ms/sample) | default cache (ms/sample) | speed-up |")
    print("|---|---|---|---|")
    for name, probability, timesteps in (("paper (no short windows)", 0.0, 1), ("default (50%, 1-4 steps)", 0.5, 4),
                                         ("one-timestep (90%, 1 step)", 0.9, 1)):
        old = time_samples(sources, 64, probability, timesteps, args.samples, args.warm, args.context_length,
                           args.repeats)
        new = time_samples(sources, 8192, probability, timesteps, args.samples, args.warm, args.context_length,
                           args.repeats)
        print(f"| {name} | {old:.1f} | {new:.1f} | {old / new:.1f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
