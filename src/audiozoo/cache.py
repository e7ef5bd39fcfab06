"""The cache folder: where it is, how files are written into it, locks, settings, checks.

Layout (root: ``cache_dir`` argument, else ``$AUDIOZOO_CACHE``, else
``$XDG_CACHE_HOME/audiozoo`` or ``~/.cache/audiozoo``)::

    downloads/<sha256(url)[:16]>-<file name>    upstream files fetched from a URL
    downloads/<...>.meta.json                   its URL, Content-Type, size and sha256
    hub/                                        Hugging Face Hub files (huggingface_hub's layout)
    converted/<arch.tag>/model.safetensors      native-key weights, converted once
    converted/<arch.tag>/config.json            what was converted from where, and sha256s

Every file is written under a temporary name in its final folder and renamed atomically when
complete (:func:`atomic_write`), under a file lock (:func:`locked`): a crash never leaves a
partial file where a complete one is expected, two processes asking for the same model end
with one complete file, and the temporary files of a killed process are removed by the next
process that takes the lock. A process waiting for a lock says (logs) what it waits for and
gives up after ``AUDIOZOO_LOCK_TIMEOUT``. Fetching is :mod:`audiozoo.download`'s job, the
recorded hashes :mod:`audiozoo.integrity`'s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError, PretrainedUnavailableError
from .integrity import RECORD_SUFFIX, CacheReport, verify_tree

__all__ = [
    "CACHE_ENV",
    "DownloadSettings",
    "atomic_write",
    "cache_root",
    "discard",
    "download_settings",
    "locked",
    "offline",
    "verify_cache",
]

logger = logging.getLogger("audiozoo")
CACHE_ENV = "AUDIOZOO_CACHE"
_TRUE = ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class DownloadSettings:
    """The download settings (described in :mod:`audiozoo.download`), as
    :func:`download_settings` reads them from the environment; the defaults are below."""

    timeout: float = 60.0
    min_speed: float = 1000.0
    retries: int = 3
    backoff: float = 1.0
    lock_timeout: float = 3600.0


def _setting(
    name: str,
    default: float,
    must: str,
    *,
    integer: bool = False,
    above_zero: bool = False,
    high: float = math.inf,
) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float | None = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if (
        value is None
        or not math.isfinite(value)
        or value < 0
        or (above_zero and value == 0)
        or value > high
    ):
        raise ConfigurationError(
            f"{name}={raw!r} is not valid: it must be {must}; fix it, or unset it for the "
            f"default ({default:g})"
        )
    return value


_DEFAULT = DownloadSettings()


def _lock_timeout() -> float:
    return _setting(
        "AUDIOZOO_LOCK_TIMEOUT",
        _DEFAULT.lock_timeout,
        "a finite number of seconds above 0",
        above_zero=True,
    )


def download_settings() -> DownloadSettings:
    """The download settings from the environment, validated.

    Raises:
        ConfigurationError: a setting that is not a valid number; the message names it.
    """
    return DownloadSettings(
        timeout=_setting(
            "AUDIOZOO_DOWNLOAD_TIMEOUT",
            _DEFAULT.timeout,
            "a number of seconds above 0 and at most 86400",
            above_zero=True,
            high=86400,
        ),
        min_speed=_setting(
            "AUDIOZOO_DOWNLOAD_MIN_SPEED",
            _DEFAULT.min_speed,
            "a finite number of bytes per second, 0 or more",
        ),
        retries=int(
            _setting(
                "AUDIOZOO_DOWNLOAD_RETRIES",
                _DEFAULT.retries,
                "a whole number from 0 to 100",
                integer=True,
                high=100,
            )
        ),
        backoff=_setting(
            "AUDIOZOO_DOWNLOAD_BACKOFF",
            _DEFAULT.backoff,
            "a number of seconds from 0 to 3600",
            high=3600,
        ),
        lock_timeout=_lock_timeout(),
    )


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The audiozoo cache folder: ``cache_dir``, ``$AUDIOZOO_CACHE`` or ``~/.cache/audiozoo``.

    Raises:
        ConfigurationError: the folder (or a folder above it) is a file.
    """
    env = os.environ.get(CACHE_ENV)
    if cache_dir is not None:
        root, what = Path(cache_dir).expanduser(), "cache_dir"
    elif env:
        root, what = Path(env).expanduser(), CACHE_ENV
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "audiozoo"
        what = "the default cache folder (XDG_CACHE_HOME)"
    for folder in (root, *root.parents):  # the first one that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise ConfigurationError(
                    f"{what}={str(root)!r} cannot be the cache: {folder} is a file, not a "
                    f"folder; point {what} at a folder (it is created when missing)"
                )
            break
    return root


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (read now, not at import), or when
    huggingface_hub, if imported, is in offline mode (``constants.HF_HUB_OFFLINE``)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


# ---------------------------------------------------------------------------------- locking
def _remove_partials(target: Path) -> None:
    """Remove what :func:`atomic_write` left for ``target`` in a killed process. Called with
    the target's lock held, so no live writer owns these files."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.part")
    with contextlib.suppress(OSError):
        for name in os.listdir(target.parent):
            if pattern.fullmatch(name):
                with contextlib.suppress(OSError):
                    os.unlink(target.parent / name)
                    logger.info("removed %s, left by an interrupted download", name)


@contextlib.contextmanager
def locked(target: Path, *companions: Path) -> Iterator[None]:
    """Hold an inter-process lock for ``target`` (a ``.lock`` file beside it); on entry, remove
    the temporary files that killed processes left for ``target`` and ``companions`` (files
    written under the same lock)."""
    from filelock import FileLock, Timeout

    path = target.parent / f".{target.name}.lock"
    lock = FileLock(str(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        bound = _lock_timeout()
        logger.warning(
            "waiting for another process that is writing %s (lock file %s); giving up after "
            "%g s (AUDIOZOO_LOCK_TIMEOUT)",
            target,
            path,
            bound,
        )
        try:
            lock.acquire(timeout=bound)
        except Timeout:
            raise PretrainedUnavailableError(
                f"another process has held the lock {path} on {target} for more than {bound:g} "
                "s (a download or conversion that is still running); wait for it to finish, or "
                "raise AUDIOZOO_LOCK_TIMEOUT. The lock is released when that process ends."
            ) from None
    except OSError as exc:  # after Timeout, which is an OSError too
        raise ConfigurationError(
            f"cannot write to the cache folder {target.parent} ({exc.strerror or exc}); point "
            f"{CACHE_ENV} (or cache_dir=) at a writable folder"
        ) from None
    try:
        for t in (target, *companions):
            _remove_partials(t)
        yield
    finally:
        lock.release()


def atomic_write(target: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``target``; the temporary file never survives."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def discard(path: Path) -> None:
    """Remove a cached file and its record (resolving huggingface_hub's symlink to its blob
    as well)."""
    with contextlib.suppress(OSError):
        real = path.resolve()
        path.unlink()
        if real != path:
            real.unlink()
    with contextlib.suppress(OSError):
        Path(f"{path}{RECORD_SUFFIX}").unlink()


def verify_cache(cache_dir: str | os.PathLike[str] | None = None) -> CacheReport:
    """Re-hash every downloaded, converted and Hub file of the cache against its recorded
    sha256 (``audiozoo download --verify``). Changes nothing: a corrupt file is fetched or
    converted again when it is next loaded.

    Returns:
        A :class:`~audiozoo.integrity.CacheReport`; ``report.ok`` is False when a file is
        corrupt, ``report.problems`` lists them, ``str(report)`` is a readable table.
    """
    return verify_tree(cache_root(cache_dir))
