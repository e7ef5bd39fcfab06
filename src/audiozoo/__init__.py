"""audiozoo: pretrained audio models for PyTorch.

A model is a frontend (the checkpoint's exact preprocessing), a backbone (pretrained weights) and
a head (the task output), composed by :func:`create`::

    import audiozoo
    model = audiozoo.create("mn10", head="frame", num_classes=10, freeze=True)
    logits = model(waveform)  # (B, T', 10) at model.frame_hop seconds per frame
"""

from __future__ import annotations

from . import (  # noqa: F401  (registers the built-in parts)  # noqa: F401  (public modules)
    backbones,
    checkpoints,
    converters,
    download,
    format,
    frontends,
    heads,
    labels,
    names,
    stats,
)
from ._errors import (
    AudioTypeError,
    AudiozooError,
    CheckpointError,
    ConfigurationError,
    InvalidAudioError,
    PretrainedUnavailableError,
    RegistryError,
    UnknownNameError,
)
from ._factory import build_frontend, create
from ._version import __version__
from ._zoo import (
    get_architecture,
    get_converter,
    get_frontend_class,
    get_head_class,
    get_pretrained_cfg,
    list_backbones,
    list_frontends,
    list_heads,
    list_label_sets,
    list_models,
)
from .backbones.base import Architecture, Backbone, Features, register_backbone
from .converters.base import Converter, Rule, register_converter
from .frontends.base import Frontend, register_frontend
from .heads.base import Head, register_head
from .labels import LabelSet, get_label_set
from .model import AudioModel
from .names import ModelName, parse_model_name, split_model_name
from .optimize import optimize_for_inference
from .pretrained import PretrainedCfg

__all__ = [
    "Architecture",
    "AudioModel",
    "AudioTypeError",
    "AudiozooError",
    "Backbone",
    "CheckpointError",
    "ConfigurationError",
    "Converter",
    "Features",
    "Frontend",
    "Head",
    "InvalidAudioError",
    "LabelSet",
    "ModelName",
    "PretrainedCfg",
    "PretrainedUnavailableError",
    "RegistryError",
    "Rule",
    "UnknownNameError",
    "__version__",
    "build_frontend",
    "create",
    "get_architecture",
    "get_converter",
    "get_frontend_class",
    "get_head_class",
    "get_label_set",
    "get_pretrained_cfg",
    "list_backbones",
    "list_frontends",
    "list_heads",
    "list_label_sets",
    "list_models",
    "optimize_for_inference",
    "parse_model_name",
    "register_backbone",
    "register_converter",
    "register_frontend",
    "register_head",
    "split_model_name",
]
