"""Argument checks for constructors and ``create()``: one clear :class:`RegistryError` naming the
argument, instead of a ``TypeError`` from deep inside torch or a silently truncated value.

Configurations come from users and from ``config.json`` files, so every check is strict: an
integer argument takes integers only (``bool`` is not an integer, ``1.5`` and ``"3"`` are
refused), a real argument takes finite numbers only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from ._errors import RegistryError

__all__ = ["check_bool", "check_choice", "check_int", "check_optional_int", "check_real"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(
    value: Any, name: str, where: str, *, low: int | None = 1, high: int | None = None
) -> int:
    """``value`` as an ``int`` in ``[low, high]``, else a RegistryError naming ``where.name``."""
    if not _is_int(value):
        raise RegistryError(f"{where}: {name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"in [{low}, {high}]"
            if low is not None and high is not None
            else f">= {low}"
            if low is not None
            else f"<= {high}"
        )
        raise RegistryError(f"{where}: {name} must be an integer {bounds}, got {value}")
    return value


def check_optional_int(
    value: Any, name: str, where: str, *, low: int | None = 1, high: int | None = None
) -> int | None:
    """:func:`check_int`, or None."""
    return None if value is None else check_int(value, name, where, low=low, high=high)


def check_real(
    value: Any,
    name: str,
    where: str,
    *,
    low: float | None = None,
    high: float | None = None,
    strict_low: bool = False,
    optional: bool = False,
) -> Any:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low, high]`` with ``strict_low``);
    None passes when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise RegistryError(f"{where}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise RegistryError(f"{where}: {name} must be a finite number, got {value}")
    if low is not None and (value <= low if strict_low else value < low):
        raise RegistryError(
            f"{where}: {name} must be {'>' if strict_low else '>='} {low}, got {value}"
        )
    if high is not None and value > high:
        raise RegistryError(f"{where}: {name} must be <= {high}, got {value}")
    return value


def check_bool(value: Any, name: str, where: str) -> bool:
    """``value`` if it is a ``bool`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise RegistryError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def check_choice(value: Any, name: str, where: str, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise RegistryError(
            f"{where}: {name} must be one of {', '.join(map(repr, choices))}; got {value!r}"
        )
    return value
