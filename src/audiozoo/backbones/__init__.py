"""Backbones: spectrogram (B, 1, F, T) -> :class:`Features`. Importing a module registers its
architectures and weight tables."""

# cnn, mobilenet: convolutional; ast, passt: transformers built on backbones/layers/
from . import ast, base, cnn, mobilenet, passt
from .base import Architecture, Backbone, Features, register_backbone

__all__ = [
    "Architecture",
    "Backbone",
    "Features",
    "ast",
    "base",
    "cnn",
    "mobilenet",
    "passt",
    "register_backbone",
]
