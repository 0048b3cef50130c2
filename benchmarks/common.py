"""Shared pieces of the benchmarks: synthetic episodes, the acting loop (cached and recompute), timing helpers.

There is no agent class yet, so the acting loop lives here. Per environment step:
- cached: feed the previous step's last action token + the new observation tokens + separator to the model with
  its KV cache, then sample the action tokens one at a time, each fed back with the cache (no host sync inside
  the step: sampled ids stay tensors until the action is decoded at the end);
- recompute: run the whole context from scratch (no cache) for every action token, like earlier open
  implementations.
Sampling is restricted to the valid id range of the action slot (continuous [32000, 33024), discrete [0, n)).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

METAWORLD_OBS, METAWORLD_ACT = 39, 4
BABYAI_MISSION = "go to the red ball"  # ~6 tokens with the shipped tokenizer
BABYAI_ACTIONS = 7


def metaworld_episode(steps: int, rng: np.random.Generator) -> dict:
    return {
        "continuous_observations": rng.normal(0.0, 1.0, (steps, METAWORLD_OBS)).astype(np.float32),
        "continuous_actions": rng.uniform(-1.0, 1.0, (steps, METAWORLD_ACT)).astype(np.float32),
    }


def babyai_image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)  # padded to 64x64 = 16 patches by the processor


def babyai_episode(steps: int, rng: np.random.Generator) -> dict:
    return {
        "discrete_observations": [[int(rng.integers(4))] for _ in range(steps)],
        "image_observations": [babyai_image(rng) for _ in range(steps)],
        "text_observations": [BABYAI_MISSION] * steps,
        "discrete_actions": [[int(rng.integers(BABYAI_ACTIONS))] for _ in range(steps)],
    }


def metaworld_observation(rng: np.random.Generator) -> dict:
    return {"continuous_observations": rng.normal(0.0, 1.0, METAWORLD_OBS).astype(np.float32)}


def babyai_observation(rng: np.random.Generator) -> dict:
    return {
        "discrete_observations": [int(rng.integers(4))],
        "image_observations": babyai_image(rng),
        "text_observations": BABYAI_MISSION,
    }


TASKS = {
    # name: (episode maker, observation maker, action id ranges)
    "metaworld": (metaworld_episode, metaworld_observation, [(32000, 33024)] * METAWORLD_ACT),
    "babyai": (babyai_episode, babyai_observation, [(0, BABYAI_ACTIONS)]),
}


def to_model_inputs(sample: dict, device: torch.device, dtype: torch.dtype = torch.float32) -> dict:
    """An unpadded tokenized sample (processor.tokenize_episode / tokenize_observation) -> batch-1 model inputs."""
    ids = torch.as_tensor(sample["input_ids"], device=device).unsqueeze(0)
    out = {"input_ids": ids, "local_positions": torch.as_tensor(sample["local_positions"], device=device).unsqueeze(0)}
    patch_mask = np.asarray(sample["patch_mask"])
    if patch_mask.any():
        seq = len(patch_mask)
        patches = np.zeros((seq, *sample["patches"].shape[1:]), np.float32)
        intervals = np.zeros((seq, 4), np.float32)
        patches[patch_mask] = sample["patches"]
        intervals[patch_mask] = sample["patch_intervals"]
        out["image_patches"] = torch.as_tensor(patches, device=device, dtype=dtype).unsqueeze(0)
        out["patch_intervals"] = torch.as_tensor(intervals, device=device).unsqueeze(0)
        out["patch_mask"] = torch.as_tensor(patch_mask, device=device).unsqueeze(0)
    return out


def concat_inputs(a: dict, b: dict) -> dict:
    """Concatenate two batch-1 input dicts along the sequence (filling patch inputs where one side has none)."""
    out = {}
    seq_a, seq_b = a["input_ids"].shape[1], b["input_ids"].shape[1]
    for key in set(a) | set(b):
        if key in a and key in b:
            out[key] = torch.cat([a[key], b[key]], dim=1)
            continue
        have, side = (a, "a") if key in a else (b, "b")
        value = have[key]
        missing = seq_b if side == "a" else seq_a
        pad = value.new_zeros((1, missing, *value.shape[2:]))
        out[key] = torch.cat([value, pad] if side == "a" else [pad, value], dim=1)
    return out


def action_token_inputs(token: torch.Tensor) -> dict:
    """A sampled action id (shape (1, 1)) as model inputs: no local position, no patch."""
    return {"input_ids": token, "local_positions": torch.full_like(token, -1)}


def sample_in_range(logits: torch.Tensor, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """Sample one id in [low, high) from the last position's logits; stays on the device (no host sync)."""
    probs = torch.softmax(logits[:, -1, low:high].float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator) + low


