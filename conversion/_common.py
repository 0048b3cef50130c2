"""Shared pieces of the converters: atomic output directories, streaming episode writing, safe weight loading."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class PickleRefusedError(ValueError):
    """A pickled checkpoint was given without an explicit `allow_pickle=True` / `--allow-pickle`."""


# ---------------------------------------------------------------------------- atomic output
from modeling_gato.utils.jobs import atomic_directory  # noqa: E402,F401  (one implementation, shared with collect)


def write_rows(rows: Callable[[], Iterator[dict]], features, path: str, scratch: str) -> int:
    """Write a generator of rows to a `save_to_disk` dataset at `path`, streaming (Arrow batches on disk)."""
    from datasets import Dataset

    cache = os.path.join(scratch, f".cache-{uuid.uuid4().hex[:8]}")
    try:
        dataset = Dataset.from_generator(rows, features=features, cache_dir=cache, fingerprint=uuid.uuid4().hex)
        dataset.save_to_disk(path)
        count = len(dataset)
        del dataset
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return count


def write_manifest(directory: str, manifest: dict[str, Any], scores: dict[str, Any] | None) -> None:
    manifest.setdefault("format", "modeling_gato/episodes-v1")
    manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if scores:
        manifest["scores"] = scores
        with open(os.path.join(directory, "scores.json"), "w") as f:
            json.dump(scores, f, indent=2)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


def score_entry(domain: str, expert: float | None, random: float | None, source: str, **extra) -> dict[str, Any]:
    """One task of `scores.json` in `collect`'s shape (evaluate reads `expert.mean_return`, `random.mean_return`)."""
    def stats(value):
        return None if value is None else {"mean_return": float(value), "success_rate": None}

    return {"domain": domain, "expert": stats(expert), "random": stats(random), "source": source, **extra}


def episode_features(columns: dict[str, str]):
    """Arrow features of our episode columns; `columns` maps a column to its kind (see `collect._episode_features`)."""
    from datasets import Features, Image, List, Value

    features = {"task": Value("string")}
    kinds = {
        "text_observations": List(Value("string")),
        "image_observations": List(Image()),
        "discrete_observations": List(List(Value("int64"))),
        "continuous_observations": List(List(Value("float32"))),
        "continuous_actions": List(List(Value("float32"))),
    }
    for column in ("text_observations", "image_observations", "discrete_observations", "continuous_observations",
                   "discrete_actions", "continuous_actions"):
        if column not in columns:
            continue
        if column == "discrete_actions":
            scalar = columns[column] == "scalar"
            features[column] = List(Value("int64") if scalar else List(Value("int64")))
        else:
            features[column] = kinds[column]
    features["rewards"] = List(Value("float32"))
    return Features(features)


# ---------------------------------------------------------------------------- safe weight loading
def is_pickle_path(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


def load_state_dict(path: str, allow_pickle: bool = False) -> dict[str, Any]:
    """Tensors of a checkpoint file: safetensors always; pickled files (.bin/.pt/...) only with `allow_pickle`,
    and then through `torch.load(weights_only=True)` (no arbitrary objects are unpickled)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    if is_pickle_path(path):
        if not allow_pickle:
            raise PickleRefusedError(
                f"{path} is a pickled checkpoint: unpickling can run arbitrary code, so it is refused. If you trust "
                "its source, pass --allow-pickle (allow_pickle=True): it is then read with "
                "torch.load(weights_only=True), which loads tensors only."
            )
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}.")
        return state
    raise ValueError(f"{path}: unknown checkpoint format; expected .safetensors, .h5 or a pickled {PICKLE_SUFFIXES}.")


def add_common_arguments(parser) -> None:
    parser.add_argument("--output-dir", required=True, help="directory to write (written beside, then renamed)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output-dir if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
