"""Small shared builders for the tests."""

import numpy as np

from modeling_gato import GatoConfig


def load_benchmark(*parts):
    """A script under `benchmarks/` (e.g. `load_benchmark("device_run", "combine.py")`), imported as a module:
    the scripts are not a package."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", *parts)
    spec = importlib.util.spec_from_file_location(os.path.splitext(parts[-1])[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_acting_model(directory):
    """A tiny model whose actions vary with its input (initializer range 0.5, seed 0), saved with a processor into
    `directory`, as the evaluation tests play it; returns the model."""
    import torch

    from modeling_gato import GatoForCausalModeling, GatoProcessor

    torch.manual_seed(0)
    model = GatoForCausalModeling(tiny_config(initializer_range=0.5, max_position_embeddings=512)).eval()
    model.save_pretrained(directory)
    GatoProcessor().save_pretrained(directory)
    return model


def tiny_config(**overrides) -> GatoConfig:
    """A model small enough for CPU tests, with the paper's token layout (vocab 33025)."""
    sizes = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        head_dim=16,
        intermediate_size=128,
        max_position_embeddings=256,
        patch_embedding_channels=32,
    )
    return GatoConfig(**{**sizes, **overrides})


def make_episode(num_steps: int = 2, seed: int = 0, image_size=(32, 48)) -> dict:
    """An episode with every observation modality and a continuous action."""
    rng = np.random.default_rng(seed)
    return {
        "text_observations": ["go to the red ball"] * num_steps,
        "image_observations": [rng.integers(0, 256, size=(*image_size, 3), dtype=np.uint8) for _ in range(num_steps)],
        "discrete_observations": rng.integers(0, 1024, size=(num_steps, 3)).tolist(),
        "continuous_observations": rng.normal(0, 5, size=(num_steps, 4)).tolist(),
        "continuous_actions": rng.uniform(-1, 1, size=(num_steps, 2)).tolist(),
        "task": "test",
    }


# Python source that makes `import modeling_gato` fail in a child process, and checks that it does (remote-code,
# pipeline and snippet tests).
HIDE_MODELING_GATO = """
import importlib.abc, sys

class RefuseGato(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "modeling_gato" or name.startswith("modeling_gato."):
            raise ImportError("modeling_gato is hidden from this process")
        return None

sys.meta_path.insert(0, RefuseGato())
try:
    import modeling_gato  # noqa: F401
    raise SystemExit("modeling_gato should not be importable here")
except ImportError:
    pass
"""
