"""The main job until the full demo (collect -> train -> evaluate) lands: show every part of the core working.

Builds a model, tokenizes a sample episode that carries all four modalities, runs a forward pass with the
masked loss, generates from a text prompt, saves a remote-code directory and reloads it with `AutoModel`
in a fresh process, and prints the parameter counts of the paper's three variants.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from .configuration_gato import GatoConfig
from .modeling_gato import GatoForCausalModeling
from .processing_gato import GatoProcessor
from .variants import variant_table


def sample_episode(num_steps: int = 3, seed: int = 0) -> dict:
    """An episode in the SPEC columns: a mission, a 56x56 RGB view (padded to 64x64), a 2-value discrete
    observation, a 5-value continuous observation and a 2-value continuous action per step."""
    rng = np.random.default_rng(seed)
    images = []
    for t in range(num_steps):
        image = np.zeros((56, 56, 3), np.uint8)
        image[8 * t : 8 * t + 16, 20:36, 0] = 255  # a red square that moves down
        images.append(image)
    return {
        "text_observations": ["go to the red ball"] * num_steps,
        "image_observations": images,
        "discrete_observations": rng.integers(0, 4, size=(num_steps, 2)).tolist(),
        "continuous_observations": rng.normal(0, 2, size=(num_steps, 5)).round(3).tolist(),
        "continuous_actions": rng.uniform(-1, 1, size=(num_steps, 2)).round(3).tolist(),
        "task": "demo",
    }


def build_config(variant: str) -> GatoConfig:
    if variant == "tiny":
        return GatoConfig(
            hidden_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=32, intermediate_size=512
        )
    return getattr(GatoConfig, variant)()


def run_demo(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    processor = GatoProcessor()
    config = build_config(args.variant)
    model = GatoForCausalModeling(config).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.variant} variant, {params / 1e6:.2f}M parameters, attention={config._attn_implementation}")

    episode = sample_episode(seed=args.seed)
    batch = processor(episodes=episode)
    ids, kinds = batch["input_ids"][0], []
    for i in range(ids.shape[0]):
        if batch["patch_mask"][0, i]:
            kinds.append("P")
        elif ids[i] == processor.separator_token_id:
            kinds.append("|")
        elif batch["action_mask"][0, i]:
            kinds.append("A")
        else:
            kinds.append("o")
    steps = batch["local_positions"][0].eq(0).sum().item()
    print(f"episode: {steps} timesteps -> {ids.shape[0]} tokens "
          f"({int(batch['patch_mask'].sum())} image patches, {int(batch['loss_mask'].sum())} loss targets)")
    print("layout (P patch, o observation token, | separator, A action):")
    print("  " + "".join(kinds))
    print(f"  first timestep ids: {ids[: int((ids == processor.separator_token_id).nonzero()[0]) + 3].tolist()}")

    with torch.no_grad():
        start = time.perf_counter()
        out = model(**batch)
        elapsed = time.perf_counter() - start
    print(f"forward: logits {tuple(out.logits.shape)}, masked loss {out.loss.item():.4f} "
          f"(log(vocab) = {np.log(config.vocab_size):.4f} for an untrained model), {elapsed * 1000:.1f} ms")
    actions = out.logits[0, :-1][batch["loss_mask"][0, 1:]].argmax(-1)
    print(f"greedy action tokens at the action slots: {actions.tolist()}")

    prompt = processor(text="The agent picks up the")
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=args.max_new_tokens, do_sample=False)
    new = generated[0, prompt["input_ids"].shape[1]:]
    print(f"generate: prompt {prompt['input_ids'][0].tolist()} + {new.tolist()} -> "
          f"{processor.decode(generated[0])!r} (random weights: the words are arbitrary)")

    if not args.quick:
        os.makedirs(args.output_dir, exist_ok=True)
        model.save_pretrained(args.output_dir)
        processor.save_pretrained(args.output_dir)
        torch.save({k: v for k, v in batch.items()}, os.path.join(args.output_dir, "demo_batch.pt"))
        reference = out.logits
        check = (
            "import sys, torch, json\n"
            "from transformers import AutoModel\n"
            "d = sys.argv[1]\n"
            "m = AutoModel.from_pretrained(d, trust_remote_code=True).eval()\n"
            "b = torch.load(d + '/demo_batch.pt')\n"
            "with torch.no_grad(): out = m(**b)\n"
            "torch.save(out.logits, d + '/reloaded_logits.pt')\n"
            "print(json.dumps({'class': type(m).__name__, 'module': type(m).__module__}))\n"
        )
        env = dict(os.environ, PYTHONPATH="")
        result = subprocess.run(
            [sys.executable, "-c", check, os.path.abspath(args.output_dir)],
            capture_output=True, text=True, cwd="/", env=env, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"reloading {args.output_dir} in a fresh process failed:\n{result.stderr[-2000:]}")
        loaded = json.loads(result.stdout.strip().splitlines()[-1])
        reloaded = torch.load(os.path.join(args.output_dir, "reloaded_logits.pt"))
        diff = (reloaded - reference).abs().max().item()
        print(f"saved to {args.output_dir}; AutoModel.from_pretrained(trust_remote_code=True) in a fresh process "
              f"gave {loaded['class']} from {loaded['module']}, max |logit difference| = {diff:.2e}")

    print("\nparameter counts of the paper's variants (plain GELU FFN, tied embeddings):")
    print(variant_table())
