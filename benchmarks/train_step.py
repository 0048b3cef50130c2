"""Seconds per training step of the demo's model on the demo's batches, with and without the work the model skips.

Two savings, both exact (same loss and gradients up to float rounding; tests in `tests/test_modeling_gato.py`):
- *patches once*: `GatoEmbeddings.embed_patches` runs the patch ResNet block once per distinct patch (BabyAI views
  repeat most of theirs);
- *bands*: packed rows of short windows attend within bands of 2 x 32-256 keys instead of the whole 1,024-token row
  (`attention_bands`, `banded_attention`).

Every variant runs the same batches (the demo's mixture, drawn by the sequence builder from a collected data
directory), one after the other for each batch, so the machine's noise falls on all of them alike. Each step is a
forward, a backward and an AdamW step, as the demo trains (float32 unless `--bf16`).

    python benchmarks/train_step.py --data DIR [--steps 12] [--threads N] [--bf16]

DIR: a directory written by `python -m modeling_gato collect` (the demo's command: README, "The demo").
Prints a markdown table (median seconds per step, ratio to the baseline, tokens/s); progress on stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from unittest import mock

import torch
from tqdm.auto import tqdm

import modeling_gato.modeling_gato as modeling
from modeling_gato import GatoProcessor
from modeling_gato.cli.demo import DEMO_MODEL, DEMO_WEIGHTS, training_batches
from modeling_gato.training.train import TrainConfig, build_model

CONTEXT, BATCH = 1024, 4
VARIANTS = {  # name: (bands, patches once)
    "neither (baseline)": (False, False),
    "patches once": (False, True),
    "bands": (True, False),
    "both (default)": (True, True),
}


def switched(bands: bool, patches_once: bool) -> ExitStack:
    stack = ExitStack()
    if not bands:
        stack.enter_context(mock.patch.object(modeling, "attention_bands", lambda mask, seq: None))
    if not patches_once:
        stack.enter_context(mock.patch.object(
            modeling.GatoEmbeddings, "embed_patches", lambda self, patches: self.patch_embedding(patches)))
    return stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a collected data directory (python -m modeling_gato collect)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as Trainer runs it with --bf16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(data=[args.data], output_dir="unused", variant="tiny", context_length=CONTEXT,
                         model_overrides={**DEMO_MODEL, "max_position_embeddings": CONTEXT}, batch_size=BATCH,
                         weights=dict(DEMO_WEIGHTS), short_context_probability=0.9, short_context_timesteps=1)
    batches = training_batches(config, GatoProcessor(), args.data, seed=0)
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    timings = {name: [] for name in VARIANTS}
    patches = distinct = banded_rows = 0
    for step in tqdm(range(args.steps + 1), desc="steps (every variant)", file=sys.stderr):
        batch = next(batches)
        if step:
            found = modeling.attention_bands(batch["attention_mask"], CONTEXT)
            banded_rows += 0 if found is None else found[0].numel()
            if "image_patches" in batch:
                pixels = batch["image_patches"][batch["patch_mask"].bool()]
                patches += pixels.shape[0]
                distinct += torch.unique(pixels.flatten(1), dim=0).shape[0] if pixels.shape[0] else 0
        order = list(VARIANTS)
        order = order[step % len(order):] + order[:step % len(order)]  # rotate who goes first
        for name in order:
            with switched(*VARIANTS[name]):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                    loss = model(**batch, target_logits_only=True).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                if step:  # the first batch warms up every variant
                    timings[name].append(time.perf_counter() - start)
    base = statistics.median(timings["neither (baseline)"])
    print(f"Training step of the demo's model ({_describe(model)}), batch {BATCH} x {CONTEXT} tokens, "
          f"{'bf16 autocast' if args.bf16 else 'float32'}, {torch.get_num_threads()} threads, {args.steps} batches "
          f"of the demo's mixture: {banded_rows} of {args.steps * BATCH} rows banded, {distinct} distinct patches of "
          f"{patches}.\n")
    print("| variant | s/step (median) | min-max | vs baseline | tokens/s |")
    print("|---|---|---|---|---|")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {min(values):.2f}-{max(values):.2f} | {base / median:.2f}x | "
              f"{BATCH * CONTEXT / median:,.0f} |")


def _describe(model) -> str:
    c = model.config
    return f"{c.num_hidden_layers} layers, width {c.hidden_size}, {model.num_parameters() / 1e6:.1f}M parameters"


if __name__ == "__main__":
    main()
