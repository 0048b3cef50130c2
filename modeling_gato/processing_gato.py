"""Gato's processor: text, images, discrete and continuous values -> one token stream, and back.

Token layout (paper section 2.1, `SPEC.md`):

- text: tokenizer ids in [0, 32000);
- discrete values (e.g. button presses): their integer value, in [0, 1024) (shared with text ids);
- continuous values: mu-law encoded to [-1, 1], 1024 uniform bins, shifted by 32000 -> [32000, 33024);
  continuous *actions* are already in [-1, 1] (Box bounds mapped there) and skip the mu-law;
- image patches: embedded directly by the model; their slot carries `pad_token_id` and `patch_mask=True`;
- an agent timestep is `[observation tokens] [separator] [action tokens]`, observations in the
  lexicographic order of their keys (`continuous_observations` < `discrete_observations` <
  `image_observations` < `rewards` < `text_observations`), actions likewise (`continuous_actions` <
  `discrete_actions`); an episode is its timesteps in order.

Every observation token of a timestep gets its index among that timestep's observation tokens
(`local_positions`, -1 elsewhere). Only text (outside observations) and action tokens are loss targets.

One unit per part of the layout, each usable alone; `GatoProcessor` builds them in `__init__` from its
settings and delegates to them:

- `GatoDiscretizer`: continuous values <-> ids (mu-law, uniform bins);
- `GatoEpisodeTokenizer`: an episode's columns (or one acting step's observation) -> its unpadded tokens;
- `GatoActionCodec`: an action of a gymnasium-style space <-> action ids, and the ids each action slot allows;
- `GatoBatchCollation`: unpadded samples -> one padded batch.

`GatoProcessor` itself keeps text and image + text samples, and `__call__`.

This file is shipped as remote code: it imports numpy, torch and transformers only.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerFast
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .image_processing_gato import GatoImageProcessor, _is_single_image

# Slot kinds, used while laying tokens out.
OBSERVATION, PATCH, SEPARATOR, ACTION, TEXT = 0, 1, 2, 3, 4

OBSERVATION_COLUMNS = (
    "continuous_observations",
    "discrete_observations",
    "image_observations",
    "rewards",
    "text_observations",
)  # lexicographic order
ACTION_COLUMNS = ("continuous_actions", "discrete_actions")  # lexicographic order
EPISODE_COLUMNS = OBSERVATION_COLUMNS + ACTION_COLUMNS

# Per-token arrays of an unpadded sample (`patches` and `patch_intervals` are per patch).
_TOKEN_KEYS = ("input_ids", "patch_mask", "local_positions", "action_mask", "loss_mask")


class GatoDiscretizer:
    r"""Mu-law companding and uniform binning of continuous values (paper section 2.1).

    `F(x) = sgn(x) * log(|x| * mu + 1) / log(M * mu + 1)`, clipped to [-1, 1], then
    `bin = floor((F(x) + 1) / 2 * num_bins)` (y = +1 goes to the last bin), `id = bin + offset`.
    Decoding takes the bin centre and inverts F, so `|F(decode(encode(x))) - clip(F(x))| <= 1 / num_bins`
    (half a bin: bins are `2 / num_bins` wide in [-1, 1]).

    Args:
        mu (`float`, defaults to 100): mu-law mu.
        m (`float`, defaults to 256): mu-law M.
        num_bins (`int`, defaults to 1024): uniform bins over [-1, 1].
        offset (`int`, defaults to 32000): id of bin 0.
    """

    def __init__(self, mu: float = 100.0, m: float = 256.0, num_bins: int = 1024, offset: int = 32000):
        if mu <= 0 or m <= 0:
            raise ValueError(f"mu={mu} and m={m} are invalid: expected positive numbers.")
        if int(num_bins) != num_bins or num_bins < 2:
            raise ValueError(f"num_bins={num_bins} is invalid: expected an integer >= 2.")
        if int(offset) != offset or offset < 0:
            raise ValueError(f"offset={offset} is invalid: expected a non-negative integer.")
        self.mu = float(mu)
        self.m = float(m)
        self.num_bins = int(num_bins)
        self.offset = int(offset)

    def __repr__(self) -> str:
        return f"GatoDiscretizer(mu={self.mu}, m={self.m}, num_bins={self.num_bins}, offset={self.offset})"

    def mu_law(self, x: np.ndarray) -> np.ndarray:
        """F(x), not clipped."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore"):  # |x| near the float64 limit: log(inf) = inf, clipped to 1 by encode
            return np.sign(x) * np.log(np.abs(x) * self.mu + 1.0) / np.log(self.m * self.mu + 1.0)

    def inverse_mu_law(self, y: np.ndarray) -> np.ndarray:
        """F^-1(y) for y in [-1, 1]."""
        y = np.asarray(y, dtype=np.float64)
        return np.sign(y) * (np.exp(np.abs(y) * np.log(self.m * self.mu + 1.0)) - 1.0) / self.mu

    def encode(self, x: Any, mu_law: bool = True, field: str = "continuous values") -> Any:
        """Map floats (any shape) to token ids in `[offset, offset + num_bins)`, same shape.

        With `mu_law=False` the values are taken to be in [-1, 1] already (continuous actions) and
        values outside are clipped. NaN or infinite values are an error. A torch tensor in gives a
        torch tensor out, anything else gives a numpy int64 array.
        """
        as_torch = _is_torch(x)
        values = _real_array(x, field).astype(np.float64)
        if not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))[0].tolist()
            raise ValueError(f"{field}: expected finite floats, got {values[tuple(bad)]} at index {bad}.")
        y = self.mu_law(values) if mu_law else values
        y = np.clip(y, -1.0, 1.0)
        bins = np.floor((y + 1) / 2 * self.num_bins)
        ids = np.clip(bins, 0, self.num_bins - 1).astype(np.int64) + self.offset
        return _like(ids, x) if as_torch else ids

    def decode(self, ids: Any, mu_law: bool = True, field: str = "continuous ids") -> Any:
        """Map token ids in `[offset, offset + num_bins)` back to floats (bin centres), same shape.

        Ids outside the range are an error. A torch tensor in gives a float32 torch tensor out, anything
        else a float64 numpy array.
        """
        as_torch = _is_torch(ids)
        array = _real_array(ids, field)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise ValueError(f"{field}: expected integer token ids, got dtype {array.dtype}.")
        array = array.astype(np.int64)
        bins = array - self.offset
        if array.size and (bins.min() < 0 or bins.max() >= self.num_bins):
            raise ValueError(
                f"{field}: expected ids in [{self.offset}, {self.offset + self.num_bins}), "
                f"got values in [{array.min()}, {array.max()}]."
            )
        y = (bins + 0.5) / self.num_bins * 2 - 1
        values = self.inverse_mu_law(y) if mu_law else y
        if as_torch:
            import torch

            return torch.as_tensor(values, dtype=torch.float32, device=ids.device)
        return values


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy view of `x`; torch tensors of dtypes numpy lacks (bfloat16) are widened to float32 first."""
    if _is_torch(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _real_array(x: Any, field: str) -> np.ndarray:
    """`x` as a numpy array of real numbers (complex values are an error: casting would drop the imaginary part)."""
    array = _to_numpy(x)
    if np.iscomplexobj(array):
        raise ValueError(f"{field}: expected real numbers, got complex values (dtype {array.dtype}).")
    return array


def _like(array: np.ndarray, reference: Any) -> Any:
    import torch

    return torch.as_tensor(array, device=reference.device)


class GatoEpisodeTokenizer:
    r"""An episode's SPEC columns -> its unpadded tokens, timestep by timestep: `[observations] [separator] [actions]`.

    Also the single pieces a timestep is made of: text, discrete and continuous values.

    Args:
        discretizer ([`GatoDiscretizer`]): continuous values -> ids.
        tokenizer ([`PreTrainedTokenizerFast`]): text observations -> ids; its `pad_token_id` (0 if none) fills patch slots.
        image_processor ([`GatoImageProcessor`]): image observations -> patches.
        separator_token_id (`int`, defaults to 33024): the '|' between observations and actions.
        num_discrete_values (`int`, defaults to 1024): discrete values must be in `[0, num_discrete_values)`.
        local_position_size (`int`, defaults to 512): a timestep has at most this many observation tokens.
        include_rewards (`bool`, defaults to `False`): put the reward of step t-1 into the observation of step t.
    """

    def __init__(
        self,
        discretizer: GatoDiscretizer,
        tokenizer: PreTrainedTokenizerFast,
        image_processor: GatoImageProcessor,
        separator_token_id: int = 33024,
        num_discrete_values: int = 1024,
        local_position_size: int = 512,
        include_rewards: bool = False,
    ):
        self.discretizer = discretizer
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.separator_token_id = separator_token_id
        self.num_discrete_values = num_discrete_values
        self.local_position_size = local_position_size
        self.include_rewards = include_rewards

    @property
    def pad_token_id(self) -> int:
        return _pad_token_id(self.tokenizer)

    # ------------------------------------------------------------------ single pieces
    def tokenize_text(self, text: str, field: str = "text") -> np.ndarray:
        """Tokenizer ids of `text` (no special tokens), int64."""
        if not isinstance(text, str):
            raise ValueError(f"{field}: expected a string, got {type(text).__name__}.")
        return np.asarray(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=np.int64)

    def tokenize_discrete(self, values: Any, field: str = "discrete values") -> np.ndarray:
        """Discrete values (any shape, flattened row-major) as ids; they must be integers in `[0, num_discrete_values)`."""
        return _discrete_ids(values, self.num_discrete_values, field)

    def tokenize_continuous(self, values: Any, mu_law: bool = True, field: str = "continuous values") -> np.ndarray:
        """Continuous values (any shape, flattened row-major) as ids in `[offset, offset + num_bins)` of the discretizer."""
        array = _flatten_nested(values, field).astype(np.float64)
        return self.discretizer.encode(array, mu_law=mu_law, field=field)

    # ------------------------------------------------------------------ episodes
    def tokenize_episode(
        self, episode: Mapping[str, Any], episode_index: int | None = None, _reward_lag: int = 1
    ) -> dict[str, np.ndarray]:
        """Lay out one episode (a `datasets` row with the SPEC columns) as unpadded numpy arrays.

        Returns a dict with `input_ids`, `patch_mask`, `local_positions`, `action_mask`, `loss_mask` (all
        `(num_tokens,)`), `patches` `(num_patches, 3, p, p)` and `patch_intervals` `(num_patches, 4)` in slot
        order, and `timestep_starts` `(num_timesteps,)`: the first token of each timestep (the sequence
        builder cuts only there).
        """
        where = "episode" if episode_index is None else f"episode {episode_index}"
        if not isinstance(episode, Mapping):
            raise ValueError(f"{where}: expected a mapping of SPEC columns, got {type(episode).__name__}.")
        columns = [c for c in EPISODE_COLUMNS if episode.get(c) is not None]
        if not any(c in columns for c in OBSERVATION_COLUMNS + ACTION_COLUMNS):
            raise ValueError(
                f"{where}: no episode columns found; expected some of {list(EPISODE_COLUMNS)}, got {sorted(episode)}."
            )
        lengths = {c: len(episode[c]) for c in columns}
        if "rewards" in lengths:
            lengths.pop("rewards")
        num_steps = max(lengths.values()) if lengths else 0
        if num_steps == 0:
            raise ValueError(f"{where}: the episode is empty (0 timesteps).")
        for column, length in lengths.items():
            if length != num_steps:
                raise ValueError(
                    f"{where}: column {column!r} has {length} timesteps, expected {num_steps} like {max(lengths, key=lengths.get)!r}."
                )
        rewards = episode.get("rewards") if self.include_rewards else None
        if rewards is not None and len(rewards) < num_steps - _reward_lag:
            raise ValueError(f"{where}: column 'rewards' has {len(rewards)} entries, expected {num_steps}.")

        # Vectorized encodes of the fixed-size columns, whole episode at once.
        encoded: dict[str, list[np.ndarray]] = {}
        for column in ("continuous_observations", "continuous_actions"):
            if column in columns:
                encoded[column] = self._encode_continuous_column(
                    episode[column], mu_law=(column == "continuous_observations"), where=f"{where}, {column}"
                )
        for column in ("discrete_observations", "discrete_actions"):
            if column in columns:
                encoded[column] = self._encode_discrete_column(episode[column], where=f"{where}, {column}")

        ids_parts, kind_parts, local_parts, patches, intervals, starts = [], [], [], [], [], []
        offset = 0
        for t in range(num_steps):
            step_ids, step_kinds = [], []
            for column in OBSERVATION_COLUMNS:
                if column == "rewards":
                    # The reward of step t-1 is observed at step t.
                    if rewards is not None and t >= _reward_lag:
                        value = self.tokenize_continuous([rewards[t - _reward_lag]], field=f"{where}, step {t}, rewards")
                        step_ids.append(value)
                        step_kinds.append(np.full(1, OBSERVATION, np.int8))
                    continue
                if column not in columns:
                    continue
                field = f"{where}, step {t}, {column}"
                if column == "image_observations":
                    for image in _sorted_values(episode[column][t]):
                        step_patches, step_intervals = self.image_processor.patchify(image, field=field)
                        patches.append(step_patches)
                        intervals.append(step_intervals)
                        step_ids.append(np.full(len(step_patches), self.pad_token_id, np.int64))
                        step_kinds.append(np.full(len(step_patches), PATCH, np.int8))
                elif column == "text_observations":
                    for text in _sorted_values(episode[column][t]):
                        ids = self.tokenize_text(text, field=field)
                        step_ids.append(ids)
                        step_kinds.append(np.full(len(ids), OBSERVATION, np.int8))
                else:
                    ids = encoded[column][t]
                    step_ids.append(ids)
                    step_kinds.append(np.full(len(ids), OBSERVATION, np.int8))
            num_obs = sum(len(i) for i in step_ids)
            if num_obs > self.local_position_size:
                raise ValueError(
                    f"{where}, step {t}: {num_obs} observation tokens, but local positions only go up to "
                    f"local_position_size={self.local_position_size}."
                )
            step_ids.append(np.array([self.separator_token_id], np.int64))
            step_kinds.append(np.array([SEPARATOR], np.int8))
            for column in ACTION_COLUMNS:
                if column in columns:
                    ids = encoded[column][t]
                    step_ids.append(ids)
                    step_kinds.append(np.full(len(ids), ACTION, np.int8))
            step_ids = np.concatenate(step_ids)
            locals_ = np.full(len(step_ids), -1, np.int64)
            locals_[:num_obs] = np.arange(num_obs)
            ids_parts.append(step_ids)
            kind_parts.append(np.concatenate(step_kinds))
            local_parts.append(locals_)
            starts.append(offset)
            offset += len(step_ids)

        sample = _sample(
            np.concatenate(ids_parts), np.concatenate(kind_parts), np.concatenate(local_parts), patches, intervals,
            self.image_processor.patch_size,
        )
        return {**sample, "timestep_starts": np.asarray(starts, dtype=np.int64)}

    def tokenize_observation(self, observation: Mapping[str, Any], reward: float | None = None) -> dict[str, np.ndarray]:
        """Tokens of one acting step's observation followed by the separator (the model then writes the action).

        `observation` uses the SPEC column names without the per-timestep list, e.g.
        `{"continuous_observations": obs_vector, "text_observations": mission}`. `reward` is the reward of the
        previous step; it enters the tokens only with `include_rewards=True`.
        """
        episode = {k: [v] for k, v in observation.items() if k in OBSERVATION_COLUMNS and k != "rewards"}
        if self.include_rewards and reward is not None:
            episode["rewards"] = [reward]
        return self.tokenize_episode(episode, _reward_lag=0)

    def _encode_continuous_column(self, column: Sequence[Any], mu_law: bool, where: str) -> list[np.ndarray]:
        try:
            matrix = np.asarray(column)
        except (ValueError, TypeError):
            matrix = None
        if matrix is not None and np.iscomplexobj(matrix):
            raise ValueError(f"{where}: expected real numbers, got complex values (dtype {matrix.dtype}).")
        try:
            matrix = np.asarray(column, dtype=np.float64) if matrix is not None else None
        except (ValueError, TypeError):
            matrix = None
        if matrix is not None and matrix.ndim >= 1 and matrix.dtype != object:
            matrix = matrix.reshape(len(column), -1)
            if not np.isfinite(matrix).all():
                step, index = np.argwhere(~np.isfinite(matrix))[0]
                raise ValueError(f"{where}: step {step} value {index} is {matrix[step, index]}; expected finite floats.")
            return list(self.discretizer.encode(matrix, mu_law=mu_law, field=where))
        # Ragged or nested (dict) values: per step.
        return [self.tokenize_continuous(v, mu_law=mu_law, field=f"{where}, step {t}") for t, v in enumerate(column)]

    def _encode_discrete_column(self, column: Sequence[Any], where: str) -> list[np.ndarray]:
        try:
            matrix = np.asarray(column)
        except (ValueError, TypeError):
            matrix = None
        if matrix is not None and matrix.dtype != object and matrix.ndim >= 1:
            flat = self.tokenize_discrete(matrix, field=where)
            return list(flat.reshape(len(column), -1))
        return [self.tokenize_discrete(v, field=f"{where}, step {t}") for t, v in enumerate(column)]


def _discrete_ids(values: Any, num_discrete_values: int, field: str) -> np.ndarray:
    """Discrete values (any shape, flattened row-major) as int64 ids; they must be integers in `[0, num_discrete_values)`."""
    array = _flatten_nested(values, field)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        if array.dtype == np.bool_:
            array = array.astype(np.int64)
        elif not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"{field}: expected integers in [0, {num_discrete_values}), got {array.tolist()[:8]}.")
    if array.min() < 0 or array.max() >= num_discrete_values:  # before the cast, which could wrap around
        raise ValueError(
            f"{field}: expected integers in [0, {num_discrete_values}), got values in [{array.min()}, {array.max()}]."
        )
    return array.astype(np.int64)


def _flatten_nested(values: Any, field: str) -> np.ndarray:
    """Flatten a value row-major; dict values are flattened in the lexicographic order of their keys."""
    if isinstance(values, Mapping):
        parts = [_flatten_nested(values[key], f"{field}[{key!r}]") for key in sorted(values)]
        return np.concatenate(parts) if parts else np.zeros(0)
    try:
        array = _to_numpy(values)
    except ValueError as error:
        raise ValueError(f"{field}: expected a number or a (nested) array of numbers: {error}") from None
    array = _real_array(array, field)
    if array.dtype == object:
        raise ValueError(f"{field}: expected numbers, got a ragged or non-numeric value {values!r:.80}.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{field}: expected numbers, got dtype {array.dtype}.")
    return array.reshape(-1)


def _sorted_values(value: Any) -> list[Any]:
    """A timestep's image or text, or several of them as a dict (taken in the lexicographic order of the keys)."""
    if isinstance(value, Mapping):
        return [value[key] for key in sorted(value)]
    return [value]


