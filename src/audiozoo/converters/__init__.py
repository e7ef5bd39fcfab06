"""Checkpoint converters: one module per upstream format, each a list of ordered key rules.

Every module of this package is imported here (as the backbone families are), so a new format is
one new module; ``base`` holds the machinery and modules whose names start with ``_`` are skipped.
"""

from .._discovery import import_submodules
from .base import Converter, Rule, register_converter

FORMATS = import_submodules(__name__, __path__, skip={"base"})

__all__ = ["FORMATS", "Converter", "Rule", "register_converter"]