class Actor:
    """The acting loop for one task at a nearly full context.

    `prepare()` tokenizes a prompt episode that leaves room for one more step and (cached) prefills the cache;
    `step()` runs one environment step from the observation to the full action and rewinds the context to the
    prepared state, so every timed step sees the same (nearly full) context.
    """

    def __init__(self, model, processor, task: str, cached: bool, context: int = 1024, seed: int = 0,
                 cache_factory: Callable | None = None, range_head: bool = True,
                 decoder: Callable | None = None):
        self.model, self.processor, self.task, self.cached = model, processor, task, cached
        self.make_episode, self.make_observation, self.ranges = TASKS[task]
        self.context = context
        self.rng = np.random.default_rng(seed)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.cache_factory = cache_factory
        # range_head: compute only the logits of the slot's valid ids (1,024 rows of the tied table for a
        # continuous action instead of 33,025): the same distribution as masking the full logits, at a fraction
        # of the memory traffic (the output layer is the largest single matrix of the small model).
        self.range_head = range_head
        # decoder: the module (or a compiled version of its forward) that turns inputs into hidden states.
        self.decoder = decoder if decoder is not None else model.model
        self.mark_step = decoder is not None
        self.head_weight = model.get_output_embeddings().weight

    @torch.inference_mode()
    def prepare(self) -> int:
        probe = self.processor.tokenize_episode(self.make_episode(1, self.rng))
        step_len = len(probe["input_ids"])
        steps = self.context // step_len - 1  # leave room for the measured step
        prompt = self.processor.tokenize_episode(self.make_episode(steps, self.rng))
        inputs = to_model_inputs(prompt, self.device, self.dtype)
        # The last action token of the prompt is fed with the next observation (as in a live loop).
        self.last_action = inputs["input_ids"][:, -1:]
        self.prompt = {k: v[:, :-1] for k, v in inputs.items()}
        self.prompt_len = self.prompt["input_ids"].shape[1]
        self.step_len = step_len
        if self.cached:
            self.cache = self.cache_factory() if self.cache_factory else None
            out = self.model(**self.prompt, cache=self.cache, use_cache=True, logits_to_keep=1)
            self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return self.prompt_len + step_len  # context length at the end of the step

    @torch.inference_mode()
    def step(self) -> list[int]:
        observation = self.processor.tokenize_observation(self.make_observation(self.rng))
        new = concat_inputs(action_token_inputs(self.last_action), to_model_inputs(observation, self.device, self.dtype))
        actions = []
        if self.cached:
            fed = 0
            inputs = new
            for low, high in self.ranges:
                fed += inputs["input_ids"].shape[1]
                if self.range_head:
                    if self.mark_step:
                        torch.compiler.cudagraph_mark_step_begin()
                    hidden = self.decoder(**inputs, cache=self.cache, use_cache=True).last_hidden_state[:, -1:]
                    logits = torch.nn.functional.linear(hidden, self.head_weight[low:high])
                    token = sample_in_range(logits, 0, high - low, self.generator) + low
                else:
                    out = self.model(**inputs, cache=self.cache, use_cache=True, logits_to_keep=1)
                    token = sample_in_range(out.logits, low, high, self.generator)
                actions.append(token)
                inputs = action_token_inputs(token)
            rewind(self.cache, fed)  # back to the prepared context for the next timed step
        else:
            context = concat_inputs(self.prompt, new)
            for low, high in self.ranges:
                out = self.model(**context, use_cache=False, logits_to_keep=1)
                token = sample_in_range(out.logits, low, high, self.generator)
                actions.append(token)
                context = concat_inputs(context, action_token_inputs(token))
        return torch.cat(actions, dim=1).view(-1).tolist()  # the one host sync: the action goes to the env


def rewind(cache, tokens: int) -> None:
    """Forget the last `tokens` tokens of a DynamicCache or StaticCache (transformers 5.x, any minor version)."""
    for layer in cache.layers:
        if hasattr(layer, "cumulative_length") and torch.is_tensor(layer.cumulative_length):
            layer.cumulative_length.sub_(tokens)  # static: the next update overwrites the stale slots
        else:
            layer.keys = layer.keys[..., :-tokens, :]
            layer.values = layer.values[..., :-tokens, :]


def median_time(fn: Callable, repeats: int, warmup: int = 1, sync: Callable | None = None) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def non_embedding_params(model) -> int:
    """Parameters outside the token/position tables (the decoder, norms and the patch block)."""
    emb = model.model.embeddings
    tables = [emb.embed_tokens, emb.patch_row_embedding, emb.patch_col_embedding, emb.local_position_embedding]
    if emb.action_position_embedding is not None:
        tables.append(emb.action_position_embedding)
    if emb.position_embedding is not None:
        tables.append(emb.position_embedding)
    skip = {id(p) for t in tables for p in t.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def decoder_params(config) -> int:
    """Matmul parameters of the decoder blocks (the part that costs 6 FLOPs per token per parameter)."""
    h, i, inner = config.hidden_size, config.intermediate_size, config.num_attention_heads * config.head_dim
    ffn = 3 * h * (i // 2) if config.use_geglu else 2 * h * i
    return config.num_hidden_layers * (4 * h * inner + ffn)


def training_flops_per_token(config, seq: int, include_output: bool = False) -> float:
    """6 * N (decoder matmul params) + attention (PaLM convention: 12 * layers * heads*head_dim * seq)."""
    n = decoder_params(config) + (config.hidden_size * config.vocab_size if include_output else 0)
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq
    return 6 * n + attention


def matmul_ceiling(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 7) -> float:
    """Dense matmul FLOP/s of a size x size product (median)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    inner = 1 if device.type == "cpu" else 20

    def run():
        for _ in range(inner):
            a @ b

    t, _ = median_time(run, repeats, warmup=2, sync=sync)
    return 2 * size**3 * inner / t
