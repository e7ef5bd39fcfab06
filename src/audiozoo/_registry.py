"""Name → part registries for frontends, backbones (architectures), heads and converters.

Parts register themselves with a decorator when their module is imported. Third-party
packages add parts through the entry-point group ``audiozoo.plugins``: each entry point names a
module, imported the first time any registry looks a name up or lists names. A plugin that
fails to import produces a warning; the rest of the registry keeps working.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ._errors import RegistryError, UnknownNameError

__all__ = ["PLUGIN_GROUP", "Registry", "backbones", "converters", "frontends", "heads"]

PLUGIN_GROUP = "audiozoo.plugins"
T = TypeVar("T")

_plugins_loaded = False  # set only once every plugin has been imported
_plugins_loading = False  # True while the thread holding _plugins_lock imports them
# Re-entrant: a plugin that looks names up while it is imported calls load_plugins() again in
# the same thread, and must then see the registry as it is so far instead of waiting for itself.
_plugins_lock = threading.RLock()


def load_plugins() -> None:
    """Import every module named in the ``audiozoo.plugins`` entry-point group (once).

    Thread-safe: a lookup in another thread waits until every plugin is imported, so it never
    sees a half-filled registry."""
    global _plugins_loaded, _plugins_loading
    if _plugins_loaded:
        return
    with _plugins_lock:
        if _plugins_loaded or _plugins_loading:  # done meanwhile, or a plugin of this thread
            return
        _plugins_loading = True
        try:
            for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
                try:
                    ep.load()
                except Exception as exc:  # a broken plugin must not break the registry
                    warnings.warn(
                        f"audiozoo plugin {ep.name!r} ({ep.value}) failed to import and was "
                        f"skipped: {type(exc).__name__}: {exc}",
                        RuntimeWarning,
                        stacklevel=3,
                    )
            _plugins_loaded = True
        finally:  # after a KeyboardInterrupt the next lookup tries again
            _plugins_loading = False


class Registry(Generic[T]):
    """A mapping from names to registered parts of one kind.

    Args:
        kind: what the registry holds, used in error messages ("frontend", "backbone", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name``; a name may be registered only once."""
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise RegistryError(
                f"invalid {self.kind} name {name!r}: use letters, digits, '_' and '-' only"
            )
        if name in self._entries:
            raise RegistryError(
                f"a {self.kind} named {name!r} is already registered "
                f"(by {_describe(self._entries[name])}); choose another name"
            )
        self._entries[name] = obj
        return obj

    def decorator(self, name: str | None = None) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated class or function."""

        def wrap(obj: T) -> T:
            self.register(name if name else str(getattr(obj, "__name__", "")), obj)
            return obj

        return wrap

    def get(self, name: str) -> T:
        """Return the part registered as ``name``, or raise :class:`UnknownNameError`."""
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} "
            f"See audiozoo.list_{self.kind}s() for all {len(self._entries)} registered names."
        )

    def name_of(self, obj: object) -> str:
        """The name ``obj`` is registered under (reverse lookup)."""
        for name, entry in self._entries.items():
            if entry is obj:
                return name
        raise UnknownNameError(f"{_describe(obj)} is not a registered {self.kind}")

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by an fnmatch pattern."""
        load_plugins()
        names = sorted(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        load_plugins()
        return len(self._entries)


def _describe(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"


frontends: Registry[Any] = Registry("frontend")
backbones: Registry[Any] = Registry("backbone")
heads: Registry[Any] = Registry("head")
converters: Registry[Any] = Registry("converter")
