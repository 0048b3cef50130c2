import os
import subprocess
import sys

import pytest
import torch
from gato_testing import make_episode, tiny_config

from modeling_gato import GatoConfig, GatoForCausalModeling, GatoProcessor


@pytest.fixture(scope="session")
def processor() -> GatoProcessor:
    return GatoProcessor()


@pytest.fixture
def config() -> GatoConfig:
    return tiny_config()


@pytest.fixture
def model(config) -> GatoForCausalModeling:
    torch.manual_seed(0)
    return GatoForCausalModeling(config).eval()


@pytest.fixture
def episode() -> dict:
    return make_episode()


COLLECT_EPISODES = 3


@pytest.fixture(scope="session")
def expert_cache(tmp_path_factory) -> str:
    """Where the session's stable-baselines3 experts are trained once and cached (GATO_EXPERT_CACHE to reuse
    them between sessions)."""
    return os.environ.get("GATO_EXPERT_CACHE", str(tmp_path_factory.mktemp("experts")))


@pytest.fixture(scope="session")
def collected(tmp_path_factory, expert_cache):
    """A small real collection (every task, 3 expert episodes each), made once per test session."""
    for package in ("minigrid", "metaworld", "stable_baselines3"):
        pytest.importorskip(package)
    root = tmp_path_factory.mktemp("collect")
    cache = expert_cache
    output = root / "data"
    result = subprocess.run(
        [sys.executable, "-m", "modeling_gato", "collect", "--output-dir", str(output), "--episodes",
         str(COLLECT_EPISODES), "--score-episodes", "3", "--text-paragraphs", "40", "--captions-per-task", "8",
         "--cache-dir", cache],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return output, result.stdout
