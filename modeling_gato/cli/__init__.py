"""The top: `python -m modeling_gato` / `gato` commands (`commands`) and the end-to-end demo (`demo`)."""

from .commands import main

__all__ = ["main"]
