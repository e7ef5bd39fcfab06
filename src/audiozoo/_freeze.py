"""Freezing the frontend and the first backbone stages of an AudioModel (``model.freeze(n)``).

``freeze(n)`` leaves exactly the frontend and the first ``n`` backbone stages frozen (``True``:
the whole backbone; ``False`` or 0: nothing) and makes the rest trainable again, whatever was
frozen before:

- frozen parts get ``requires_grad=False`` and stay in eval mode after ``model.train()``, so their
  BatchNorm statistics and dropout do not change (``requires_grad=False`` alone lets BatchNorm
  drift);
- parts that are no longer frozen get ``requires_grad=True`` back for exactly the parameters that
  ``freeze`` switched off, and follow ``model.train()`` / ``model.eval()`` again. A parameter the
  user had set to ``requires_grad=False`` before ``freeze`` touched it keeps that setting.
"""

from __future__ import annotations

import operator
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ._errors import RegistryError

if TYPE_CHECKING:
    from .model import AudioModel

__all__ = ["check_freeze", "eval_frozen", "frozen_stages", "set_frozen"]


def frozen_stages(value: Any, num_stages: int) -> int:
    """The ``freeze`` argument as a number of frozen backbone stages in ``0..num_stages``.

    Raises:
        RegistryError: for anything but a bool or an integer (numpy integers included) in range;
            ``1.5``, ``"3"`` and ``None`` are refused, not rounded or parsed.
    """
    if isinstance(value, (bool, np.bool_)):
        return num_stages if value else 0
    try:
        n = operator.index(value)
    except TypeError:
        n = None
    if n is None or not 0 <= n <= num_stages:
        bound = "" if num_stages == sys.maxsize else f" from 0 to {num_stages}"
        raise RegistryError(
            f"freeze={value!r}: pass True (frontend and backbone), False (nothing) or an integer "
            f"number of backbone stages{bound} (the frontend and the first stages)"
        )
    return n


def check_freeze(value: Any) -> None:
    """Type check of ``create(freeze=...)`` before anything is built or downloaded (the range
    is checked against the backbone's stages by :meth:`AudioModel.freeze`)."""
    frozen_stages(value, sys.maxsize)


def _frozen_modules(model: AudioModel, n: int) -> list[nn.Module]:
    stages = model.backbone.stages()
    if n == 0:
        return []
    return [model.frontend, model.backbone] if n == len(stages) else [model.frontend, *stages[:n]]


def set_frozen(model: AudioModel, n: int, switched: set[str]) -> set[str]:
    """Set ``requires_grad`` for ``n`` frozen stages (see the module docstring).

    Args:
        switched: names of the parameters an earlier ``freeze`` switched off.

    Returns:
        The names of the parameters ``freeze`` has switched off now.
    """
    frozen = {id(p) for m in _frozen_modules(model, n) for p in m.parameters()}
    now: set[str] = set()
    for name, p in model.named_parameters():
        if id(p) in frozen:
            if p.requires_grad or name in switched:
                now.add(name)
            p.requires_grad_(False)
        elif name in switched:
            p.requires_grad_(True)
    return now


def eval_frozen(model: AudioModel, n: int) -> None:
    """Put the frozen parts back into eval mode (after ``nn.Module.train``)."""
    for module in _frozen_modules(model, n):
        module.eval()
