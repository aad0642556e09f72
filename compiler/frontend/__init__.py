"""Compiler front end: GPT-2 models from Hugging Face checkpoints or built-in presets.

``load_model(src)`` is the entry point: a local checkpoint directory (``config.json`` +
``model.safetensors``) or a preset name (``gpt2``, ``gpt2-medium``, ..., ``gpt2-tiny``) gives a
:class:`GPT2Model` with FP16 weights under canonical Hugging Face names. dfx never downloads.
"""

from .gpt2 import (
    ACTIVATION,
    CheckpointError,
    FrontendError,
    GPT2Config,
    GPT2Model,
    ModelConfigError,
    WeightsError,
)
from .hf import load_checkpoint, read_config, save_checkpoint
from .presets import (
    PRESETS,
    Preset,
    PresetError,
    get_preset,
    list_presets,
    load_model,
    preset_model,
)

__all__ = [
    "ACTIVATION",
    "PRESETS",
    "CheckpointError",
    "FrontendError",
    "GPT2Config",
    "GPT2Model",
    "ModelConfigError",
    "Preset",
    "PresetError",
    "WeightsError",
    "get_preset",
    "list_presets",
    "load_checkpoint",
    "load_model",
    "preset_model",
    "read_config",
    "save_checkpoint",
]
