"""Downloading and the cache: where files live, HTTP and Hub downloads, locks, offline mode.

Cache layout (root: ``cache_dir`` argument, else ``$AUDIOZOO_CACHE``, else
``$XDG_CACHE_HOME/audiozoo`` or ``~/.cache/audiozoo``)::

    downloads/<sha256(url)[:16]>-<file name>    upstream files fetched from a URL
    hub/                                        Hugging Face Hub files (huggingface_hub's layout)
    converted/<arch.tag>/model.safetensors      native-key weights, converted once
    converted/<arch.tag>/config.json            what was converted from where

Copying this one folder to a machine without internet (and pointing ``AUDIOZOO_CACHE`` at it)
is enough to load every model that ``audiozoo download NAME`` fetched. Reading and converting
the fetched checkpoints is :mod:`audiozoo.checkpoints`' job.

Every file is written under a temporary name in its final folder and renamed atomically when
complete, under a file lock: a crash never leaves a partial file where a complete one is
expected, and two processes asking for the same model end with one complete file.

Settings (environment variables, read at call time):

- ``AUDIOZOO_CACHE``: the cache folder.
- ``HF_HUB_OFFLINE=1``: never touch the network; only cached files are used.
- ``HF_ENDPOINT``: the Hugging Face Hub address (a mirror, or a test server).
- ``AUDIOZOO_URL_REWRITE="PREFIX=REPLACEMENT[;PREFIX=REPLACEMENT...]"``: rewrite the start of
  upstream download URLs, e.g. ``https://github.com/=https://mirror.example.org/github/`` for a
  local mirror of the GitHub release files (the tests point it at a loopback server).
- ``AUDIOZOO_DOWNLOAD_TIMEOUT`` (seconds, default 60), ``AUDIOZOO_DOWNLOAD_RETRIES`` (extra
  attempts after a failed one, default 3), ``AUDIOZOO_DOWNLOAD_BACKOFF`` (seconds before the first
  retry, doubled each time, default 1).
- ``AUDIOZOO_NO_PROGRESS=1``: no progress bar (it is also off when stderr is not a terminal).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._errors import PretrainedUnavailableError

__all__ = [
    "atomic_write",
    "cache_root",
    "discard",
    "download_url",
    "hub_download",
    "locked",
    "offline",
    "offline_hint",
    "rewrite_url",
]

logger = logging.getLogger("audiozoo")
CACHE_ENV = "AUDIOZOO_CACHE"
URL_REWRITE_ENV = "AUDIOZOO_URL_REWRITE"
_CHUNK = 1 << 20


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The audiozoo cache folder: ``cache_dir``, ``$AUDIOZOO_CACHE`` or ``~/.cache/audiozoo``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "audiozoo"


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


def rewrite_url(url: str) -> str:
    """Apply the first matching ``AUDIOZOO_URL_REWRITE`` prefix rule to ``url``."""
    rules = os.environ.get(URL_REWRITE_ENV, "")
    for rule in filter(None, (r.strip() for r in rules.split(";"))):
        prefix, sep, replacement = rule.partition("=")
        if not sep or not prefix:
            raise ValueError(
                f"{URL_REWRITE_ENV} rule {rule!r} is not of the form PREFIX=REPLACEMENT"
            )
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url


# ---------------------------------------------------------------------------------- locking
@contextlib.contextmanager
def locked(target: Path) -> Iterator[None]:
    """Hold an inter-process lock for ``target`` (a ``.lock`` file beside it)."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        yield


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


# ---------------------------------------------------------------------------------- download
def offline_hint() -> str:
    return (
        "On a machine without internet, run `audiozoo download NAME` where you have internet "
        "and copy the cache folder (AUDIOZOO_CACHE), or pass pretrained=PATH to a checkpoint file."
    )


def _offline_message(what: str) -> str:
    return f"HF_HUB_OFFLINE is set and {what} is not in the cache. {offline_hint()}"


def _progress(total: int | None, desc: str) -> Any:
    """A tqdm bar on stderr, or None when disabled (not a terminal, or AUDIOZOO_NO_PROGRESS)."""
    if os.environ.get("AUDIOZOO_NO_PROGRESS") or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        leave=False,
    )


