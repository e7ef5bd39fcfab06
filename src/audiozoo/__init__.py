"""audiozoo: pretrained audio models for PyTorch.

A model is a frontend (the checkpoint's exact preprocessing), a backbone (pretrained weights) and
a head (the task output), composed by :func:`create`::

    import audiozoo
    model = audiozoo.create("mn10", head="frame", num_classes=10, freeze=True)
    logits = model(waveform)  # (B, T', 10) at model.frame_hop seconds per frame
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from . import backbones, converters, frontends, heads  # noqa: F401  (registers the built-in parts)
from ._errors import (
    AudioTypeError,
    AudiozooError,
    CheckpointError,
    InvalidAudioError,
    PretrainedUnavailableError,
    RegistryError,
    UnknownNameError,
)
from ._factory import (
    create,
    list_backbones,
    list_frontends,
    list_heads,
    list_models,
    split_model_name,
)
from .backbones.base import Architecture, Backbone, Features, register_backbone
from .converters.base import Converter, Rule, register_converter
from .frontends.base import Frontend, register_frontend
from .heads.base import Head, register_head
from .model import AudioModel
from .optimize import optimize_for_inference
from .pretrained import PretrainedCfg

__all__ = [
    "Architecture",
    "AudioModel",
    "AudioTypeError",
    "AudiozooError",
    "Backbone",
    "CheckpointError",
    "Converter",
    "Features",
    "Frontend",
    "Head",
    "InvalidAudioError",
    "PretrainedCfg",
    "PretrainedUnavailableError",
    "RegistryError",
    "Rule",
    "UnknownNameError",
    "__version__",
    "create",
    "list_backbones",
    "list_frontends",
    "list_heads",
    "list_models",
    "optimize_for_inference",
    "register_backbone",
    "register_converter",
    "register_frontend",
    "register_head",
    "split_model_name",
]
