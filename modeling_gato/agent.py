"""A Gato agent for gymnasium environments (paper section 3.4, "deployment").

A prompt (the end of a demonstration episode of the task) is tokenized first; each new observation is
tokenized and appended with the separator; the action is sampled one token at a time, each token restricted
to the ids valid for its action slot (continuous bins, or `[0, n)` for a discrete slot), then decoded and sent
to the environment. The model keeps everything that fits in its context window; when the window is full the
oldest whole timesteps are dropped (a quarter of the window at a time) and the KV cache is rebuilt once.

With `use_cache=True` (default) every token costs one forward pass over the new tokens only (transformers'
`DynamicCache`); `use_cache=False` recomputes the whole window for every action token, as earlier open
implementations do (kept for tests and benchmarks: the actions are the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .modeling_gato import GatoForCausalModeling
from .processing_gato import GatoProcessor
from .sequences import TOKEN_KEYS, _concatenate
from .sequences import _slice_sample as _slice


def space_columns(observation: Any, observation_space: Any) -> dict[str, Any]:
    """A raw gymnasium observation as SPEC observation columns (see `environments.observation_to_columns`)."""
    from .environments import observation_to_columns

    return observation_to_columns(observation, observation_space)


class GatoAgent:
    """Acts in one environment with a Gato model.

    Args:
        model: a `GatoForCausalModeling` (put it in eval mode and on its device first).
        processor: the matching `GatoProcessor`.
        observation_space, action_space: the environment's spaces (gymnasium).
        prompt: an episode row (SPEC columns) of the same task; its last whole timesteps (at most `prompt_tokens`)
            are the demonstration the model is conditioned on.
        prompt_tokens: token budget of the prompt (default a quarter of the context).
        context_length: window in tokens (default the model's `max_position_embeddings`).
        temperature: 0 for greedy actions, > 0 to sample (seeded with `seed`).
        use_cache: keep the KV cache between tokens and steps.
    """

    def __init__(
        self,
        model: GatoForCausalModeling,
        processor: GatoProcessor,
        observation_space: Any,
        action_space: Any,
        prompt: Mapping[str, Any] | None = None,
        prompt_tokens: int | None = None,
        context_length: int | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        use_cache: bool = True,
    ):
        self.model = model
        self.processor = processor
        self.observation_space = observation_space
        self.action_space = action_space
        self.context_length = context_length or model.config.max_position_embeddings
        self.prompt_tokens = self.context_length // 4 if prompt_tokens is None else prompt_tokens
        self.temperature = temperature
        self.use_cache = use_cache
        self.ranges = processor.action_token_ranges(action_space)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.seed = seed
        self.prompt_sample = self._prompt_sample(prompt) if prompt is not None else None
        self.reset()

    # ------------------------------------------------------------------ context
    def _prompt_sample(self, episode: Mapping[str, Any]) -> dict[str, np.ndarray]:
        tokens = self.processor.tokenize_episode(episode)
        starts, total = tokens["timestep_starts"], len(tokens["input_ids"])
        fits = np.flatnonzero(total - starts <= self.prompt_tokens)
        if not len(fits):
            return _empty_sample(self.processor)
        begin = int(starts[fits[0]])
        sample = _slice(tokens, begin, total)
        sample["loss_mask"] = np.zeros_like(sample["loss_mask"])
        return sample

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: the context is the prompt only."""
        if seed is not None:
            self.generator.manual_seed(seed)
        self.steps: list[dict[str, np.ndarray]] = []  # whole timesteps in the window (prompt first)
        if self.prompt_sample is not None and len(self.prompt_sample["input_ids"]):
            self.steps.append(self.prompt_sample)
        self.cache = None
        self.cached_tokens = 0  # tokens of `self.steps` already in the cache
        self.pending: dict[str, np.ndarray] | None = None  # tokens not yet fed to the model

    def _window_tokens(self) -> int:
        return sum(len(s["input_ids"]) for s in self.steps)

    def _make_room(self, needed: int) -> None:
        """Drop the oldest whole timesteps until `needed` more tokens fit (a quarter of the window extra)."""
        if self._window_tokens() + needed <= self.context_length:
            return
        target = self.context_length - needed - self.context_length // 4
        while self.steps and self._window_tokens() > max(target, 0):
            self.steps.pop(0)
        self.cache, self.cached_tokens = None, 0  # positions shifted: rebuild the cache once

    # ------------------------------------------------------------------ model calls
    def _inputs(self, sample: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        device = self.model.device
        batch = self.processor.collate([sample], return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items() if k not in ("loss_mask", "attention_mask")}

    @torch.no_grad()
    def _next_hidden(self) -> torch.Tensor:
        """Feed what the model has not seen yet; return the last position's final hidden state `(hidden,)`."""
        if self.use_cache:
            everything = _concatenate(self.steps)
            new = _slice(everything, self.cached_tokens, len(everything["input_ids"]))
            out = self.model.model(**self._inputs(new), cache=self.cache, use_cache=True)
            self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
            self.cached_tokens = len(everything["input_ids"])
        else:
            out = self.model.model(**self._inputs(_concatenate(self.steps)), use_cache=False)
        return out.last_hidden_state[0, -1]

    @torch.no_grad()
    def _choose(self, hidden: torch.Tensor, low: int, high: int) -> int:
        # Only the output-layer rows of this slot's valid ids: 1,024 (or n) rows instead of the whole vocabulary.
        allowed = F.linear(hidden, self.model.lm_head.weight[low:high]).float().cpu()
        if self.temperature <= 0:
            return low + int(torch.argmax(allowed))
        probabilities = torch.softmax(allowed / self.temperature, dim=-1)
        return low + int(torch.multinomial(probabilities, 1, generator=self.generator))

    # ------------------------------------------------------------------ acting
    def act_tokens(self, columns: Mapping[str, Any], reward: float | None = None) -> np.ndarray:
        """Append one observation (SPEC columns), sample its action tokens, return their ids."""
        observation = self.processor.tokenize_observation(columns, reward=reward)
        self._make_room(len(observation["input_ids"]) + len(self.ranges))
        self.steps.append(observation)
        chosen = []
        for low, high in self.ranges:
            token = self._choose(self._next_hidden(), low, high)
            chosen.append(token)
            self.steps[-1] = _append_action(self.steps[-1], token)
        return np.asarray(chosen, dtype=np.int64)

    def act(self, observation: Any, reward: float | None = None) -> Any:
        """A raw gymnasium observation in, an environment action out."""
        columns = space_columns(observation, self.observation_space)
        return self.processor.decode_action(self.act_tokens(columns, reward), self.action_space)


def _empty_sample(processor: GatoProcessor) -> dict[str, np.ndarray]:
    size = processor.image_processor.patch_size
    sample = {key: np.zeros(0, np.int64 if key in ("input_ids", "local_positions") else bool) for key in TOKEN_KEYS}
    sample["patches"] = np.zeros((0, 3, size, size), np.float32)
    sample["patch_intervals"] = np.zeros((0, 4), np.float32)
    return sample


def _append_action(sample: Mapping[str, np.ndarray], token: int) -> dict[str, np.ndarray]:
    out = dict(sample)
    out["input_ids"] = np.append(sample["input_ids"], token)
    out["patch_mask"] = np.append(sample["patch_mask"], False)
    out["local_positions"] = np.append(sample["local_positions"], -1)
    out["action_mask"] = np.append(sample["action_mask"], True)
    out["loss_mask"] = np.append(sample["loss_mask"], True)
    return out
