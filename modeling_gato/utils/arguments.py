"""Command-line arguments checked before any work starts: each bad one ends the command with one line naming it.

Used as argparse `type=` functions (argparse reports `argument --flag: <message>`), and by `TrainConfig.check` for
`train`'s settings, which may also come from a file or from Python.
"""

from __future__ import annotations

import argparse
import math
import os
import re

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`prog: error: message (see --help)`), without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str, kind: type, low: float, strict: bool, high: float | None = None):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if (value <= low if strict else value < low) or (high is not None and value > high):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        if high is not None:
            bound = f"in [{low:g}, {high:g}]"
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    """A count, steps or size: an integer >= 1."""
    return _number(text, int, 1, strict=False)


def non_negative_int(text: str) -> int:
    """A seed, or a count where 0 means none: an integer >= 0."""
    return _number(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    """Minutes or a learning rate: a finite number > 0."""
    return _number(text, float, 0, strict=True)


def non_negative_float(text: str) -> float:
    """A temperature: a finite number >= 0."""
    return _number(text, float, 0, strict=False)


def data_directory(text: str) -> str:
    """A directory written by `collect` or a converter (it holds `manifest.json`)."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text}")
    if not os.path.isfile(os.path.join(text, "manifest.json")):
        raise argparse.ArgumentTypeError(f"{text} has no manifest.json; expected a directory written by "
                                         "`python -m modeling_gato collect` or a converter in conversion/")
    return text


def model_directory(text: str, allow_hub: bool = True) -> str:
    """A saved model directory (config.json and weights), or, when no such path exists, a Hub id `org/name`."""
    if os.path.isdir(text):
        if not os.path.isfile(os.path.join(text, "config.json")):
            raise argparse.ArgumentTypeError(f"{text} has no config.json; expected a directory written by "
                                             "save_pretrained or `train`")
        if not any(os.path.isfile(os.path.join(text, name)) for name in WEIGHT_FILES):
            raise argparse.ArgumentTypeError(f"{text} has no weights (expected one of {', '.join(WEIGHT_FILES)}); "
                                             "a checkpoint of `train` is in <output-dir>/checkpoint-N")
        return text
    if os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text} is not a directory; expected a saved model directory")
    if allow_hub and HUB_ID.match(text):
        return text  # a Hub repository id: from_pretrained resolves it
    raise argparse.ArgumentTypeError(f"no such model directory: {text}" + (" (nor a Hub id org/name)" if allow_hub
                                                                          else ""))


def local_model_directory(text: str) -> str:
    """A saved model directory on this machine (not a Hub id)."""
    return model_directory(text, allow_hub=False)
