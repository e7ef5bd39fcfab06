"""Heads: turn backbone :class:`~audiozoo.backbones.Features` into the task output."""

from .base import Head, register_head
from .clip import AttentionHead, ConvHead, IdentityHead, LinearHead, MLPHead
from .frame import FrameHead, RNNHead
from .sed import SEDHead
from .weighted import WeightedHead

__all__ = [
    "AttentionHead",
    "ConvHead",
    "FrameHead",
    "Head",
    "IdentityHead",
    "LinearHead",
    "MLPHead",
    "RNNHead",
    "SEDHead",
    "WeightedHead",
    "register_head",
]
