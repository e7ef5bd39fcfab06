"""Downloading: HTTP and Hub downloads into the cache, their checks, offline mode, settings.

Files go into the audiozoo cache (:mod:`audiozoo.cache`: its layout, atomic writes and locks;
``cache_root``, ``locked``, ``verify_cache``, ... are re-exported here). Copying this one folder
to a machine without internet (and pointing ``AUDIOZOO_CACHE`` at it) is enough to load every
model that ``audiozoo download NAME`` fetched. Reading and converting the fetched checkpoints
is :mod:`audiozoo.checkpoints`' job.

A download is written under a temporary name and renamed when complete, under a lock: a
killed download leaves no partial file in the cache for long (the next process that takes the
lock removes it), and a waiting process says what it waits for.

Integrity (:mod:`audiozoo.integrity`): every downloaded and converted file has a recorded
sha256, checked whenever the file is used; a file that no longer matches (bit rot, an edit) is
fetched or converted again. Hub files are checked against the hash huggingface_hub names them
by. A tag's ``PretrainedCfg.sha256`` pins its upstream file; a cached conversion of another
file is converted again. :func:`verify_cache` (``audiozoo download --verify``) re-checks a cache.

Settings (environment variables, read at call time; a bad value is a
:class:`~audiozoo.ConfigurationError` that names it):

- ``AUDIOZOO_CACHE``: the cache folder (a folder, created when missing).
- ``HF_HUB_OFFLINE=1``: never touch the network; only cached files are used. huggingface_hub's
  own switch (``huggingface_hub.constants.HF_HUB_OFFLINE``, read from the variable when it is
  imported) is honoured as well, and never changed.
- ``HF_ENDPOINT``: the Hugging Face Hub address (a mirror, or a test server).
- ``AUDIOZOO_URL_REWRITE="PREFIX=REPLACEMENT[;PREFIX=REPLACEMENT...]"``: rewrite the start of
  upstream download URLs, e.g. ``https://github.com/=https://mirror.example.org/github/`` for a
  local mirror of the GitHub release files (the tests point it at a loopback server).
- ``AUDIOZOO_DOWNLOAD_TIMEOUT`` (seconds, default 60): the socket timeout, and the window of
  ``AUDIOZOO_DOWNLOAD_MIN_SPEED`` (bytes/s, default 1000; 0: none): an attempt that receives
  less than that in any window fails (a stalled or dripping server). A Hub download gets one
  window plus the file's size at that speed (huggingface_hub reads in 10 MB chunks).
- ``AUDIOZOO_DOWNLOAD_RETRIES`` (extra attempts after a failed one, 0-100, default 3),
  ``AUDIOZOO_DOWNLOAD_BACKOFF`` (seconds before the first retry, doubled each time, default 1).
  HTTP 4xx answers, HTML pages and host names that do not resolve are not retried.
- ``AUDIOZOO_LOCK_TIMEOUT`` (seconds, default 3600): how long to wait for another process
  that downloads or converts the same file.
- ``AUDIOZOO_NO_PROGRESS=1``: no progress bar (it is also off when stderr is not a terminal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ConfigurationError, PretrainedUnavailableError
from ._http import HostNotFound, TransientError, fetch
from ._hub_transfer import guarded_hub_download
from .cache import (
    DownloadSettings,
    atomic_write,
    cache_root,
    discard,
    download_settings,
    locked,
    offline,
    verify_cache,
)
from .integrity import RECORD_SUFFIX, blob_mismatch, read_record, sha256_file
from .names import _check_revision

__all__ = [
    "DownloadSettings",
    "atomic_write",
    "cache_root",
    "discard",
    "download_settings",
    "download_url",
    "hub_download",
    "locked",
    "offline",
    "offline_hint",
    "rewrite_url",
    "verify_cache",
]

logger = logging.getLogger("audiozoo")
URL_REWRITE_ENV = "AUDIOZOO_URL_REWRITE"


def rewrite_url(url: str) -> str:
    """Apply the first matching ``AUDIOZOO_URL_REWRITE`` prefix rule to ``url``.

    Raises:
        ConfigurationError: a rule that is not ``PREFIX=REPLACEMENT`` with an ``http(s)://``
            or ``file://`` replacement.
    """
    rules = [r.strip() for r in os.environ.get(URL_REWRITE_ENV, "").split(";") if r.strip()]
    parsed = [_split_rule(rule) for rule in rules]
    for rule, (prefix, sep, replacement) in zip(rules, parsed, strict=True):
        if not (sep and prefix and replacement.startswith(("http://", "https://", "file://"))):
            raise ConfigurationError(
                f"{URL_REWRITE_ENV} rule {rule!r} is not of the form PREFIX=REPLACEMENT with a "
                "replacement that starts with http://, https:// or file://, e.g. "
                "'https://github.com/=https://mirror.example.org/github/'"
            )
    for prefix, _, replacement in parsed:
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url


def _split_rule(rule: str) -> tuple[str, str, str]:
    """``PREFIX=REPLACEMENT`` split at the ``=`` before the replacement's scheme, so a prefix may
    hold ``=`` itself (``...dasheng_12b.pt?download=1=file:///mirror/dasheng_12b.pt``)."""
    for scheme in ("=http://", "=https://", "=file://"):
        at = rule.find(scheme)
        if at > 0:
            return rule[:at], "=", rule[at + 1 :]
    return rule.partition("=")


# ---------------------------------------------------------------------------------- download
def offline_hint() -> str:
    return (
        "On a machine without internet, run `audiozoo download NAME` where you have internet "
        "and copy the cache folder (AUDIOZOO_CACHE), or pass pretrained=PATH to a checkpoint file."
    )


def _offline_message(what: str) -> str:
    return f"offline mode is on (HF_HUB_OFFLINE) and {what} is not in the cache. {offline_hint()}"


def _cached_problem(target: Path) -> str | None:
    """Why the cached ``target`` does not match its record (None: matches, or no record)."""
    record = read_record(target)
    if record is None or not isinstance(record.get("sha256"), str):
        return None  # fetched by an older audiozoo: nothing to compare with
    if record.get("size") != target.stat().st_size or sha256_file(target) != record["sha256"]:
        return (
            f"the cached file {target} does not match the sha256 recorded when it was "
            "downloaded (bit rot, or an edit)"
        )
    return None


def download_url(
    url: str, *, cache_dir: str | os.PathLike[str] | None = None, force: bool = False
) -> Path:
    """Download ``url`` into the cache (once) and return the local path.

    The URL is first rewritten by ``AUDIOZOO_URL_REWRITE``; the cache key is the original URL,
    so a mirror and the original share cached files. Failed attempts are retried with
    exponential backoff; the file appears in the cache only when complete, with a record of
    its sha256 that is checked whenever the cached file is used again.

    Args:
        url: ``http(s)://`` address.
        cache_dir: cache root (default :func:`cache_root`).
        force: download again even when the file is cached (a cached file found corrupt).

    Raises:
        PretrainedUnavailableError: offline with the file not cached, HTTP error, an HTML page
            instead of the file, a host that does not resolve, or all attempts failed.
        ConfigurationError: a download setting or ``AUDIOZOO_URL_REWRITE`` rule that is not
            valid.
    """
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = cache_root(cache_dir) / "downloads" / f"{digest}-{name}"
    record = Path(f"{target}{RECORD_SUFFIX}")
    if not force and target.is_file() and _cached_problem(target) is None:
        return target
    if offline():
        problem = target.is_file() and _cached_problem(target)
        raise PretrainedUnavailableError(
            f"{problem}; {_offline_message(url)}" if problem else _offline_message(url)
        )
    settings = download_settings()
    source = rewrite_url(url)

    def fetch_and_record(tmp: Path) -> None:
        fetched = fetch(
            source, tmp, timeout=settings.timeout, min_speed=settings.min_speed, desc=name
        )
        doc = {
            "url": url,
            "source": fetched.url,
            "content_type": fetched.content_type,
            "size": fetched.size,
            "sha256": fetched.sha256,
        }
        # the record first: the file never exists without it
        atomic_write(record, lambda p: p.write_text(json.dumps(doc, indent=2) + "\n"))

    with locked(target, record):
        if not force and target.is_file():  # another process finished it while we waited
            problem = _cached_problem(target)
            if problem is None:
                return target
            logger.warning("%s; downloading it again", problem)
        errors: list[str] = []
        for attempt in range(settings.retries + 1):
            try:
                atomic_write(target, fetch_and_record)
                return target
            except HostNotFound as exc:
                raise PretrainedUnavailableError(
                    f"could not download {source}: {exc}: no network here, or a wrong address "
                    f"(see {URL_REWRITE_ENV}). {offline_hint()}"
                ) from None
            except TransientError as exc:
                errors.append(str(exc))
                if attempt < settings.retries:
                    wait = min(settings.backoff * 2**attempt, 3600.0)
                    logger.warning(
                        "download of %s failed (%s); retrying in %.3g s", source, exc, wait
                    )
                    time.sleep(wait)
    raise PretrainedUnavailableError(
        f"could not download {source} after {settings.retries + 1} attempt(s): {errors[-1]}. "
        f"{offline_hint()}"
    )


def _unresolvable(url: str) -> str | None:
    """Why the host of ``url`` cannot be reached by name (None: it resolves, or a proxy
    resolves it for us)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or (urllib.request.getproxies().get(parts.scheme) and not _bypass(host)):
        return None
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"the host name {host!r} of {url} does not resolve ({exc})"
    except (OSError, UnicodeError, ValueError):
        return None
    return None


def _bypass(host: str) -> bool:
    return bool(urllib.request.proxy_bypass(host))  # type: ignore[attr-defined]


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
    passed on (huggingface_hub's own globals are never changed). A file whose content does not
    match the hash huggingface_hub stores it under is fetched once more.

    Raises:
        RegistryError: a revision that is not a branch, tag or commit name.
        PretrainedUnavailableError: offline with the file not cached, unknown repository or
            file, a Hub address that does not resolve, or a network failure; the message says
            how to get the file offline.
    """
    import huggingface_hub
    from huggingface_hub import constants

    what = f"{filename} of the Hub repository {repo_id}" + (f"@{revision}" if revision else "")
    if revision is not None:
        _check_revision(f"hf-hub:{repo_id}@{revision}", revision)
    endpoint = os.environ.get("HF_ENDPOINT") or None
    is_offline = offline()
    # huggingface_hub retries a host that does not resolve for ~25 s: look first, and use
    # the cache alone when it does not
    unresolved = None if is_offline else _unresolvable(endpoint or constants.ENDPOINT)

    local_only = is_offline or unresolved is not None
    settings = None if local_only else download_settings()

    def call(force_download: bool, tqdm_class: type | None = None) -> Path:
        return Path(
            huggingface_hub.hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=str(cache_root(cache_dir) / "hub"),
                endpoint=endpoint,
                local_files_only=local_only,
                force_download=force_download,
                tqdm_class=tqdm_class,
            )
        )

    def get(force_download: bool) -> Path:
        try:
            if settings is None:
                return call(force_download)
            # huggingface_hub bounds each read, not a transfer: a dripping server would hang
            key = f"{cache_root(cache_dir) / 'hub'} {endpoint} {repo_id} {revision} {filename}"
            return guarded_hub_download(
                lambda bar: call(force_download, bar), what, settings, key=key
            )
        except PretrainedUnavailableError:
            raise
        except Exception as exc:  # huggingface_hub raises many types (offline, 404, network)
            if is_offline:
                raise PretrainedUnavailableError(_offline_message(what)) from None
            if unresolved:
                raise PretrainedUnavailableError(
                    f"could not fetch {what}: {unresolved}: no network here, or a wrong "
                    f"HF_ENDPOINT. {offline_hint()}"
                ) from None
            raise PretrainedUnavailableError(
                f"could not fetch {what}: {type(exc).__name__}: {exc}. {offline_hint()}"
            ) from None

    path = get(force and not local_only)
    problem = blob_mismatch(path)
    if problem is None:
        return path
    discard(path)
    if local_only:
        raise PretrainedUnavailableError(
            f"the cached {what} is corrupt ({problem}); it was removed, and it cannot be "
            f"fetched again now ({unresolved or 'offline mode is on (HF_HUB_OFFLINE)'})"
        )
    logger.warning("%s; fetching it again", problem)
    path = get(True)
    problem = blob_mismatch(path)
    if problem is not None:
        discard(path)
        raise PretrainedUnavailableError(
            f"{what} does not match its hash after fetching it again ({problem}); it was "
            "removed. The server or a proxy changes the file: try another network or mirror."
        )
    return path
