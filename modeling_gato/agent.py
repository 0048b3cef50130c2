"""A Gato agent for gymnasium environments (paper section 3.4, "deployment").

A prompt (the end of a demonstration episode of the task) is tokenized first; each new observation is
tokenized and appended with the separator; the action is sampled one token at a time, each token restricted
to the ids valid for its action slot (continuous bins, or `[0, n)` for a discrete slot), then decoded and sent
to the environment. The model keeps everything that fits in its context window; when the window is full the
oldest whole timesteps are dropped (a quarter of the window at a time) and the KV cache is rebuilt once.

With `use_cache=True` (default) every token costs one forward pass over the new tokens only (transformers'
`DynamicCache`); `use_cache=False` recomputes the whole window for every action token, as earlier open
implementations do (kept for tests and benchmarks: the actions are the same).

`BatchedGatoAgent` acts in N environments at once (`rollouts.run_episodes` drives it in a gymnasium vector env):
one forward pass per action token for all rows, one KV cache whose rows are padded and masked, each row acting
exactly as a `GatoAgent` would.

This module ships with a saved model (the "gato-agent" pipeline's remote code, see `pipelines`): it imports only torch,
transformers, numpy and shipped modules of this package (`acting_utils`, the model and the processor).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicCache

from .acting_utils import TOKEN_KEYS, observation_to_columns
from .acting_utils import concatenate_samples as _concatenate
from .acting_utils import slice_sample as _slice
from .modeling_gato import GatoForCausalModeling
from .processing_gato import GatoProcessor, _space_kind


def space_columns(observation: Any, observation_space: Any) -> dict[str, Any]:
    """A raw gymnasium observation as SPEC observation columns (see `envs.tasks.observation_to_columns`)."""
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
        temperature: 0 for greedy actions, > 0 to sample (seeded with `seed`, then with each `reset(seed=...)`).
            `evaluate` samples at 1, as the paper deploys Gato: greedy, an agent that sees one timestep repeats
            any action that leaves its observation unchanged (measured, README "Sampled actions").
        continuous_temperature: the temperature of a continuous (Box) action space's tokens instead of
            `temperature` (None: `temperature`). Greedy continuous actions beside sampled discrete ones played
            Meta-World reach and InvertedPendulum better in every model measured (README, "Greedy continuous
            actions").
        use_cache: keep the KV cache between tokens and steps.
        history_steps: see at most this many timesteps of the episode (the current one included) besides the prompt;
            None (the paper's deployment): as many as fit in the window. Models trained on short-context samples
            act best with `history_steps=1` and no prompt (measured, README "Learning to act at small budgets").
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
        history_steps: int | None = None,
        continuous_temperature: float | None = None,
    ):
        self.history_steps = _checked_history_steps(history_steps)
        self.action_temperature = action_temperature(action_space, temperature, continuous_temperature)
        self.model = model
        self.processor = processor
        self.observation_space = observation_space
        self.action_space = action_space
        self.context_length = context_length or model.config.max_position_embeddings
        self.prompt_tokens = self.context_length // 4 if prompt_tokens is None else prompt_tokens
        self.temperature, self.continuous_temperature = temperature, continuous_temperature
        self.use_cache = use_cache
        self.ranges = processor.action_token_ranges(action_space)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.seed = seed
        self.prompt_sample = self._prompt_sample(prompt) if prompt is not None else None
        self.reset()

    # ------------------------------------------------------------------ context
    def _prompt_sample(self, episode: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return _prompt_sample(self.processor, episode, self.prompt_tokens)

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
        if _drop_oldest_steps(self.steps, needed, self.context_length, self.history_steps, self.prompt_sample):
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
        return _choose_tokens(self.model, hidden[None], low, high, self.action_temperature, [self.generator])[0]

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


def _prompt_sample(processor: GatoProcessor, episode: Mapping[str, Any], prompt_tokens: int) -> dict[str, np.ndarray]:
    """The last whole timesteps of `episode` that fit in `prompt_tokens` (no loss targets)."""
    tokens = processor.tokenize_episode(episode)
    starts, total = tokens["timestep_starts"], len(tokens["input_ids"])
    fits = np.flatnonzero(total - starts <= prompt_tokens)
    if not len(fits):
        return _empty_sample(processor)
    begin = int(starts[fits[0]])
    sample = _slice(tokens, begin, total)
    sample["loss_mask"] = np.zeros_like(sample["loss_mask"])
    return sample


def action_temperature(action_space: Any, temperature: float, continuous_temperature: float | None = None) -> float:
    """The temperature an agent chooses `action_space`'s tokens at: `continuous_temperature` for a Box space when it
    is given, else `temperature` (both 0 for greedy or a finite number above it)."""
    for name, value in (("temperature", temperature), ("continuous_temperature", continuous_temperature)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                  or not 0 <= value < float("inf")):
            raise ValueError(f"{name}: expected 0 (greedy) or a finite number above it, got {value!r}.")
    if continuous_temperature is not None and _space_kind(action_space) == "box":
        return float(continuous_temperature)
    return float(temperature)


def _checked_history_steps(history_steps: int | None) -> int | None:
    if history_steps is not None and (not isinstance(history_steps, int) or history_steps < 1):
        raise ValueError(f"history_steps: expected None or an integer >= 1, got {history_steps!r}.")
    return history_steps


def _drop_oldest_steps(steps: list[Mapping[str, np.ndarray]], needed: int, context_length: int,
                       history_steps: int | None = None, prompt: Mapping[str, np.ndarray] | None = None) -> bool:
    """The window policy of both agents, before a new observation of `needed` tokens is appended to `steps` (in
    place); True if it dropped anything (the cache must then be rebuilt).

    - `history_steps`: keep at most `history_steps - 1` earlier timesteps of the episode, so that with the new one the
      model sees at most `history_steps` (the prompt, `prompt` when it is `steps[0]`, stays).
    - When `needed` more tokens do not fit in `context_length`, drop the oldest whole timesteps (the prompt first)
      until they fit with a quarter of the window to spare.
    """
    dropped = False
    if history_steps is not None:
        first = 1 if steps and prompt is not None and steps[0] is prompt else 0
        while len(steps) - first > max(history_steps - 1, 0):
            steps.pop(first)
            dropped = True
    window = sum(len(step["input_ids"]) for step in steps)
    if window + needed <= context_length:
        return dropped
    target = max(context_length - needed - context_length // 4, 0)
    while steps and window > target:
        window -= len(steps.pop(0)["input_ids"])
    return True


def _choose_tokens(model: GatoForCausalModeling, hidden: torch.Tensor, low: int, high: int, temperature: float,
                   generators: Sequence[torch.Generator]) -> list[int]:
    """One action token per row of `hidden` `(rows, hidden)`, among the ids `[low, high)` of its slot: only those
    output-layer rows are computed (1,024 or n instead of the whole vocabulary). Greedy at temperature 0, else
    sampled with each row's generator."""
    allowed = F.linear(hidden, model.output_rows(low, high)).float().cpu()
    if temperature <= 0:
        return (low + allowed.argmax(dim=-1)).tolist()
    probabilities = torch.softmax(allowed / temperature, dim=-1)
    return [low + int(torch.multinomial(p, 1, generator=g)) for p, g in zip(probabilities, generators)]


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


