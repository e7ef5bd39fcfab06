"""The head contract: :class:`~audiozoo.backbones.Features` -> one tensor."""

from __future__ import annotations

import abc
import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from .._registry import heads
from ..backbones.base import Features

__all__ = ["Head", "register_head"]


class Head(nn.Module, metaclass=abc.ABCMeta):
    """Base class of all heads.

    Subclasses take ``(num_features, num_classes, **options)`` and return from :meth:`forward`
    either clip outputs (B, K) (``output = "clip"``), frame outputs (B, T', K)
    (``output = "frame"``) or clip embeddings (B, C) (``output = "embedding"``).
    """

    output: ClassVar[str] = "clip"
    needs_num_classes: ClassVar[bool] = True

    def __init__(self, num_features: int, num_classes: int | None = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.num_classes = num_classes

    @abc.abstractmethod
    def forward(self, features: Features) -> torch.Tensor: ...

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (without ``num_features``)."""
        cfg: dict[str, Any] = {"name": self.registered_name}
        for p in list(inspect.signature(type(self).__init__).parameters)[1:]:
            if p not in ("self", "num_features"):
                cfg[p] = getattr(self, p)
        return cfg

    registered_name: ClassVar[str] = ""


def register_head(name: str):  # type: ignore[no-untyped-def]
    """Class decorator: register a :class:`Head` subclass under ``name``."""

    def wrap(cls: type[Head]) -> type[Head]:
        cls.registered_name = name
        heads.register(name, cls)
        return cls

    return wrap