def _sample(
    ids: np.ndarray, kinds: np.ndarray, local_positions: np.ndarray, patches: list, intervals: list, patch_size: int
) -> dict[str, np.ndarray]:
    """An unpadded sample from its slots (ids, slot kinds, local positions) and the patches of its PATCH slots."""
    return {
        "input_ids": ids,
        "patch_mask": kinds == PATCH,
        "local_positions": local_positions,
        "action_mask": kinds == ACTION,
        "loss_mask": (kinds == ACTION) | (kinds == TEXT),
        "patches": np.concatenate(patches) if patches else np.zeros((0, 3, patch_size, patch_size), np.float32),
        "patch_intervals": np.concatenate(intervals) if intervals else np.zeros((0, 4), np.float32),
    }


def _pad_token_id(tokenizer: PreTrainedTokenizerFast) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


class GatoActionCodec:
    r"""Actions of a gymnasium-style space (duck-typed: `Discrete`, `MultiDiscrete`, `Box`) <-> action token ids.

    Args:
        discretizer ([`GatoDiscretizer`]): bins Box actions, mapped to [-1, 1] first (no mu-law).
        num_discrete_values (`int`, defaults to 1024): discrete actions (minus the space's `start`) must be below this.
    """

    def __init__(self, discretizer: GatoDiscretizer, num_discrete_values: int = 1024):
        self.discretizer = discretizer
        self.num_discrete_values = num_discrete_values

    def encode(self, action: Any, action_space: Any) -> np.ndarray:
        """An environment action as action token ids, for a gymnasium-style space (duck-typed).

        `Discrete(n)` / `MultiDiscrete(nvec)` -> the integer values (minus `start`); `Box(low, high)` -> each dimension
        mapped linearly from its bounds to [-1, 1] and binned uniformly (no mu-law).

        Box rules (the same in `decode`):

        - a finite value outside `[low, high]` is clipped to the bounds; NaN or infinite values are an error;
        - a dimension with an infinite bound (either side) is not rescaled: its value is taken to be in [-1, 1]
          already and clipped there (like `envs.tasks.action_to_column`);
        - a constant dimension (`low == high`) encodes to the middle bin whatever the value;
        - `low > high`, NaN bounds and `[inf, inf]` / `[-inf, -inf]` are an error; so is an action whose size is
          not the Box's.

        Discrete actions outside the space (`[start, start + n)` per dimension) are an error.
        """
        kind = _space_kind(action_space)
        if kind == "box":
            values = _real_array(action, "continuous_actions").astype(np.float64).reshape(-1)
            shape = tuple(action_space.shape)
            expected = int(np.prod(shape)) if shape else 1
            if values.size != expected:
                raise ValueError(f"continuous_actions: expected {expected} values for a Box{shape}, got {values.size}.")
            low, high = _box_bounds(action_space, values.size)
            if not np.isfinite(values).all():
                raise ValueError(f"continuous_actions: expected finite floats, got {values.tolist()}.")
            bounded = np.isfinite(low) & np.isfinite(high)
            inside = np.clip(values, low, high)
            with np.errstate(all="ignore"):
                span = high - low
                # bounds near the float64 limit: the same map through the half-width, which does not overflow
                normalized = np.where(
                    np.isfinite(span),
                    2 * (inside - low) / np.where(span > 0, span, 1.0) - 1,
                    (inside / 2 - low / 2) / (high / 2 - low / 2) * 2 - 1,
                )
            normalized = np.where(bounded, np.where(high > low, normalized, 0.0), values)
            return self.discretizer.encode(np.clip(normalized, -1, 1), mu_law=False, field="continuous_actions")
        values = _real_array(action, "discrete_actions").reshape(-1)
        _check_discrete_action(values, action_space, kind)
        return _discrete_ids(values - _discrete_start(action_space), self.num_discrete_values, "discrete_actions")

    def decode(self, action_ids: Any, action_space: Any) -> Any:
        """Action token ids back into an action of `action_space` (gymnasium-style, duck-typed).

        Continuous ids are mapped to bin centres in [-1, 1] and then to the Box bounds (float32, the Box's
        shape); discrete ids are checked against the space and returned as `int` (Discrete) or an int64 array
        (MultiDiscrete). Box rules as in `encode`: a dimension with an infinite bound gets the bin centre
        itself (in [-1, 1]), clipped into `[low, high]`; a constant dimension (`low == high`) gets `low`.
        """
        ids = np.asarray(action_ids.detach().cpu().numpy() if _is_torch(action_ids) else action_ids).reshape(-1)
        kind = _space_kind(action_space)
        if kind == "box":
            shape = tuple(action_space.shape)
            expected = int(np.prod(shape)) if shape else 1
            if ids.size != expected:
                raise ValueError(f"action ids: expected {expected} continuous ids for a Box{shape}, got {ids.size}.")
            low, high = _box_bounds(action_space, ids.size)
            values = self.discretizer.decode(ids, mu_law=False, field="continuous action ids")
            bounded = np.isfinite(low) & np.isfinite(high)
            with np.errstate(all="ignore"):
                span = high - low
                # bounds near the float64 limit: the same map through the half-width, which does not overflow
                halves = low / 2 + high / 2 + values * (high / 2 - low / 2)
                scaled = np.where(np.isfinite(span), low + (values + 1) / 2 * span, halves)
            scaled = np.clip(np.where(bounded, scaled, values), low, high)
            return scaled.reshape(shape).astype(getattr(action_space, "dtype", np.float32) or np.float32)
        start = _discrete_start(action_space)
        if kind == "discrete":
            if ids.size != 1:
                raise ValueError(f"action ids: expected 1 id for a Discrete space, got {ids.size}.")
            n = int(action_space.n)
            if not 0 <= ids[0] < n:
                raise ValueError(f"action ids: discrete action {ids[0]} is outside [0, {n}).")
            return int(ids[0] + start)
        nvec = np.asarray(action_space.nvec).reshape(-1)
        if ids.size != nvec.size:
            raise ValueError(f"action ids: expected {nvec.size} ids for MultiDiscrete{tuple(nvec)}, got {ids.size}.")
        if (ids < 0).any() or (ids >= nvec).any():
            raise ValueError(f"action ids: {ids.tolist()} outside MultiDiscrete bounds {nvec.tolist()}.")
        return (ids + start).reshape(np.asarray(action_space.nvec).shape).astype(np.int64)

    def token_ranges(self, action_space: Any) -> list[tuple[int, int]]:
        """For each action token slot, the half-open id range the model may sample from."""
        kind = _space_kind(action_space)
        if kind == "box":
            size = int(np.prod(action_space.shape)) if action_space.shape else 1
            return [(self.discretizer.offset, self.discretizer.offset + self.discretizer.num_bins)] * size
        if kind == "discrete":
            return [(0, int(action_space.n))]
        return [(0, int(n)) for n in np.asarray(action_space.nvec).reshape(-1)]


