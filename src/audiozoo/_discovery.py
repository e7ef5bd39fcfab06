"""Import every module of a package: how model families and converters are found."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

__all__ = ["import_submodules"]


def import_submodules(package: str, path: Iterable[str], *, skip: set[str]) -> tuple[str, ...]:
    """Import ``package.NAME`` for every module or subpackage NAME under ``path`` (sorted, so the
    registration order does not depend on the file system) except ``skip`` and names starting
    with ``_``. Returns the imported names."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(list(path))
        if info.name not in skip and not info.name.startswith("_")
    )
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return tuple(names)
