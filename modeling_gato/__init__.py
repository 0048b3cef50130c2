"""modeling_gato: a Hugging Face-native implementation of DeepMind's Gato (Reed et al., 2022)."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoProcessor,
)

from . import pipelines  # noqa: F401  (registers the "gato-agent" and "gato-image-to-text" pipelines)
from .configuration_gato import GatoConfig
from .data.collator import GatoDataCollator
from .image_processing_gato import GatoImageProcessor
from .modeling_gato import GatoForCausalModeling, GatoModel, GatoPreTrainedModel
from .processing_gato import GatoDiscretizer, GatoProcessor

__version__ = "0.1.0"

# Remote code: `save_pretrained` writes `auto_map` and copies the shipped files, so a saved directory loads with
# `trust_remote_code=True` where this package is not installed.
GatoConfig.register_for_auto_class()
GatoForCausalModeling.register_for_auto_class("AutoModelForCausalLM")
GatoImageProcessor.register_for_auto_class("AutoImageProcessor")
GatoProcessor.register_for_auto_class("AutoProcessor")

# In-process: the Auto classes know "gato" once this package is imported.
AutoConfig.register("gato", GatoConfig, exist_ok=True)
AutoModel.register(GatoConfig, GatoForCausalModeling, exist_ok=True)
AutoModelForCausalLM.register(GatoConfig, GatoForCausalModeling, exist_ok=True)
AutoImageProcessor.register(GatoConfig, slow_image_processor_class=GatoImageProcessor, exist_ok=True)
AutoProcessor.register(GatoConfig, GatoProcessor, exist_ok=True)

__all__ = [
    "GatoConfig",
    "GatoDataCollator",
    "GatoDiscretizer",
    "GatoForCausalModeling",
    "GatoImageProcessor",
    "GatoModel",
    "GatoPreTrainedModel",
    "GatoProcessor",
]