def _space_kind(space: Any) -> str:
    if hasattr(space, "nvec"):
        return "multi_discrete"
    if hasattr(space, "n"):
        return "discrete"
    if hasattr(space, "low") and hasattr(space, "high"):
        return "box"
    raise ValueError(
        f"action_space {space!r} is not supported: expected a Discrete, MultiDiscrete or Box space (gymnasium)."
    )


def _discrete_start(space: Any) -> Any:
    start = getattr(space, "start", 0)
    return np.asarray(start).reshape(-1) if np.ndim(start) else int(start)


def _box_bounds(space: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A Box's bounds, flattened to `size` values; NaN bounds, `low > high` and `[inf, inf]` are an error."""
    bounds = []
    for name in ("low", "high"):
        bound = np.asarray(getattr(space, name), dtype=np.float64).reshape(-1)
        if bound.size not in (1, size):
            raise ValueError(f"action_space: Box {name} has {bound.size} values, expected {size}.")
        bounds.append(np.broadcast_to(bound, (size,)))
    low, high = bounds
    if np.isnan(low).any() or np.isnan(high).any():
        raise ValueError(f"action_space: Box bounds must not be NaN, got low={low.tolist()}, high={high.tolist()}.")
    if (low > high).any():
        index = int(np.argmax(low > high))
        raise ValueError(f"action_space: Box low > high in dimension {index} ({low[index]} > {high[index]}).")
    if (low == np.inf).any() or (high == -np.inf).any():
        index = int(np.argmax((low == np.inf) | (high == -np.inf)))
        raise ValueError(f"action_space: Box dimension {index} has no finite value ([{low[index]}, {high[index]}]).")
    return low, high


def _check_discrete_action(values: np.ndarray, space: Any, kind: str) -> None:
    """A Discrete / MultiDiscrete action must have the space's size and lie in `[start, start + n)` per dimension."""
    if kind == "discrete":
        n = np.asarray([int(space.n)])
    else:
        n = np.asarray(space.nvec).reshape(-1)
    if values.size != n.size:
        raise ValueError(f"discrete_actions: expected {n.size} values for the action space, got {values.size}.")
    start = np.broadcast_to(np.asarray(_discrete_start(space)).reshape(-1), n.shape)
    if values.size and (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        with np.errstate(invalid="ignore"):
            outside = ~((values >= start) & (values < start + n))
        if outside.any():
            if kind == "discrete":
                expected = f"[{start[0]}, {start[0] + n[0]})"
            else:
                expected = f"[{start.tolist()}, {(start + n).tolist()}) per dimension"
            raise ValueError(f"discrete_actions: action {values.tolist()} is outside the space: expected integers in {expected}.")


class GatoBatchCollation:
    r"""Unpadded samples (`input_ids`, `patch_mask`, `local_positions`, `action_mask`, `loss_mask`, `patches`,
    `patch_intervals`) -> one padded batch.

    Args:
        pad_token_id (`int`, defaults to 0): fills the padding of `input_ids`.
        max_length (`int`, defaults to 1024): the model's context; longer samples are an error unless truncated.
    """

    def __init__(self, pad_token_id: int = 0, max_length: int = 1024):
        self.pad_token_id = pad_token_id
        self.max_length = max_length

    def collate(
        self,
        samples: list[Mapping[str, np.ndarray]],
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        padding_side: str = "right",
        max_length: int | None = None,
        truncation: bool = False,
        return_labels: bool = False,
    ) -> BatchFeature:
        """Pad unpadded samples (from `GatoEpisodeTokenizer.tokenize_episode`, `GatoProcessor.tokenize_sample` or
        `tokenize_image_text`) into one batch; samples longer than `max_length` are cut there with `truncation=True`.

        `return_labels=True` adds `labels`: `input_ids` where `loss_mask`, -100 elsewhere (what `Trainer` counts
        for `num_items_in_batch`).
        """
        max_length = self.max_length if max_length is None else max_length
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side={padding_side!r} is invalid: expected 'left' or 'right'.")
        samples = [dict(s) for s in samples]
        for index, sample in enumerate(samples):
            length = len(sample["input_ids"])
            if length > max_length:
                if not truncation:
                    raise ValueError(
                        f"sample {index} has {length} tokens, longer than the context max_length={max_length}; "
                        "pass truncation=True to keep the first max_length tokens, or split the episode."
                    )
                num_patches = int(sample["patch_mask"][:max_length].sum())
                for key in _TOKEN_KEYS:
                    sample[key] = sample[key][:max_length]
                sample["patches"] = sample["patches"][:num_patches]
                sample["patch_intervals"] = sample["patch_intervals"][:num_patches]
        lengths = [len(s["input_ids"]) for s in samples]
        if padding == "max_length":
            width = max_length
        elif padding in (True, "longest"):
            width = max(lengths)
        elif padding in (False, "do_not_pad"):
            if len(set(lengths)) != 1:
                raise ValueError(f"padding=False needs samples of one length, got lengths {lengths}.")
            width = lengths[0]
        else:
            raise ValueError(f"padding={padding!r} is invalid: expected True, 'longest', 'max_length' or False.")
        batch = len(samples)
        any_patches = any(len(s["patches"]) for s in samples)
        patch_shape = next((s["patches"].shape[1:] for s in samples if len(s["patches"])), None)
        out = {
            "input_ids": np.full((batch, width), self.pad_token_id, np.int64),
            "attention_mask": np.zeros((batch, width), np.int64),
            "loss_mask": np.zeros((batch, width), bool),
            "patch_mask": np.zeros((batch, width), bool),
            "local_positions": np.full((batch, width), -1, np.int64),
            "action_mask": np.zeros((batch, width), bool),
        }
        if any_patches:
            out["image_patches"] = np.zeros((batch, width, *patch_shape), np.float32)
            out["patch_intervals"] = np.zeros((batch, width, 4), np.float32)
        for row, (sample, length) in enumerate(zip(samples, lengths)):
            span = slice(0, length) if padding_side == "right" else slice(width - length, width)
            out["input_ids"][row, span] = sample["input_ids"]
            out["attention_mask"][row, span] = 1
            for key in ("loss_mask", "patch_mask", "local_positions", "action_mask"):
                out[key][row, span] = sample[key]
            if any_patches and len(sample["patches"]):
                slots = np.flatnonzero(sample["patch_mask"]) + span.start
                out["image_patches"][row, slots] = sample["patches"]
                out["patch_intervals"][row, slots] = sample["patch_intervals"]
        if return_labels:
            out["labels"] = np.where(out["loss_mask"], out["input_ids"], -100)
        return BatchFeature(out, tensor_type=return_tensors)


class GatoProcessor(ProcessorMixin):
    r"""Turns text, images and agent episodes into Gato's token stream, and action tokens back into actions.

    `GatoProcessor()` builds the default processor offline from what the package ships: the unigram
    tokenizer trained on Python's own documentation (`modeling_gato/assets/tokenizer`), a 16x16 patcher and
    the mu-law discretizer.

    Args:
        image_processor ([`GatoImageProcessor`], *optional*): the patcher.
        tokenizer ([`PreTrainedTokenizerFast`], *optional*): the text tokenizer; its ids must be < `continuous_offset`.
        mu, m, num_bins, continuous_offset: the discretizer ([`GatoDiscretizer`]).
        separator_token_id (`int`, defaults to 33024): the '|' between observations and actions.
        num_discrete_values (`int`, defaults to 1024): discrete values must be in `[0, num_discrete_values)`.
        local_position_size (`int`, defaults to 512): a timestep has at most this many observation tokens.
        max_length (`int`, defaults to 1024): the model's context; longer samples are an error unless truncated.
        include_rewards (`bool`, defaults to `False`): put the reward of step t-1 into the observation of step t
            (as a continuous value). Off, like the paper.

    From these it builds its units, which do the work and are not saved: `discretizer` ([`GatoDiscretizer`]),
    `episode_tokenizer` ([`GatoEpisodeTokenizer`]), `action_codec` ([`GatoActionCodec`]) and `collation`
    ([`GatoBatchCollation`]).
    """

    valid_processor_kwargs = None

    def __init__(
        self,
        image_processor: GatoImageProcessor | None = None,
        tokenizer: PreTrainedTokenizerFast | None = None,
        mu: float = 100.0,
        m: float = 256.0,
        num_bins: int = 1024,
        continuous_offset: int = 32000,
        separator_token_id: int = 33024,
        num_discrete_values: int = 1024,
        local_position_size: int = 512,
        max_length: int = 1024,
        include_rewards: bool = False,
        **kwargs,
    ):
        if image_processor is None:
            image_processor = GatoImageProcessor()
        if tokenizer is None:
            tokenizer = default_tokenizer()
        self.mu = mu
        self.m = m
        self.num_bins = num_bins
        self.continuous_offset = continuous_offset
        self.separator_token_id = separator_token_id
        self.num_discrete_values = num_discrete_values
        self.local_position_size = local_position_size
        self.max_length = max_length
        self.include_rewards = include_rewards
        self.discretizer = GatoDiscretizer(mu=mu, m=m, num_bins=num_bins, offset=continuous_offset)
        if separator_token_id < continuous_offset + num_bins and separator_token_id >= continuous_offset:
            raise ValueError(f"separator_token_id={separator_token_id} is invalid: it falls in the continuous range.")
        if len(tokenizer) > continuous_offset:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens: text ids must stay below continuous_offset={continuous_offset}."
            )
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, **kwargs)
        # The units: built from the settings above, never saved (they are not processor attributes).
        self.episode_tokenizer = GatoEpisodeTokenizer(
            self.discretizer,
            tokenizer,
            image_processor,
            separator_token_id=separator_token_id,
            num_discrete_values=num_discrete_values,
            local_position_size=local_position_size,
            include_rewards=include_rewards,
        )
        self.action_codec = GatoActionCodec(self.discretizer, num_discrete_values=num_discrete_values)
        self.collation = GatoBatchCollation(pad_token_id=self.pad_token_id, max_length=max_length)

    # ------------------------------------------------------------------ ids the model and the agent need
    @property
    def pad_token_id(self) -> int:
        return _pad_token_id(self.tokenizer)

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids",
            "attention_mask",
            "image_patches",
            "patch_mask",
            "patch_intervals",
            "local_positions",
            "action_mask",
            "loss_mask",
        ]

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        """The settings `save_pretrained` writes to `processor_config.json`, without the units."""
        # ProcessorMixin deep-copies `__dict__` and then keeps only the settings; the units hold the tokenizer,
        # which it would copy only to drop. A shallow copy without them gives the same dict, fast.
        settings = copy.copy(self)
        for unit in _UNITS:
            settings.__dict__.pop(unit, None)
        return super(GatoProcessor, settings).to_dict()

    # ------------------------------------------------------------------ single pieces and episodes: the episode tokenizer
    def tokenize_text(self, text: str, field: str = "text") -> np.ndarray:
        """Tokenizer ids of `text` (no special tokens), int64."""
        return self.episode_tokenizer.tokenize_text(text, field=field)

    def tokenize_discrete(self, values: Any, field: str = "discrete values") -> np.ndarray:
        """Discrete values (any shape, flattened row-major) as ids; they must be integers in `[0, num_discrete_values)`."""
        return self.episode_tokenizer.tokenize_discrete(values, field=field)

    def tokenize_continuous(self, values: Any, mu_law: bool = True, field: str = "continuous values") -> np.ndarray:
        """Continuous values (any shape, flattened row-major) as ids in `[continuous_offset, continuous_offset + num_bins)`."""
        return self.episode_tokenizer.tokenize_continuous(values, mu_law=mu_law, field=field)

    def tokenize_episode(
        self, episode: Mapping[str, Any], episode_index: int | None = None, _reward_lag: int = 1
    ) -> dict[str, np.ndarray]:
        """One episode (a `datasets` row with the SPEC columns) as unpadded numpy arrays: see
        [`GatoEpisodeTokenizer.tokenize_episode`]."""
        return self.episode_tokenizer.tokenize_episode(episode, episode_index=episode_index, _reward_lag=_reward_lag)

    def tokenize_observation(self, observation: Mapping[str, Any], reward: float | None = None) -> dict[str, np.ndarray]:
        """One acting step's observation tokens followed by the separator: see
        [`GatoEpisodeTokenizer.tokenize_observation`]."""
        return self.episode_tokenizer.tokenize_observation(observation, reward=reward)

    # ------------------------------------------------------------------ image + text
    def tokenize_image_text(
        self,
        image: Any | None,
        text: str | None,
        text_is_target: bool = True,
        field: str = "images",
        question: str | None = None,
        add_eos: bool = False,
    ) -> dict[str, np.ndarray]:
        """`[image patches][question tokens][text tokens]`.

        Patches and question tokens are observation tokens (local positions 0..n-1); the text (a caption or an
        answer) is the target. `add_eos` appends the tokenizer's end-of-sequence id to the text (training rows).
        """
        ids, kinds, patches, intervals = [], [], [], []
        if image is not None:
            step_patches, step_intervals = self.image_processor.patchify(image, field=field)
            patches.append(step_patches)
            intervals.append(step_intervals)
            ids.append(np.full(len(step_patches), self.pad_token_id, np.int64))
            kinds.append(np.full(len(step_patches), PATCH, np.int8))
        if question is not None:
            question_ids = self.tokenize_text(question, field="question")
            ids.append(question_ids)
            kinds.append(np.full(len(question_ids), OBSERVATION, np.int8))
        if text is not None:
            text_ids = self.tokenize_text(text)
            if add_eos and self.tokenizer.eos_token_id is not None:
                text_ids = np.append(text_ids, self.tokenizer.eos_token_id)
            ids.append(text_ids)
            kinds.append(np.full(len(text_ids), TEXT if text_is_target else OBSERVATION, np.int8))
        ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        kinds = np.concatenate(kinds) if kinds else np.zeros(0, np.int8)
        observation = (kinds == PATCH) | (kinds == OBSERVATION)
        local = np.where(observation, np.cumsum(observation) - 1, -1).astype(np.int64)
        if observation.sum() > self.local_position_size:
            raise ValueError(
                f"{field}: {observation.sum()} image tokens exceed local_position_size={self.local_position_size}."
            )
        return _sample(ids, kinds, local, patches, intervals, self.image_processor.patch_size)

    def tokenize_sample(self, row: Mapping[str, Any], index: int | None = None) -> dict[str, np.ndarray]:
        """One `datasets` row of any kind, unpadded: an episode (SPEC episode columns), a VQA row (`image`,
        `question`, `answer`), a caption row (`image`, `text`) or a text row (`text`). Text targets end with EOS."""
        where = "row" if index is None else f"row {index}"
        if any(row.get(c) is not None for c in OBSERVATION_COLUMNS + ACTION_COLUMNS):
            return self.tokenize_episode(row, episode_index=index)
        if row.get("answer") is not None:
            if row.get("image") is None or row.get("question") is None:
                raise ValueError(f"{where}: a VQA row needs 'image', 'question' and 'answer', got {sorted(row)}.")
            return self.tokenize_image_text(row["image"], row["answer"], question=row["question"], add_eos=True,
                                            field=f"{where}, image")
        if row.get("text") is not None:
            return self.tokenize_image_text(row.get("image"), row["text"], add_eos=True, field=f"{where}, image")
        raise ValueError(
            f"{where}: unknown row; expected episode columns {list(EPISODE_COLUMNS)}, "
            f"or 'text', 'image' + 'text', 'image' + 'question' + 'answer'; got {sorted(row)}."
        )

    # ------------------------------------------------------------------ the call
    def __call__(
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        episodes: Mapping[str, Any] | list[Mapping[str, Any]] | None = None,
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        padding_side: str = "right",
        max_length: int | None = None,
        truncation: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """Tokenize text, images (+ text), or episodes into a padded batch.

        - `processor(text=...)`: text tokens, all loss targets.
        - `processor(images=..., text=...)`: `[image patches][text]` per sample (captioning); `text` may be omitted.
        - `processor(episodes=...)`: one or more episode rows (SPEC columns).

        Returns a `BatchFeature` with `input_ids`, `attention_mask`, `loss_mask` (text and action tokens),
        `patch_mask`, `local_positions` (-1 where none), `action_mask`, and, when any image is present,
        `image_patches` `(batch, seq, 3, p, p)` (zeros off the patch slots) and `patch_intervals` `(batch, seq, 4)`.
        """
        if kwargs:
            unknown = set(kwargs) - {"add_special_tokens", "return_attention_mask"}
            if unknown:
                raise TypeError(f"GatoProcessor got unexpected keyword arguments: {sorted(unknown)}")
        if episodes is not None:
            if text is not None or images is not None:
                raise ValueError("Pass either episodes= or text=/images=, not both: episodes carry their own text and images.")
            if isinstance(episodes, Mapping):
                episodes = [episodes]
            samples = [self.tokenize_episode(e, episode_index=i) for i, e in enumerate(episodes)]
        elif images is not None:
            image_list = [images] if _is_single_image(images) else list(images)
            if text is None:
                text_list = [None] * len(image_list)
            else:
                text_list = [text] if isinstance(text, str) else list(text)
            if len(text_list) != len(image_list):
                raise ValueError(
                    f"images and text must have the same batch size: got {len(image_list)} images and {len(text_list)} texts."
                )
            samples = [
                self.tokenize_image_text(img, txt, field=f"images[{i}]")
                for i, (img, txt) in enumerate(zip(image_list, text_list))
            ]
        elif text is not None:
            text_list = [text] if isinstance(text, str) else list(text)
            if not text_list:
                raise ValueError("text: expected a string or a non-empty list of strings.")
            samples = [self.tokenize_image_text(None, t) for t in text_list]
        else:
            raise ValueError("Nothing to process: pass text=, images= (optionally with text=), or episodes=.")
        return self.collate(
            samples,
            return_tensors=return_tensors,
            padding=padding,
            padding_side=padding_side,
            max_length=max_length,
            truncation=truncation,
        )

    def collate(
        self,
        samples: list[Mapping[str, np.ndarray]],
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        padding_side: str = "right",
        max_length: int | None = None,
        truncation: bool = False,
        return_labels: bool = False,
    ) -> BatchFeature:
        """Pad unpadded samples (from `tokenize_sample`, `tokenize_episode`, `tokenize_image_text`) into one batch:
        see [`GatoBatchCollation.collate`]."""
        return self.collation.collate(
            samples,
            return_tensors=return_tensors,
            padding=padding,
            padding_side=padding_side,
            max_length=max_length,
            truncation=truncation,
            return_labels=return_labels,
        )

    # ------------------------------------------------------------------ actions: the action codec
    def encode_action(self, action: Any, action_space: Any) -> np.ndarray:
        """An environment action as action token ids: see [`GatoActionCodec.encode`]."""
        return self.action_codec.encode(action, action_space)

    def decode_action(self, action_ids: Any, action_space: Any) -> Any:
        """Action token ids back into an action of `action_space`: see [`GatoActionCodec.decode`]."""
        return self.action_codec.decode(action_ids, action_space)

    def action_token_ranges(self, action_space: Any) -> list[tuple[int, int]]:
        """For each action token slot, the half-open id range the model may sample from."""
        return self.action_codec.token_ranges(action_space)

    # ------------------------------------------------------------------ text decoding delegates to the tokenizer
    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


_UNITS = ("episode_tokenizer", "action_codec", "collation")


def default_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer shipped in `modeling_gato/assets/tokenizer` (trained offline, see `tokenizer_training.py`)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "tokenizer")
    if not os.path.isfile(os.path.join(path, "tokenizer.json")):
        raise FileNotFoundError(
            f"No default tokenizer at {path}. Install the modeling_gato package, or pass tokenizer= "
            "(e.g. GatoProcessor.from_pretrained(saved_dir))."
        )
    return PreTrainedTokenizerFast.from_pretrained(path)


__all__ = ["GatoProcessor", "GatoDiscretizer", "GatoEpisodeTokenizer", "GatoActionCodec", "GatoBatchCollation"]
