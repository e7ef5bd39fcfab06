"""Checkpoint converters: one module per upstream format, each a list of ordered key rules."""

from . import ast, efficientat, passt  # noqa: F401
from .base import Converter, Rule, register_converter

__all__ = ["Converter", "Rule", "register_converter"]
