"""Backbones: spectrogram (B, 1, F, T) -> :class:`Features`.

Every module of this package is a model family (blocks, model, weight table, registration) and is
imported here, so a new family is one new module (plus its converter in
:mod:`audiozoo.converters`): no list to edit. ``base`` holds the contract, ``layers`` the shared
blocks; modules whose names start with ``_`` are skipped.
"""

from .._discovery import import_submodules
from .base import Architecture, Backbone, Features, register_backbone

FAMILIES = import_submodules(__name__, __path__, skip={"base", "layers"})

__all__ = ["FAMILIES", "Architecture", "Backbone", "Features", "register_backbone"]
