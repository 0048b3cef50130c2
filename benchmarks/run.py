"""CPU benchmark of modeling_gato, side by side with gato-torch 0.0.2: one command, one markdown table.

    python benchmarks/run.py [--quick] [--threads N] [--skip-gato-torch] [--gato-venv PATH]

Sections (all in this process, except gato-torch, which runs in its own venv: see benchmarks/README.md):
- acting latency per environment step at a nearly full 1024-token context, small variant: KV cache vs
  recomputing the whole context for every action token;
- training throughput (forward+backward, length 1024) and MFU against the dense matmul ceiling measured here;
- processor throughput (GatoProcessor.tokenize_episode) and the sequence builder's throughput;
- gato-torch 0.0.2 on the small configuration, where its code runs (and exactly why not, where it does not).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from common import (  # noqa: E402
    Actor,
    decoder_params,
    matmul_ceiling,
    median_time,
    metaworld_episode,
    training_flops_per_token,
)

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor  # noqa: E402

GATO_TORCH_PACKAGES = ["gato-torch==0.0.2", "zetascale==2.8.8", "einops", "numpy"]
ROWS: list[tuple[str, str, str]] = []


def row(section: str, what: str, value: str) -> None:
    ROWS.append((section, what, value))
    print(f"  {section} | {what} | {value}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ acting
def bench_acting(model, processor, quick: bool) -> dict:
    results = {}
    for task in ("metaworld", "babyai"):
        cached = Actor(model, processor, task, cached=True, seed=1)
        recompute = Actor(model, processor, task, cached=False, seed=1)
        length = cached.prepare()
        recompute.prepare()
        # Same seeds, same inputs: the two loops must sample the same actions (a correctness check of the cache).
        same = all(cached.step() == recompute.step() for _ in range(2))
        t_cached, _ = median_time(cached.step, 7 if quick else 21)
        t_recompute, _ = median_time(recompute.step, 2 if quick else 5, warmup=0)
        label = {"metaworld": "Meta-World-like step (39 obs + sep, 4 continuous actions)",
                 "babyai": "BabyAI-like step (16 patches + mission + direction + sep, 1 discrete action)"}[task]
        row("acting (small, ms/step)", f"{label}, context {length}: KV cache", f"{t_cached * 1000:.1f} ms")
        row("acting (small, ms/step)", f"{label}, context {length}: recompute every action token",
            f"{t_recompute * 1000:.0f} ms")
        row("acting (small, ms/step)", f"{label}: speed-up of the cache (goal >= 10x)",
            f"**{t_recompute / t_cached:.1f}x** (same actions sampled: {same})")
        threads = torch.get_num_threads()
        if threads > 1:
            # The cached step is a few small, weight-bandwidth-bound matmuls: one thread avoids OpenMP barriers
            # (which cost most when other processes share the cores). Recompute stays on all threads.
            torch.set_num_threads(1)
            t_one, _ = median_time(cached.step, 7 if quick else 21)
            torch.set_num_threads(threads)
            row("acting (small, ms/step)", f"{label}: KV cache on 1 thread (recompute on {threads})",
                f"{t_one * 1000:.1f} ms: **{t_recompute / t_one:.1f}x**")
            t_cached = min(t_cached, t_one)
        results[task] = (t_cached, t_recompute)
    return results


# ------------------------------------------------------------------ training
def bench_training(config, quick: bool, seq: int = 1024):
    torch.manual_seed(0)
    model = GatoForCausalModeling(config).train()
    ceilings = {dtype: matmul_ceiling(dtype, torch.device("cpu")) for dtype in (torch.float32, torch.bfloat16)}
    row("training (small, length 1024)", "dense matmul ceiling 2048x2048 float32 / bfloat16 (measured now)",
        f"{ceilings[torch.float32] / 1e9:.0f} / {ceilings[torch.bfloat16] / 1e9:.0f} GFLOP/s")
    flops_token = training_flops_per_token(config, seq)
    flops_token_out = training_flops_per_token(config, seq, include_output=True)
    rng = np.random.default_rng(0)
    for batch in (1,) if quick else (1, 2):
        ids = torch.as_tensor(rng.integers(0, config.vocab_size, (batch, seq)))
        local = torch.arange(seq).remainder(44)
        local = torch.where(local < 39, local, -1).expand(batch, seq)
        loss_mask = local < 0
        for dtype in (torch.float32, torch.bfloat16):

            def step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                    out = model(input_ids=ids, local_positions=local, loss_mask=loss_mask)
                out.loss.backward()
                model.zero_grad(set_to_none=True)

            t, _ = median_time(step, 2 if quick else 4, warmup=1)
            tps = batch * seq / t
            mfu = flops_token * tps / ceilings[dtype]
            mfu_out = flops_token_out * tps / ceilings[dtype]
            name = "float32" if dtype == torch.float32 else "bf16 autocast"
            row("training (small, length 1024)", f"forward+backward, batch {batch}, {name}",
                f"{tps:,.0f} tokens/s; MFU **{mfu:.0%}** of the {name.split()[0]} ceiling "
                f"({mfu_out:.0%} counting the output layer) (goal >= 40%)")
    return ceilings


# ------------------------------------------------------------------ processor
def bench_processor(processor, quick: bool):
    rng = np.random.default_rng(0)
    episodes = [metaworld_episode(500, rng) for _ in range(3 if quick else 10)]
    episodes = [{k: v.tolist() for k, v in e.items()} for e in episodes]  # as a datasets row gives them
    start = time.perf_counter()
    for episode in episodes:
        processor.tokenize_episode(episode)
    elapsed = time.perf_counter() - start
    steps = 500 * len(episodes)
    row("processor", "tokenize_episode, Meta-World-like episodes (500 steps x 39 obs + 4 actions, lists)",
        f"{steps / elapsed:,.0f} timesteps/s; **{steps * 43 / elapsed:,.0f}** continuous values/s (goal >= 100k)")

    import datasets

    from modeling_gato.data.sequences import GatoSequenceBuilder

    dataset = datasets.Dataset.from_list([{k: v for k, v in e.items()} for e in episodes])
    builder = GatoSequenceBuilder(processor, {"metaworld": dataset}, seed=0)
    iterator = iter(builder)
    next(iterator)
    samples = 10 if quick else 40
    timesteps = 0
    start = time.perf_counter()
    for _ in range(samples):
        sample = next(iterator)
        timesteps += int((sample["input_ids"] == processor.separator_token_id).sum())
    elapsed = time.perf_counter() - start
    row("processor", "GatoSequenceBuilder over an in-memory datasets.Dataset (1024-token samples, 25% prompted)",
        f"{timesteps / elapsed:,.0f} timesteps/s ({samples / elapsed:.1f} samples/s)")


# ------------------------------------------------------------------ gato-torch
def gato_torch_python(venv: str) -> str:
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        print(f"creating the gato-torch venv at {venv} (torch==2.13.0 first, then gato-torch with --no-deps)",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + ["torch==2.13.0"], check=True)
        subprocess.run(pip + ["--no-deps"] + GATO_TORCH_PACKAGES, check=True)
    return python


def bench_gato_torch(venv: str, quick: bool, threads: int, context: int, ours: dict, ours_train: float | None):
    try:
        python = gato_torch_python(venv)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        args = [python, os.path.join(HERE, "gato_torch_bench.py"), "--context", str(context)] + (["--quick"] if quick else [])
        proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd="/", timeout=900)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception as error:  # the table says why
        row("gato-torch 0.0.2 (small config)", "setup / run", f"failed: {type(error).__name__}: {error}")
        return
    section = "gato-torch 0.0.2 (small config)"
    row(section, "`import gato.model` as published (minimal venv)", result["import"])
    row(section, "`Gato(GatoConfig.small())`", f"{result['params'] / 1e6:.1f}M parameters in {result['tensors']} tensors")
    row(section, "`Gato.forward` on a Meta-World-like 1024-token input", f"fails: {result['forward']}")
    row(section, "its transformer stack on (batch, seq, width), what Gato.forward passes it",
        "runs" if result["transformer_3d"] == "ok" else f"fails: {result['transformer_3d']}")
    if "train_tokens_per_s" in result:
        row(section, "stack only, where it runs: input (2, 1, 1024, 768), fwd+bwd",
            f"{result['train_tokens_per_s']:,.0f} tokens/s (no Q/K/V/O projections, no output layer: less work per "
            f"token than ours{f'; ours: {ours_train:,.0f} tokens/s float32' if ours_train else ''})")
        step_ms = 4 * result["forward_ms_at_context"]
        row(section, f"acting: no KV cache, so 4 full forwards (batch 2, context {context}) per Meta-World step",
            f"{step_ms:,.0f} ms/step (stack only); ours with the cache: {ours['metaworld'][0] * 1000:.1f} ms "
            f"(**{step_ms / (ours['metaworld'][0] * 1000):.0f}x**)")
    else:
        row(section, "stack on a 4-D input", f"fails: {result.get('transformer_4d')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a couple of minutes)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-gato-torch", action="store_true")
    parser.add_argument("--gato-venv", default=os.path.join(HERE, ".venv-gato-torch"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    started = time.perf_counter()
    load = os.getloadavg()[0]
    config = GatoConfig.small()
    processor = GatoProcessor()
    torch.manual_seed(0)
    model = GatoForCausalModeling(config).eval()

    acting = bench_acting(model, processor, args.quick)
    bench_training(config, args.quick)
    train_fp32 = next((float(v.split(" tokens")[0].replace(",", "")) for s, w, v in ROWS
                       if w.startswith("forward+backward, batch 1, float32")), None)
    bench_processor(processor, args.quick)
    if not args.skip_gato_torch:
        bench_gato_torch(args.gato_venv, args.quick, torch.get_num_threads(), 1011, acting, train_fp32)

    print(f"# modeling_gato CPU benchmark ({'quick' if args.quick else 'full'}), {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
    print(f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads, transformers {transformers.__version__}, Python "
          f"{platform.python_version()}; load average at start {load:.1f}. Small variant: "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {decoder_params(config) / 1e6:.1f}M in "
          f"decoder matmuls. Medians. Command: `python benchmarks/run.py{' --quick' if args.quick else ''}`\n")
    print("| section | measurement | result |\n|---|---|---|")
    for section, what, value in ROWS:
        print(f"| {section} | {what} | {value} |")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
