"""The sequence builder: episodes, text, captions and VQA rows -> training samples of exactly the context length.

Paper section 2.3 / appendix: training samples are 1024-token subsequences of episodes, in time order;
in 25% of them a prompt from another episode of the same task is prepended, half of those taken from
the end of that episode (goal conditioning) and half from a uniformly chosen place. Domains are mixed
with per-dataset sample weights.

Our choices, where the paper is silent:
- Samples hold whole timesteps: a window starts at a timestep boundary and stops before the first
  timestep that does not fit. A single timestep longer than the context is cut at the context length.
- The prompt is whole timesteps of at most `prompt_tokens` tokens (a quarter of the context by default);
  its tokens are not loss targets (they condition, like a demonstration at deployment).
- Text, caption and VQA rows are packed one after another (each ends with EOS) until the context is
  full; a text row longer than the context is cut into context-sized chunks.
- Samples shorter than the context (a short episode) are padded: `attention_mask` is 0 there.
- Short-context samples (ours, off unless `short_context_probability > 0`): a model that sees hundreds of earlier
  timesteps can predict an action from the previous actions alone (a CartPole expert alternates its action 76% of
  the time), and at small budgets it learns that shortcut instead of reading the observation. A fraction of
  episode samples is therefore packed from independent windows of 1 to `short_context_timesteps` whole timesteps,
  each its own segment (`segment_ids`): the collator turns the segments into a block-diagonal causal mask, so a
  window sees only itself, and as Gato has no global position embedding each window is computed exactly as if it
  were a sample of its own. The other samples keep the long windows and the prompts. With
  `short_context_prompt_tokens`, each short window starts (in its segment) with the end of another episode of the
  same task, as the agent is prompted when it acts: one timestep alone does not always say which task it is.

Works from map-style `datasets` (random access, memory-mapped Arrow: memory does not grow with the data)
and from iterable / streaming datasets (a bounded shuffle buffer of episodes per task).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..acting_utils import TOKEN_KEYS
from ..acting_utils import concatenate_samples as _concatenate
from ..acting_utils import slice_sample as _slice_sample
from ..processing_gato import GatoProcessor


@dataclass
class Source:
    """One task's (or text kind's) rows, with its sampling weight."""

    name: str
    dataset: Any  # a datasets.Dataset (map-style) or an iterable of rows
    weight: float = 1.0
    kind: str = "episodes"  # "episodes" or "text" (text, captions and VQA rows are packed)


def training_episode_count(total: int, held_out: int) -> int:
    """How many of a task's `total` episodes are trained on when its last `held_out` are held out: all of them when
    the task has no more (a small task is never left without training data)."""
    return total - held_out if total > held_out else total


def training_row_count(total: int) -> int:
    """How many of a text, caption or VQA dataset's `total` rows are trained on: all but the last 5% (at least one
    held out, at least one kept)."""
    return max(1, total - max(1, total // 20))


def _nbytes(sample: Mapping[str, Any]) -> int:
    return sum(value.nbytes for value in sample.values() if isinstance(value, np.ndarray))


def _uniform_full_start(episode: Mapping[str, np.ndarray], budget: int, rng: np.random.Generator) -> int:
    """A starting timestep drawn uniformly among those whose window is as full as whole timesteps allow.

    A start qualifies when the tokens left from it reach `budget - longest timestep + 1`: the window then stops
    because the next timestep would not fit, not because the episode ended. Short episodes start at 0.
    """
    starts = episode["timestep_starts"]
    total = len(episode["input_ids"])
    longest = int(np.diff(np.append(starts, total)).max())
    remaining = total - starts
    full = np.flatnonzero(remaining >= max(budget - longest + 1, 1))
    return int(rng.integers(int(full[-1]) + 1)) if len(full) else 0


class GatoSequenceBuilder(torch.utils.data.IterableDataset):
    """An endless stream of context-length samples mixed over sources by weight.

    Each yielded sample is a dict of numpy arrays: `input_ids`, `attention_mask`, `patch_mask`,
    `local_positions`, `action_mask`, `loss_mask` (all `(context_length,)`), `patches` `(n, 3, p, p)`,
    `patch_intervals` `(n, 4)`, plus `task` (the source name) and `prompted` (whether a prompt was prepended).
    Feed them to `GatoDataCollator` (they are already tokenized).

    Args:
        processor: the `GatoProcessor` that tokenizes rows.
        sources: `Source`s, or a mapping name -> dataset (weight 1, episodes) .
        context_length: tokens per sample (the model's 1024 by default).
        prompt_probability: fraction of episode samples that get a prompt from another episode (0.25).
        prompt_tokens: token budget of a prompt (default a quarter of the context).
        seed: base seed; each dataloader worker and each `set_epoch` gets its own stream.
        shuffle_buffer: episodes kept per task when a source is iterable (streaming).
        token_cache_size: tokenized rows kept at most (least recently used first out).
        token_cache_bytes: bytes of tokenized rows kept at most (1 GiB): memory stays bounded. A sample reads a
            random episode per window, so the cache should hold every training episode: the 60-minute demo's 304
            episodes tokenize to ~90 MiB, and with 64 rows cached its samples took 50-60x longer to build
            (59 against 1.1 ms a sample with the default mixture; `benchmarks/builder_bench.py`).
        short_context_probability: fraction of episode samples packed from independent short windows (0: none,
            the paper's sampling).
        short_context_timesteps: the longest short window, in timesteps (each window's length is uniform in
            `[1, short_context_timesteps]`).
        short_context_prompt_tokens: token budget of the prompt each short window starts with (0: none). The prompt
            is the last whole timesteps of another episode of the same task that fit in it (no loss targets), in
            the window's segment: what `GatoAgent` gives the model when it acts with `prompt_tokens` set to this
            and `history_steps=1`. One timestep alone does not always say which task it is (Meta-World's reach
            and pick-place share their observation layout and goal ranges); a demonstration's end does.

    Samples carry `segment_ids` `(context_length,)`: 0 for a long window (with its prompt), `0, 1, 2, ...` for
    the windows of a short-context sample, -1 on padding.
    """

    def __init__(
        self,
        processor: GatoProcessor,
        sources: list[Source] | Mapping[str, Any],
        context_length: int = 1024,
        prompt_probability: float = 0.25,
        prompt_tokens: int | None = None,
        seed: int = 0,
        shuffle_buffer: int = 64,
        token_cache_size: int = 8192,
        token_cache_bytes: int = 1 << 30,
        short_context_probability: float = 0.0,
        short_context_timesteps: int = 1,
        short_context_prompt_tokens: int = 0,
    ):
        super().__init__()
        if isinstance(sources, Mapping):
            sources = [Source(name, dataset) for name, dataset in sources.items()]
        if not sources:
            raise ValueError("sources: expected at least one source of rows.")
        weights = np.array([s.weight for s in sources], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"source weights must be >= 0 with a positive sum, got {weights.tolist()}.")
        if not 0.0 <= prompt_probability <= 1.0:
            raise ValueError(f"prompt_probability={prompt_probability} is invalid: expected a probability.")
        if not 0.0 <= short_context_probability <= 1.0:
            raise ValueError(f"short_context_probability={short_context_probability} is invalid: expected a probability.")
        if not isinstance(short_context_timesteps, int) or short_context_timesteps < 1:
            raise ValueError(f"short_context_timesteps={short_context_timesteps!r} is invalid: expected an integer >= 1.")
        if not isinstance(short_context_prompt_tokens, int) or not 0 <= short_context_prompt_tokens < context_length:
            raise ValueError(f"short_context_prompt_tokens={short_context_prompt_tokens!r} is invalid: expected an "
                             f"integer in [0, {context_length}) (the context length).")
        if context_length < 2:
            raise ValueError(f"context_length={context_length} is invalid: expected at least 2 tokens.")
        self.processor = processor
        self.sources = list(sources)
        self.probabilities = weights / weights.sum()
        self.context_length = context_length
        self.prompt_probability = prompt_probability
        self.prompt_tokens = context_length // 4 if prompt_tokens is None else prompt_tokens
        self.seed = seed
        self.epoch = 0
        self.shuffle_buffer = shuffle_buffer
        self.short_context_probability = short_context_probability
        self.short_context_timesteps = short_context_timesteps
        self.short_context_prompt_tokens = short_context_prompt_tokens
        self._task_layout: dict[str, tuple[tuple[str, ...], int]] = {}
        self.token_cache_size = token_cache_size
        self.token_cache_bytes = token_cache_bytes
        self._token_cache: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._token_cache_used = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # ------------------------------------------------------------------ rows
    def _row_reader(self, source: Source, rng: np.random.Generator):
        """A function returning `(episode index, row)` drawn at random from the source.

        Map-style datasets are read by random index (Arrow is memory-mapped: nothing is loaded up front); their row
        comes as a function that reads it, called only when the row is not already tokenized in the cache (reading
        an episode decodes all of its images: reading before looking in the cache took most of a sample's time).
        Iterable (streaming) sources go through a shuffle buffer of `shuffle_buffer` rows, restarted when exhausted.
        """
        dataset = source.dataset
        if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
            if len(dataset) == 0:
                raise ValueError(f"source {source.name!r} is empty.")

            def read_random():
                index = int(rng.integers(len(dataset)))
                return index, functools.partial(dataset.__getitem__, index)

            return read_random

        buffer: list[tuple[int, Any]] = []
        state = {"iterator": iter(enumerate(dataset))}

        def next_row():
            try:
                return next(state["iterator"])
            except StopIteration:
                state["iterator"] = iter(enumerate(dataset))
                try:
                    return next(state["iterator"])
                except StopIteration:
                    raise ValueError(f"source {source.name!r} is empty.") from None

        def read_buffered():
            while len(buffer) < self.shuffle_buffer:
                buffer.append(next_row())
            index = int(rng.integers(len(buffer)))
            row, buffer[index] = buffer[index], next_row()
            return row

        return read_buffered

    def _tokenize(self, indexed_row: tuple[int, Mapping[str, Any]], source: Source) -> dict[str, np.ndarray]:
        index, row = indexed_row
        key = (source.name, index)
        if key in self._token_cache:  # episodes are long and reused: keep the last few tokenized (bounded memory)
            self._token_cache[key] = self._token_cache.pop(key)
            return self._token_cache[key]
        sample = self._tokenize_row(index, row() if callable(row) else row, source)
        self._token_cache[key] = sample
        self._token_cache_used += _nbytes(sample)
        while len(self._token_cache) > 1 and (len(self._token_cache) > self.token_cache_size
                                              or self._token_cache_used > self.token_cache_bytes):
            self._token_cache_used -= _nbytes(self._token_cache.pop(next(iter(self._token_cache))))
        return sample

    def _tokenize_row(self, index: int, row: Mapping[str, Any], source: Source) -> dict[str, np.ndarray]:
        task = row.get("task") or source.name if isinstance(row, Mapping) else source.name
        try:
            sample = self.processor.tokenize_sample(row, index)
        except ValueError as error:
            raise ValueError(f"task {task!r}: {error}") from None
        if source.kind == "episodes":
            self._check_consistency(task, index, row, sample)
        return sample

    def _check_consistency(self, task: str, index: int, row: Mapping[str, Any], sample: dict) -> None:
        """Every episode of a task has the same columns and the same number of action tokens a step."""
        columns = tuple(sorted(k for k, v in row.items() if k.endswith(("_observations", "_actions")) and v is not None))
        starts = sample["timestep_starts"]
        per_step = np.add.reduceat(sample["action_mask"].astype(np.int64), starts)
        if len(set(per_step.tolist())) > 1:
            step = int(np.flatnonzero(per_step != per_step[0])[0])
            raise ValueError(
                f"task {task!r}: episode {index}, step {step} has {per_step[step]} action tokens, "
                f"expected {per_step[0]} like step 0 (the action length must not change within a task)."
            )
        known = self._task_layout.setdefault(task, (columns, int(per_step[0])))
        if known[0] != columns:
            raise ValueError(f"task {task!r}: episode {index} has columns {list(columns)}, expected {list(known[0])}.")
        if known[1] != int(per_step[0]):
            raise ValueError(
                f"task {task!r}: episode {index} has {per_step[0]} action tokens a step, expected {known[1]} "
                "(the action length must not change within a task)."
            )

    # ------------------------------------------------------------------ episodes
    def _window(self, episode: Mapping[str, np.ndarray], budget: int, start_step: int) -> dict[str, np.ndarray]:
        """Whole timesteps from `start_step` on that fit in `budget` tokens (at least part of one)."""
        starts = episode["timestep_starts"]
        ends = np.append(starts[1:], len(episode["input_ids"]))
        begin = int(starts[start_step])
        fits = np.flatnonzero(ends[start_step:] - begin <= budget)
        end = int(ends[start_step + fits[-1]]) if len(fits) else begin + budget  # cut one oversized timestep
        return _slice_sample(episode, begin, end)

    def _episode_sample(self, source: Source, read, rng: np.random.Generator) -> tuple[dict, bool]:
        # The draw is skipped when short samples are off, so the paper's stream stays the same seed for seed.
        if self.short_context_probability > 0 and rng.random() < self.short_context_probability:
            return self._short_context_sample(source, read, rng), False
        episode_index, row = read()
        episode = self._tokenize((episode_index, row), source)
        parts, budget, prompted = [], self.context_length, False
        if rng.random() < self.prompt_probability:
            prompted = True
            prompt_episode = self._tokenize(self._other_episode(read, episode_index), source)
            prompt = self._prompt(prompt_episode, rng)
            prompt["loss_mask"] = np.zeros_like(prompt["loss_mask"])
            parts.append(prompt)
            budget -= len(prompt["input_ids"])
        parts.append(self._window(episode, budget, _uniform_full_start(episode, budget, rng)))
        sample = _concatenate(parts)
        sample["segment_ids"] = np.zeros(len(sample["input_ids"]), np.int64)
        return sample, prompted

    def _short_context_sample(self, source: Source, read, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Independent windows of 1..`short_context_timesteps` whole timesteps (random episode, random start),
        one segment each, until the context is full (the last window keeps the whole timesteps that fit). With
        `short_context_prompt_tokens`, each segment starts with the end of another episode of the same task."""
        parts, segments, used = [], [], 0
        while used < self.context_length:
            episode_index, row = read()
            episode = self._tokenize((episode_index, row), source)
            prompt = None
            if self.short_context_prompt_tokens:
                prompt = self._episode_end(self._tokenize(self._other_episode(read, episode_index), source),
                                           self.short_context_prompt_tokens)
                prompt["loss_mask"] = np.zeros_like(prompt["loss_mask"])
            room = self.context_length - used - (len(prompt["input_ids"]) if prompt is not None else 0)
            starts = episode["timestep_starts"]
            ends = np.append(starts[1:], len(episode["input_ids"]))
            steps = int(rng.integers(1, self.short_context_timesteps + 1))
            first = int(rng.integers(len(starts)))
            last = min(first + steps, len(starts))  # exclusive
            begin = int(starts[first])
            fits = np.flatnonzero(ends[first:last] - begin <= room)
            if not len(fits):  # not even one timestep fits: the row is full (cut it if it is the row's first)
                if not parts:
                    parts.append(_slice_sample(episode, begin, begin + self.context_length))
                    segments.append(len(parts[0]["input_ids"]))
                break
            end = int(ends[first + fits[-1]])
            window = ([] if prompt is None else [prompt]) + [_slice_sample(episode, begin, end)]
            parts.extend(window)
            segments.append(sum(len(p["input_ids"]) for p in window))
            used += segments[-1]
        sample = _concatenate(parts)
        sample["segment_ids"] = np.repeat(np.arange(len(segments)), segments)
        return sample

    @staticmethod
    def _other_episode(read, episode_index: int):
        """Another row of the same task than `episode_index`, when the task has more than one (8 tries)."""
        other = read()
        for _ in range(8):
            if other[0] != episode_index:
                break
            other = read()
        return other

    def _episode_end(self, episode: Mapping[str, np.ndarray], budget: int) -> dict[str, np.ndarray]:
        """The last whole timesteps of `episode` that fit in `budget` tokens (the last timestep, cut, if none)."""
        fits = np.flatnonzero(len(episode["input_ids"]) - episode["timestep_starts"] <= budget)
        first = int(fits[0]) if len(fits) else len(episode["timestep_starts"]) - 1
        return self._window(episode, budget, first)

    def _prompt(self, episode: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Half of the prompts are the end of the episode (goal conditioning), half start at a uniform timestep."""
        if rng.random() < 0.5:
            return self._episode_end(episode, self.prompt_tokens)
        return self._window(episode, self.prompt_tokens, _uniform_full_start(episode, self.prompt_tokens, rng))

    # ------------------------------------------------------------------ text, captions, VQA
    def _packed_sample(self, source: Source, read) -> dict[str, np.ndarray]:
        parts, used = [], 0
        while used < self.context_length:
            sample = self._tokenize(read(), source)
            length = len(sample["input_ids"])
            if length == 0:
                continue
            take = min(length, self.context_length - used)
            if take < length and parts and sample["patch_mask"].any():
                break  # do not cut an image-text row in the middle: pad instead
            parts.append(_slice_sample(sample, 0, take))
            used += take
        return _concatenate(parts)

    # ------------------------------------------------------------------ the stream
    def _pad(self, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        length = len(sample["input_ids"])
        pad = self.context_length - length
        sample["attention_mask"] = np.concatenate([np.ones(length, np.int64), np.zeros(pad, np.int64)])
        if pad:
            fills = {"input_ids": self.processor.pad_token_id, "local_positions": -1, "segment_ids": -1}
            for key in (*TOKEN_KEYS, "segment_ids"):
                if key in sample:
                    sample[key] = np.concatenate([sample[key], np.full(pad, fills.get(key, 0), sample[key].dtype)])
        return sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        worker_id = worker.id if worker is not None else 0
        rank = int(os.environ.get("RANK", 0))
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker_id])
        readers = [self._row_reader(source, rng) for source in self.sources]
        while True:
            index = int(rng.choice(len(self.sources), p=self.probabilities))
            source = self.sources[index]
            if source.kind == "episodes":
                sample, prompted = self._episode_sample(source, readers[index], rng)
            else:
                sample, prompted = self._packed_sample(source, readers[index]), False
                sample["segment_ids"] = np.zeros(len(sample["input_ids"]), np.int64)
            sample = self._pad(sample)
            sample["task"] = source.name
            sample["prompted"] = prompted
            yield sample


def sources_from_directory(path: str, weights: Mapping[str, float] | None = None,
                           streaming: bool = False) -> list[Source]:
    """Sources for everything `collect` wrote in `path`: one per task, plus text, captions and VQA.

    `weights` maps a task name, a domain (e.g. "metaworld") or "text"/"captions"/"vqa" to a sampling weight
    (default 1 for each source). With `streaming=True` each dataset is read as an `IterableDataset`.
    """
    import json

    from datasets import load_from_disk

    weights = dict(weights or {})
    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)

    def load(sub):
        dataset = load_from_disk(os.path.join(path, sub))
        return dataset.to_iterable_dataset() if streaming else dataset

    sources = []
    for task, info in manifest["tasks"].items():
        weight = weights.get(task, weights.get(info["domain"], 1.0))
        sources.append(Source(task, load(os.path.join("episodes", task)), weight, "episodes"))
    for kind in ("text", "captions", "vqa"):
        if os.path.isdir(os.path.join(path, kind)) and weights.get(kind, 1.0) > 0:
            sources.append(Source(kind, load(kind), weights.get(kind, 1.0), "text"))
    return sources
