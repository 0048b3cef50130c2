"""One dataclass of settings per long job (`CollectConfig`, `TrainConfig`, `EvaluateConfig`): what the command line
builds and the Python API accepts, checked once before any work starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

T = TypeVar("T", bound="JobSettings")


class JobSettings:
    """Mixin for a settings dataclass: `with_settings` applies keyword overrides, naming any unknown one."""

    @classmethod
    def with_settings(cls: type[T], config: T | None, settings: Mapping[str, Any], job: str = "the job") -> T:
        """`config` (default: the defaults) with `settings` (field names) replaced; a TypeError names an unknown
        setting or a `config` of another type."""
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"config: expected {cls.__name__} (or keyword settings), got {type(config).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"{job} got unknown settings {unknown}; {cls.__name__} has {sorted(known)}.")
        return replace(config or cls(), **settings)
