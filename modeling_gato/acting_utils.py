"""What the agent needs besides the model and processor, importing numpy only: it ships with a saved model.

`model.save_pretrained(d)` copies the pipeline code (`pipelines.py`), the agent (`agent.py`) and this module next to
the model's own files, so `pipeline("gato-agent", model=d, trust_remote_code=True)` acts where this package is not
installed. The shipped files must import only torch, transformers, numpy and Pillow (gymnasium is optional: spaces are
duck-typed by their class name) and only shipped modules of this package.

- Tokenized samples (the processor's `episodes` output as numpy arrays, one row): `TOKEN_KEYS`, `slice_sample`,
  `concatenate_samples` (training's sequence builder imports them from here).
- Gymnasium observations as SPEC observation columns: `observation_to_columns`, `column_of_space` (`envs.tasks`
  re-exports them for collection: one implementation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

TOKEN_KEYS = ("input_ids", "patch_mask", "local_positions", "action_mask", "loss_mask")


# ---------------------------------------------------------------------------- tokenized samples
def slice_sample(sample: Mapping[str, np.ndarray], start: int, end: int) -> dict[str, np.ndarray]:
    """Tokens [start, end) of a tokenized sample, with the patches that fall inside."""
    first_patch = int(sample["patch_mask"][:start].sum())
    num_patches = int(sample["patch_mask"][start:end].sum())
    out = {key: sample[key][start:end] for key in TOKEN_KEYS}
    out["patches"] = sample["patches"][first_patch : first_patch + num_patches]
    out["patch_intervals"] = sample["patch_intervals"][first_patch : first_patch + num_patches]
    return out


def concatenate_samples(parts: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Tokenized samples one after the other (tokens and patches)."""
    out = {key: np.concatenate([p[key] for p in parts]) for key in TOKEN_KEYS}
    out["patches"] = np.concatenate([p["patches"] for p in parts])
    out["patch_intervals"] = np.concatenate([p["patch_intervals"] for p in parts])
    return out


# ---------------------------------------------------------------------------- gymnasium observations
def _space_name(space: Any) -> str:
    return type(space).__name__


def column_of_space(space: Any, key: str = "observation") -> str:
    """Which SPEC column a (leaf) observation space goes to."""
    name = _space_name(space)
    if name in ("Discrete", "MultiDiscrete", "MultiBinary"):
        return "discrete_observations"
    if name == "Text" or name.endswith("MissionSpace"):  # BabyAI uses BabyAIMissionSpace
        return "text_observations"
    if name == "Box":
        if np.dtype(space.dtype) == np.uint8 and len(space.shape) == 3:
            return "image_observations"
        return "continuous_observations"
    raise ValueError(f"observation space {key!r} of type {name} is not supported: expected Box, Discrete, "
                     "MultiDiscrete, MultiBinary, Text or a Dict of those.")


def observation_to_columns(observation: Any, space: Any) -> dict[str, Any]:
    """A gymnasium observation as SPEC observation columns (one timestep).

    Dict observations are walked in the lexicographic order of their keys; several keys that map to the same
    column are concatenated (numbers), joined (text) or refused (two images).
    """
    leaves: list[tuple[str, Any, Any]] = []

    def walk(value, sub_space, key):
        if _space_name(sub_space) == "Dict":
            for child in sorted(sub_space.spaces):
                walk(value[child], sub_space.spaces[child], f"{key}.{child}" if key else child)
        else:
            leaves.append((key or "observation", value, sub_space))

    walk(observation, space, "")
    columns: dict[str, Any] = {}
    for key, value, sub_space in leaves:
        column = column_of_space(sub_space, key)
        if column == "image_observations":
            if column in columns:
                raise ValueError(f"observation {key!r}: only one image per timestep is supported.")
            columns[column] = np.asarray(value, dtype=np.uint8)
        elif column == "text_observations":
            columns[column] = f"{columns[column]} {value}" if column in columns else str(value)
        elif column == "discrete_observations":
            start = np.asarray(getattr(sub_space, "start", 0)).reshape(-1)
            values = (np.asarray(value).reshape(-1) - start).astype(np.int64)
            columns[column] = np.concatenate([columns[column], values]) if column in columns else values
        else:
            values = np.asarray(value, dtype=np.float32).reshape(-1)
            columns[column] = np.concatenate([columns[column], values]) if column in columns else values
    return columns
