"""Non-parametric baselines: a 1-nearest-neighbour policy that plays the stored action of the closest training
observation of the task (the "1-NN" / VINN-style baseline of recent imitation-learning work).

Policies follow the protocol of `envs.experts.RandomPolicy` and `envs.experts.BabyAIExpert`: built for one
environment, `reset(env)` at each new episode, `policy(observation) -> environment action`, so
`collect.run_episode(env, policy, seed)` plays them.

Features (one vector per training timestep, computed from our SPEC columns):

- `continuous_observations`: standardized per dimension (training mean and standard deviation, the standard
  deviation floored at `std_floor` so a near-constant dimension cannot blow up);
- `discrete_observations`: per dimension, one-hot over the values seen in training when there are at most
  `max_one_hot` of them (an unseen value is all zeros), else standardized like a continuous value;
- `image_observations`: resized to `image_size` x `image_size` (box filter), pixels as floats in [0, 1];
- `text_observations`: not a distance: exact-match grouping. A query is compared only with training
  timesteps that have the same text (e.g. the same BabyAI mission) when there are any, else with all of them.

Modality weights: each block (continuous, discrete, image) is divided by the square root of its total variance
over the training set (the sum of its per-feature variances). The mean squared distance between two random
training observations is twice the total variance, so after scaling every block contributes the same (2) on
average, whatever its dimensionality: a 768-pixel image does not drown a 1-dimensional direction, nor does a
39-dimensional state vector. A block that is constant in training carries no information and gets weight 0.

Distance: Euclidean; exact 1-NN with numpy (`|q|^2 - 2 q.x + |x|^2` in float64, queries in chunks); ties go to
the earliest training timestep (data order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..envs.tasks import column_to_action, observation_to_columns

FEATURE_COLUMNS = ("continuous_observations", "discrete_observations", "image_observations")
ACTION_COLUMNS = ("continuous_actions", "discrete_actions")


def _rows(rows: Any) -> list[Mapping[str, Any]]:
    if hasattr(rows, "column_names"):  # a datasets.Dataset
        return [rows[i] for i in range(len(rows))]
    if isinstance(rows, Mapping):
        return [rows]
    return list(rows)


def _image(value: Any, size: int, where: str) -> np.ndarray:
    """One image (PIL, HWC / CHW / HW array; uint8 [0, 255] or float [0, 1]) -> `size*size*channels` floats in [0, 1]."""
    from PIL import Image

    if isinstance(value, Mapping):
        raise ValueError(f"{where}: several images per timestep are not supported by the nearest-neighbour features.")
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"{where}: expected an image (H, W), (H, W, C) or (C, H, W), got shape {array.shape}.")
    if np.issubdtype(array.dtype, np.floating):
        array = np.clip(np.round(array * 255.0), 0, 255)
    resized = Image.fromarray(array.astype(np.uint8)).resize((size, size), Image.BOX)
    return np.asarray(resized, dtype=np.float64).reshape(-1) / 255.0


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return " ".join(str(value[key]) for key in sorted(value))
    return str(value)


class NearestNeighbourIndex:
    """The training timesteps of one task as feature vectors, their texts and their stored actions.

    Build it with `from_episodes`; `nearest(steps)` gives the index of the closest training timestep of each query.
    """

    def __init__(self, columns: tuple[str, ...], action_column: str, actions: list[Any], features: np.ndarray,
                 texts: np.ndarray | None, statistics: dict[str, Any], image_size: int):
        self.columns = columns
        self.action_column = action_column
        self.actions = actions
        self.features = features
        self.texts = texts
        self.statistics = statistics
        self.image_size = image_size
        self._squared_norms = np.einsum("ij,ij->i", features, features)
        self._groups: dict[str, np.ndarray] = {}
        if texts is not None:
            order = np.argsort(texts, kind="stable")
            values, starts = np.unique(texts[order], return_index=True)
            for value, part in zip(values, np.split(order, starts[1:])):
                self._groups[str(value)] = np.sort(part)

    def __len__(self) -> int:
        return len(self.actions)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_episodes(cls, rows: Any, image_size: int = 16, std_floor: float = 1e-3,
                      max_one_hot: int = 32) -> NearestNeighbourIndex:
        """Every timestep of `rows` (a `datasets.Dataset` or a list of SPEC-column episode rows of one task)."""
        rows = _rows(rows)
        if not rows:
            raise ValueError("rows: expected at least one episode of the task, got none.")
        first = rows[0]
        action_columns = [c for c in ACTION_COLUMNS if first.get(c) is not None]
        if len(action_columns) != 1:
            raise ValueError(f"episode 0: expected exactly one action column of {list(ACTION_COLUMNS)}, got "
                             f"{action_columns or sorted(first)}.")
        action_column = action_columns[0]
        columns = tuple(c for c in FEATURE_COLUMNS + ("text_observations",) if first.get(c) is not None)
        if not columns:
            raise ValueError(f"episode 0: no observation column; expected some of "
                             f"{list(FEATURE_COLUMNS) + ['text_observations']}, got {sorted(first)}.")
        steps: dict[str, list] = {c: [] for c in columns}
        actions: list[Any] = []
        for index, row in enumerate(rows):
            length = 0 if row.get(action_column) is None else len(row[action_column])
            if length == 0:
                raise ValueError(f"episode {index}: column {action_column!r} is missing or empty.")
            for column in columns:
                values = row.get(column)
                if values is None or len(values) != length:
                    raise ValueError(f"episode {index}: column {column!r} has "
                                     f"{'no' if values is None else len(values)} timesteps, expected {length} "
                                     f"like {action_column!r}.")
                steps[column].extend(values)
            actions.extend(row[action_column])
        statistics: dict[str, Any] = {}
        blocks = []
        if "continuous_observations" in columns:
            matrix = _matrix(steps["continuous_observations"], np.float64, "continuous_observations")
            std = np.maximum(matrix.std(0), std_floor)
            statistics["continuous"] = {"mean": matrix.mean(0), "std": std}
            blocks.append(("continuous", (matrix - matrix.mean(0)) / std))
        if "discrete_observations" in columns:
            matrix = _matrix(steps["discrete_observations"], np.int64, "discrete_observations")
            encoders = []
            for dimension in range(matrix.shape[1]):
                values = np.unique(matrix[:, dimension])
                if len(values) <= max_one_hot:
                    encoders.append(("one_hot", values))
                else:
                    column = matrix[:, dimension].astype(np.float64)
                    encoders.append(("scaled", (column.mean(), max(column.std(), std_floor))))
            statistics["discrete"] = encoders
            blocks.append(("discrete", _encode_discrete(matrix, encoders)))
        if "image_observations" in columns:
            images = [_image(v, image_size, f"image_observations, timestep {t}")
                      for t, v in enumerate(steps["image_observations"])]
            if len({len(i) for i in images}) != 1:
                raise ValueError("image_observations: every image must have the same number of channels.")
            blocks.append(("image", np.stack(images)))
        scales = {}
        for name, block in blocks:
            total_variance = float(block.var(0).sum())
            scales[name] = 1.0 / np.sqrt(total_variance) if total_variance > 0 else 0.0
        statistics["scales"] = scales
        features = np.concatenate([block * scales[name] for name, block in blocks], axis=1) if blocks else \
            np.zeros((len(actions), 0))
        texts = np.asarray([_text(v) for v in steps["text_observations"]]) if "text_observations" in columns else None
        return cls(columns, action_column, actions, features, texts, statistics, image_size)

    # ------------------------------------------------------------------ queries
    def transform(self, steps: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """Feature vectors `(n, features)` of `n` timesteps given as SPEC columns of per-timestep values."""
        missing = [c for c in self.columns if c not in steps]
        if missing:
            raise ValueError(f"observation: missing columns {missing}; the training data have {list(self.columns)}.")
        count = len(steps[self.columns[0]])
        blocks = []
        if "continuous_observations" in self.columns:
            matrix = _matrix(steps["continuous_observations"], np.float64, "continuous_observations")
            stats = self.statistics["continuous"]
            if matrix.shape[1] != len(stats["mean"]):
                raise ValueError(f"continuous_observations: expected {len(stats['mean'])} values per timestep, got "
                                 f"{matrix.shape[1]}.")
            blocks.append((matrix - stats["mean"]) / stats["std"] * self.statistics["scales"]["continuous"])
        if "discrete_observations" in self.columns:
            matrix = _matrix(steps["discrete_observations"], np.int64, "discrete_observations")
            encoders = self.statistics["discrete"]
            if matrix.shape[1] != len(encoders):
                raise ValueError(f"discrete_observations: expected {len(encoders)} values per timestep, got "
                                 f"{matrix.shape[1]}.")
            blocks.append(_encode_discrete(matrix, encoders) * self.statistics["scales"]["discrete"])
        if "image_observations" in self.columns:
            images = np.stack([_image(v, self.image_size, "image_observations") for v in steps["image_observations"]])
            expected = self.features.shape[1] - sum(b.shape[1] for b in blocks)
            if images.shape[1] != expected:
                raise ValueError(f"image_observations: {images.shape[1] // self.image_size**2} channels, but the "
                                 f"training images have {expected // self.image_size**2}.")
            blocks.append(images * self.statistics["scales"]["image"])
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((count, 0))

    def nearest(self, steps: Mapping[str, Sequence[Any]], chunk_size: int = 256) -> np.ndarray:
        """Index of the closest training timestep of each queried timestep (SPEC columns of per-timestep values)."""
        queries = self.transform(steps)
        texts = [_text(v) for v in steps["text_observations"]] if self.texts is not None else None
        answer = np.empty(len(queries), np.int64)
        everyone = np.arange(len(self.features))
        # queries that share a candidate set (a text group, or everyone) are done together, in chunks
        candidate_sets: dict[str | None, list[int]] = {}
        for number in range(len(queries)):
            key = texts[number] if texts is not None and texts[number] in self._groups else None
            candidate_sets.setdefault(key, []).append(number)
        for key, numbers in candidate_sets.items():
            candidates = everyone if key is None else self._groups[key]
            points, norms = self.features[candidates], self._squared_norms[candidates]
            for begin in range(0, len(numbers), chunk_size):
                chunk = np.asarray(numbers[begin : begin + chunk_size])
                query = queries[chunk]
                distances = np.einsum("ij,ij->i", query, query)[:, None] - 2.0 * query @ points.T + norms[None, :]
                answer[chunk] = candidates[np.argmin(distances, axis=1)]
        return answer


def _matrix(values: Sequence[Any], dtype, column: str) -> np.ndarray:
    try:
        matrix = np.asarray(values, dtype=dtype)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{column}: every timestep must have the same number of values ({error}).") from None
    return matrix.reshape(len(values), -1)


def _encode_discrete(matrix: np.ndarray, encoders: list[tuple[str, Any]]) -> np.ndarray:
    parts = []
    for dimension, (kind, parameters) in enumerate(encoders):
        column = matrix[:, dimension]
        if kind == "one_hot":
            parts.append((column[:, None] == parameters[None, :]).astype(np.float64))
        else:
            mean, std = parameters
            parts.append(((column - mean) / std)[:, None])
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(matrix), 0))


class NearestNeighbourPolicy:
    """Plays the stored action of the closest training observation of the task, mapped to the environment.

    Args:
        index: the task's training timesteps (`NearestNeighbourIndex.from_episodes`).
        observation_space, action_space: the environment's spaces (gymnasium); observations go to SPEC columns with
            `envs.tasks.observation_to_columns`, stored actions back with `envs.tasks.column_to_action`.
    """

    def __init__(self, index: NearestNeighbourIndex, observation_space: Any, action_space: Any):
        kind = type(action_space).__name__
        expected = "continuous_actions" if kind == "Box" else "discrete_actions"
        if index.action_column != expected:
            raise ValueError(f"the training data have {index.action_column!r}, but a {kind} action space needs "
                             f"{expected!r}.")
        self.index = index
        self.observation_space = observation_space
        self.action_space = action_space
        self.last_index: int | None = None  # the training timestep whose action was played last

    @classmethod
    def from_episodes(cls, rows: Any, observation_space: Any, action_space: Any, **options) -> NearestNeighbourPolicy:
        """Build from a task's episode rows; `options` go to `NearestNeighbourIndex.from_episodes`."""
        return cls(NearestNeighbourIndex.from_episodes(rows, **options), observation_space, action_space)

    def reset(self, env) -> None:
        self.last_index = None

    def __call__(self, observation: Any) -> Any:
        columns = observation_to_columns(observation, self.observation_space)
        self.last_index = int(self.index.nearest({c: [v] for c, v in columns.items()})[0])
        return column_to_action(self.index.actions[self.last_index], self.action_space)


def nearest_neighbour_factory(rows: Any, **options) -> Callable[[Any], NearestNeighbourPolicy]:
    """`factory(env) -> NearestNeighbourPolicy` for that environment's spaces; the index is built once, here."""
    index = NearestNeighbourIndex.from_episodes(rows, **options)

    def factory(env) -> NearestNeighbourPolicy:
        return NearestNeighbourPolicy(index, env.observation_space, env.action_space)

    return factory
