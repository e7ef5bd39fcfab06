"""Backbones: spectrogram (B, 1, F, T) -> :class:`Features`. Importing a module registers its
architectures and weight tables."""

from . import base, cnn, mobilenet
from .base import Architecture, Backbone, Features, register_backbone

# Transformer backbones (PaSST, AST) register here, written alongside backbones/layers/:
# from . import ast, passt

__all__ = ["Architecture", "Backbone", "Features", "base", "cnn", "mobilenet", "register_backbone"]
