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