# ---------------------------------------------------------------------------- many environments at once
@dataclass
class _Row:
    """One environment's context in a `BatchedGatoAgent`."""

    steps: list[dict[str, np.ndarray]]  # whole timesteps in the window (prompt first), as in `GatoAgent.steps`
    pending: list[dict[str, np.ndarray]]  # the tail of `steps` not yet fed to the model, in order
    generator: torch.Generator  # seeded with the episode seed (temperature > 0)
    rebuild: bool = False  # the window was cut: recompute this row's cache from `steps` alone


class BatchedGatoAgent:
    """Acts in `num_rows` environments at once with one Gato model and one KV cache.

    Every action token costs one forward pass over the new tokens of all rows together (the observation and
    separator at a step's first token, one token after that). Row `r` acts as a `GatoAgent` reset with the same
    seed would: the same prompt, window policy (whole timesteps, prompt first, a quarter of the window dropped when
    it is full, then that row's cache rebuilt), valid-id restriction and a `torch.Generator` of its own seeded with
    the episode seed, so greedy (and, up to float rounding, sampled) actions are the same.

    Rows of different lengths share the cache as follows. Gato has no global position embedding by default: a key's
    column in the cache does not change what attention computes, only which keys a query may see does. The cache
    holds each row's tokens among padding columns, a boolean `valid` (rows, columns) marks a row's tokens, and every
    call gets a 4-D mask: a new token sees its row's valid cached tokens and its row's new tokens up to itself
    (padding queries also see themselves, so no mask row is empty). With `use_absolute_position_embeddings` each
    token gets its position in its row's window explicitly.

    - A reset copies the prompt's keys/values, computed once, into the row; the prompt is the same every episode.
    - A row whose window is cut recomputes its cache alone (a batch of one, as `GatoAgent` does), copied in after,
      so the other rows are not padded to the window's length.
    - Columns that are padding in every row are trimmed; when padding exceeds a quarter of the columns, or the next
      call would pass `max_position_embeddings`, each row's tokens are gathered to the right end and the cache is
      cut to the longest row (feeding in chunks in the rare case that is still too long).
    - `release_rows` drops rows that have no more episodes from the batch: they cost nothing afterwards.

    Args:
        model, processor, observation_space, action_space, prompt, prompt_tokens, context_length, temperature,
            history_steps, continuous_temperature: as for `GatoAgent`.
        num_rows: how many environments (rows `0 .. num_rows - 1`).
    """

    def __init__(
        self,
        model: GatoForCausalModeling,
        processor: GatoProcessor,
        observation_space: Any,
        action_space: Any,
        num_rows: int,
        prompt: Mapping[str, Any] | None = None,
        prompt_tokens: int | None = None,
        context_length: int | None = None,
        temperature: float = 0.0,
        history_steps: int | None = None,
        continuous_temperature: float | None = None,
    ):
        self.history_steps = _checked_history_steps(history_steps)
        self.action_temperature = action_temperature(action_space, temperature, continuous_temperature)
        if num_rows < 1:
            raise ValueError(f"num_rows: expected at least 1, got {num_rows}.")
        self.model = model
        self.processor = processor
        self.observation_space = observation_space
        self.action_space = action_space
        self.num_rows = num_rows
        self.max_columns = model.config.max_position_embeddings
        self.context_length = context_length or self.max_columns
        if not 0 < self.context_length <= self.max_columns:
            raise ValueError(f"context_length: expected 1 ... max_position_embeddings={self.max_columns}, "
                             f"got {self.context_length}.")
        self.prompt_tokens = self.context_length // 4 if prompt_tokens is None else prompt_tokens
        self.temperature, self.continuous_temperature = temperature, continuous_temperature
        self.ranges = processor.action_token_ranges(action_space)
        sample = _prompt_sample(processor, prompt, self.prompt_tokens) if prompt is not None else None
        self.prompt_sample = sample if sample is not None and len(sample["input_ids"]) else None
        self._prompt_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._empty = _empty_sample(processor)
        self.rows: list[_Row | None] = [None] * num_rows
        self.slots: list[int] = []  # the row held at each batch index of the cache
        self.cache: DynamicCache | None = None
        self.valid: torch.Tensor | None = None  # (len(slots), columns) bool: which cache columns hold a row's tokens

    # ------------------------------------------------------------------ episodes
    def reset_rows(self, rows: Sequence[int], seeds: Sequence[int]) -> None:
        """Start a new episode in each of `rows` (the context is the prompt only); `seeds` seed their sampling."""
        if len(rows) != len(seeds):
            raise ValueError(f"reset_rows: got {len(rows)} rows and {len(seeds)} seeds; expected one seed per row.")
        for row, seed in zip(self._checked(rows), seeds):
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
            self.rows[row] = _Row(steps=[self.prompt_sample] if self.prompt_sample is not None else [], pending=[],
                                  generator=generator)
            if self.prompt_sample is not None:
                self._set_row(row, self._prompt_keys_values())
            elif row in self.slots:
                self.valid[self.slots.index(row)] = False

    def release_rows(self, rows: Sequence[int]) -> None:
        """Forget `rows` (no more episodes there) and drop them from the batch."""
        rows = set(self._checked(rows))
        for row in rows:
            self.rows[row] = None
        self._keep_slots([b for b, row in enumerate(self.slots) if row not in rows])

    @torch.no_grad()
    def act(self, observations: Sequence[Any], rows: Sequence[int], rewards: Sequence[float] | None = None) -> list[Any]:
        """Raw gymnasium observations of `rows` in, one environment action per row out (in the order of `rows`)."""
        rows = self._checked(rows)
        if not rows:
            return []
        if len(observations) != len(rows):
            raise ValueError(f"act: got {len(observations)} observations for {len(rows)} rows; expected one per row.")
        states = []
        for index, (observation, row) in enumerate(zip(observations, rows)):
            state = self.rows[row]
            if state is None:
                raise ValueError(f"act: row {row} has no episode; call reset_rows([{row}], [seed]) first.")
            columns = space_columns(observation, self.observation_space)
            tokens = self.processor.tokenize_observation(columns, None if rewards is None else rewards[index])
            self._make_room(row, len(tokens["input_ids"]) + len(self.ranges))
            state.steps.append(tokens)
            state.pending.append(tokens)
            states.append(state)
        missing = [row for row in rows if row not in self.slots]
        if missing:
            self._add_slots(missing)
        chosen = np.zeros((len(rows), len(self.ranges)), np.int64)
        for slot, (low, high) in enumerate(self.ranges):
            tokens = self._choose(self._feed(rows), low, high, [state.generator for state in states])
            chosen[:, slot] = tokens
            for state, token in zip(states, tokens):
                state.steps[-1] = _append_action(state.steps[-1], token)
                state.pending.append(_append_action(self._empty, token))
        return [self.processor.decode_action(ids, self.action_space) for ids in chosen]

    def _checked(self, rows: Sequence[int]) -> list[int]:
        rows = [int(row) for row in rows]
        bad = [row for row in rows if not 0 <= row < self.num_rows]
        if bad:
            raise ValueError(f"rows: expected indices in [0, num_rows={self.num_rows}), got {bad}.")
        if len(set(rows)) != len(rows):
            raise ValueError(f"rows: each row at most once, got {rows}.")
        return rows

    def _make_room(self, row: int, needed: int) -> None:
        """`GatoAgent._make_room` for one row: drop its oldest whole timesteps and mark its cache for a rebuild."""
        state = self.rows[row]
        if not _drop_oldest_steps(state.steps, needed, self.context_length, self.history_steps, self.prompt_sample):
            return
        state.rebuild, state.pending = True, list(state.steps)
        if row in self.slots:
            self.valid[self.slots.index(row)] = False

    # ------------------------------------------------------------------ model calls
    def _inputs(self, samples: list[Mapping[str, np.ndarray]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = self.processor.collate(samples, return_tensors="pt", padding_side="left", max_length=self.max_columns)
        device = self.model.device
        inputs = {k: v.to(device) for k, v in batch.items() if k not in ("loss_mask", "attention_mask")}
        return inputs, batch["attention_mask"].to(device).bool()

    def _alone(self, sample: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """One sequence through the model from an empty cache: its last hidden state and its keys/values."""
        inputs, _ = self._inputs([sample])
        out = self.model.model(**inputs, use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.last_hidden_state[0, -1], [(layer.keys, layer.values) for layer in cache.layers]

    def _prompt_keys_values(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._prompt_cache is None:
            _, self._prompt_cache = self._alone(self.prompt_sample)
        return self._prompt_cache

    def _feed(self, rows: list[int]) -> torch.Tensor:
        """Feed every row's pending tokens; return each row's last hidden state `(len(rows), hidden)`."""
        hidden: dict[int, torch.Tensor] = {}
        for row in rows:
            state = self.rows[row]
            if state.rebuild:
                hidden[row], keys_values = self._alone(_concatenate(state.pending))
                self._set_row(row, keys_values)
                state.rebuild, state.pending = False, []
        todo = {row: _concatenate(self.rows[row].pending) for row in rows if self.rows[row].pending}
        done = dict.fromkeys(todo, 0)  # tokens of `todo[row]` fed so far
        for row in todo:
            self.rows[row].pending = []
        while todo:
            longest = max(len(sample["input_ids"]) - done[row] for row, sample in todo.items())
            self._tidy(longest)
            width = min(longest, self.max_columns - self.valid.shape[1])
            samples = []
            for row in self.slots:
                if row in todo:
                    end = min(done[row] + width, len(todo[row]["input_ids"]))
                    samples.append(_slice(todo[row], done[row], end))
                    done[row] = end
                else:
                    samples.append(self._empty)
            states = self._forward(samples)
            for index, row in enumerate(self.slots):
                if row in todo and done[row] == len(todo[row]["input_ids"]):
                    hidden[row] = states[index, -1]
                    del todo[row]
        return torch.stack([hidden[row] for row in rows])

    def _forward(self, samples: list[Mapping[str, np.ndarray]]) -> torch.Tensor:
        """One call for every slot (new tokens left-padded); extends the cache; returns `(slots, new, hidden)`."""
        inputs, new = self._inputs(samples)
        past, width = self.valid.shape[1], new.shape[1]
        device = new.device
        everything = torch.cat([self.valid, new], dim=1)
        queries = torch.arange(width, device=device)
        causal = torch.arange(past + width, device=device)[None, :] <= past + queries[:, None]
        mask = everything[:, None, :] & causal[None]
        mask[:, queries, past + queries] = True  # every query sees itself: no empty row for padding queries
        positions = (self.valid.sum(1, keepdim=True) + new.long().cumsum(1) - 1).clamp(min=0)
        out = self.model.model(**inputs, attention_mask=mask[:, None], position_ids=positions, cache=self.cache,
                               use_cache=True)
        self.valid = everything
        return out.last_hidden_state

    def _choose(self, hidden: torch.Tensor, low: int, high: int, generators: list[torch.Generator]) -> list[int]:
        return _choose_tokens(self.model, hidden, low, high, self.action_temperature, generators)

    # ------------------------------------------------------------------ the shared cache
    def _add_slots(self, rows: list[int]) -> None:
        """Append `rows` to the batch with nothing cached."""
        config, device = self.model.config, self.model.device
        columns = 0 if self.valid is None else self.valid.shape[1]
        empty = torch.zeros((len(rows), config.num_attention_heads, columns, config.head_dim), dtype=self.model.dtype,
                            device=device)
        if self.cache is None:
            self.cache = DynamicCache([(empty, empty.clone()) for _ in range(config.num_hidden_layers)], config=config)
            self.valid = torch.zeros((len(rows), 0), dtype=torch.bool, device=device)
        else:
            for layer in self.cache.layers:
                layer.keys = torch.cat([layer.keys, empty], dim=0)
                layer.values = torch.cat([layer.values, empty], dim=0)
            self.valid = torch.cat([self.valid, torch.zeros((len(rows), columns), dtype=torch.bool, device=device)])
        self.slots.extend(rows)

    def _keep_slots(self, keep: list[int]) -> None:
        if len(keep) == len(self.slots):
            return
        if not keep:
            self.cache, self.valid, self.slots = None, None, []
            return
        index = torch.tensor(keep, device=self.valid.device)
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
        self.valid = self.valid.index_select(0, index)
        self.slots = [self.slots[b] for b in keep]

    def _set_row(self, row: int, keys_values: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Make `keys_values` (per layer `(1, heads, length, head_dim)`) the whole cached context of `row`."""
        if row not in self.slots:
            self._add_slots([row])
        length = keys_values[0][0].shape[2]
        if self.valid.shape[1] < length:
            self._pad_columns(length - self.valid.shape[1])
        columns = self.valid.shape[1]
        index = self.slots.index(row)
        for layer, (keys, values) in zip(self.cache.layers, keys_values):
            layer.keys[index, :, columns - length:] = keys[0]
            layer.values[index, :, columns - length:] = values[0]
        self.valid[index] = False
        self.valid[index, columns - length:] = True

    def _pad_columns(self, count: int) -> None:
        """Add `count` padding columns on the left of every row."""
        for layer in self.cache.layers:
            pad = layer.keys.new_zeros((*layer.keys.shape[:2], count, layer.keys.shape[3]))
            layer.keys, layer.values = torch.cat([pad, layer.keys], dim=2), torch.cat([pad, layer.values], dim=2)
        self.valid = torch.cat([self.valid.new_zeros((self.valid.shape[0], count)), self.valid], dim=1)

    def _tidy(self, incoming: int) -> None:
        """Trim columns that are padding in every row; gather each row's tokens to the right end when the padding
        is over a quarter of the columns or `incoming` more columns would not fit."""
        used = self.valid.any(dim=0)
        first = int(used.float().argmax()) if bool(used.any()) else self.valid.shape[1]
        if first:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.valid = self.valid[:, first:]
        columns = self.valid.shape[1]
        longest = int(self.valid.sum(dim=1).max()) if columns else 0
        if columns + incoming <= self.max_columns and columns - longest <= columns // 4:
            return
        # Stable sort puts each row's padding first and keeps its tokens in order; keep the last `longest` columns.
        order = torch.sort(self.valid.to(torch.int8), dim=1, stable=True).indices[:, columns - longest:]
        for layer in self.cache.layers:
            index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
            layer.keys, layer.values = layer.keys.gather(2, index), layer.values.gather(2, index)
        self.valid = self.valid.gather(1, order)