class _TransientError(Exception):
    """A download failure worth retrying (network error, dropped connection, 5xx)."""


def _fetch_once(url: str, out_path: Path, timeout: float, desc: str) -> None:
    """Stream ``url`` into ``out_path``; raise _TransientError for retryable failures."""
    request = urllib.request.Request(url, headers={"User-Agent": "audiozoo"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp, open(out_path, "wb") as out:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            bar = _progress(expected, desc)
            done = 0
            try:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from None
        raise PretrainedUnavailableError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        # IncompleteRead (a dropped connection) is an HTTPException; timeouts are OSErrors
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _TransientError(f"{type(reason).__name__}: {reason}") from None
    if expected is not None and done != expected:
        raise _TransientError(f"the connection closed after {done} of {expected} bytes")


def download_url(
    url: str, *, cache_dir: str | os.PathLike[str] | None = None, force: bool = False
) -> Path:
    """Download ``url`` into the cache (once) and return the local path.

    The URL is first rewritten by ``AUDIOZOO_URL_REWRITE``; the cache key is the original URL,
    so a mirror and the original share cached files. Failed attempts are retried with
    exponential backoff; the file appears in the cache only when complete.

    Args:
        url: ``http(s)://`` address.
        cache_dir: cache root (default :func:`cache_root`).
        force: download again even when the file is cached (a cached file found corrupt).

    Raises:
        PretrainedUnavailableError: offline with the file not cached, HTTP error, or all
            attempts failed.
    """
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = cache_root(cache_dir) / "downloads" / f"{digest}-{name}"
    if target.is_file() and not force:
        return target
    if offline():
        raise PretrainedUnavailableError(_offline_message(url))
    source = rewrite_url(url)
    timeout = _env_number("AUDIOZOO_DOWNLOAD_TIMEOUT", 60.0)
    retries = int(_env_number("AUDIOZOO_DOWNLOAD_RETRIES", 3))
    wait = _env_number("AUDIOZOO_DOWNLOAD_BACKOFF", 1.0)
    with locked(target):
        if target.is_file() and not force:  # another process finished it while we waited
            return target
        errors: list[str] = []
        for attempt in range(retries + 1):
            try:
                atomic_write(target, lambda p: _fetch_once(source, p, timeout, name))
                return target
            except _TransientError as exc:
                errors.append(str(exc))
                if attempt < retries:
                    logger.warning(
                        "download of %s failed (%s); retrying in %.3g s",
                        source,
                        exc,
                        wait * 2**attempt,
                    )
                    time.sleep(wait * 2**attempt)
    raise PretrainedUnavailableError(
        f"could not download {source} after {retries + 1} attempt(s): {errors[-1]}. "
        f"{offline_hint()}"
    )


def hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """One file of a Hugging Face Hub repository, through ``huggingface_hub.hf_hub_download``.

    Files live under ``<cache>/hub``. ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are read now and
    passed on: huggingface_hub reads both once, at import, which would miss later changes.

    Raises:
        PretrainedUnavailableError: offline with the file not cached, unknown repository or
            file, or a network failure; the message says how to get the file offline.
    """
    import huggingface_hub
    from huggingface_hub import constants

    is_offline = offline()
    constants.HF_HUB_OFFLINE = is_offline  # keep huggingface_hub in step with the environment
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        return Path(
            huggingface_hub.hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=str(cache_root(cache_dir) / "hub"),
                endpoint=endpoint,
                local_files_only=is_offline,
                force_download=force,
            )
        )
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, network)
        what = f"{filename} of the Hub repository {repo_id}" + (f"@{revision}" if revision else "")
        if is_offline:
            raise PretrainedUnavailableError(_offline_message(what)) from None
        raise PretrainedUnavailableError(
            f"could not fetch {what}: {type(exc).__name__}: {exc}. {offline_hint()}"
        ) from None


def discard(path: Path) -> None:
    """Remove a cached file (resolving huggingface_hub's symlink to its blob as well)."""
    with contextlib.suppress(OSError):
        real = path.resolve()
        path.unlink()
        if real != path:
            real.unlink()
