"""The head contract: :class:`~audiozoo.backbones.Features` -> one tensor."""

from __future__ import annotations

import abc
import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from .._checks import check_int, check_optional_int
from .._errors import RegistryError
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
        where = self._where()
        self.num_features = check_int(num_features, "num_features", where)
        if num_classes is None and type(self).needs_num_classes:
            raise RegistryError(f"{where}: num_classes is required (the number of outputs)")
        self.num_classes = check_optional_int(num_classes, "num_classes", where)

    def _where(self) -> str:
        """How error messages name this head: its registered name, else its class."""
        return f"head {self.registered_name!r}" if self.registered_name else type(self).__name__

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
