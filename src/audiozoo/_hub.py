"""Weights on disk and on the network: read, download, convert once, cache.

Cache layout (root: ``cache_dir`` argument, else ``$AUDIOZOO_CACHE``, else
``$XDG_CACHE_HOME/audiozoo`` or ``~/.cache/audiozoo``)::

    downloads/<sha256(url)[:16]>-<file name>    upstream files fetched from a URL
    hub/                                        Hugging Face Hub files (huggingface_hub's layout)
    converted/<arch.tag>/model.safetensors      native-key weights, converted once
    converted/<arch.tag>/config.json            what was converted from where
    labels/<source>.json                        label names

Copying this one folder to a machine without internet (and pointing ``AUDIOZOO_CACHE`` at it)
is enough to load every model that ``audiozoo download NAME`` fetched.

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
import json
import logging
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ._errors import CheckpointError, PretrainedUnavailableError
from ._registry import converters
from .pretrained import PretrainedCfg

__all__ = [
    "cache_root",
    "download_url",
    "hub_download",
    "load_labels",
    "load_pretrained_state_dict",
    "read_checkpoint",
    "rewrite_url",
]

logger = logging.getLogger("audiozoo")
StateDict = dict[str, torch.Tensor]
CACHE_ENV = "AUDIOZOO_CACHE"
URL_REWRITE_ENV = "AUDIOZOO_URL_REWRITE"
NATIVE_PREFIXES = ("backbone.", "head.")
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


# ---------------------------------------------------------------------------------- reading
def read_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors from a ``.safetensors`` file (memory-mapped) or a pickle read with
    ``torch.load(weights_only=True)`` (never executes code from the file).

    Raises:
        PretrainedUnavailableError: the file does not exist.
        CheckpointError: the file is truncated, corrupt or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedUnavailableError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        raise CheckpointError(
            f"cannot read {path} with torch.load(weights_only=True): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def convert(checkpoint: dict[str, Any], converter: str) -> StateDict:
    """Upstream checkpoint → native keys; checkpoints already in native keys pass through."""
    if checkpoint and all(isinstance(k, str) and k.startswith(NATIVE_PREFIXES) for k in checkpoint):
        return dict(checkpoint)
    result: StateDict = converters.get(converter)(checkpoint)
    return result


def read_checkpoint(
    source: str | os.PathLike[str],
    *,
    converter: str,
    cache_dir: str | os.PathLike[str] | None = None,
) -> StateDict:
    """A local file or a URL (downloaded into the cache) → native-key state dict.

    A local folder in audiozoo format (``config.json`` + ``model.safetensors``) is read through
    its ``model.safetensors``.
    """
    src = os.fspath(source)
    if src.startswith(("http://", "https://")):
        path = download_url(src, cache_dir=cache_dir)
    else:
        path = Path(src).expanduser()
        if path.is_dir():
            path = path / "model.safetensors"
    return convert(read_state_dict_file(path), converter)


# ---------------------------------------------------------------------------------- locking
@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold an inter-process lock for ``target`` (a ``.lock`` file beside it)."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        yield


def _atomic_write(target: Path, write: Callable[[Path], Any]) -> None:
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
def _offline_hint() -> str:
    return (
        "On a machine without internet, run `audiozoo download NAME` where you have internet "
        "and copy the cache folder (AUDIOZOO_CACHE), or pass pretrained=PATH to a checkpoint file."
    )


def _offline_message(what: str) -> str:
    return f"HF_HUB_OFFLINE is set and {what} is not in the cache. {_offline_hint()}"


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
    with _locked(target):
        if target.is_file() and not force:  # another process finished it while we waited
            return target
        errors: list[str] = []
        for attempt in range(retries + 1):
            try:
                _atomic_write(target, lambda p: _fetch_once(source, p, timeout, name))
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
        f"{_offline_hint()}"
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
            f"could not fetch {what}: {type(exc).__name__}: {exc}. {_offline_hint()}"
        ) from None


# ---------------------------------------------------------------------------------- weights
def _weights_source(cfg: PretrainedCfg) -> str:
    if cfg.audiozoo_hub_id:
        return f"hf-hub:{cfg.audiozoo_hub_id}"
    if cfg.hf_hub_id:
        return f"hf-hub:{cfg.hf_hub_id}/{cfg.hf_filename or 'model.safetensors'}"
    if cfg.url:
        return cfg.url
    raise PretrainedUnavailableError(f"{cfg.name!r} has no weights source")


def fetch_upstream_file(
    cfg: PretrainedCfg, cache_dir: str | os.PathLike[str] | None, *, force: bool = False
) -> tuple[Path, str]:
    """The checkpoint file of ``cfg`` and its converter: the audiozoo-format Hub repository
    when there is one (native keys), else the upstream Hub file or URL."""
    if cfg.audiozoo_hub_id:
        path = hub_download(
            cfg.audiozoo_hub_id, "model.safetensors", cache_dir=cache_dir, force=force
        )
        return path, "native"
    if cfg.hf_hub_id:
        path = hub_download(
            cfg.hf_hub_id, cfg.hf_filename or "model.safetensors", cache_dir=cache_dir, force=force
        )
        return path, cfg.converter
    if cfg.url:
        return download_url(cfg.url, cache_dir=cache_dir, force=force), cfg.converter
    raise PretrainedUnavailableError(f"{cfg.name!r} has no weights source")


def _check_fits(cfg: PretrainedCfg, state_dict: StateDict) -> None:
    """Raise CheckpointError unless ``state_dict`` has exactly the keys and shapes of the model
    ``cfg`` describes (built on the meta device: no memory, no computation)."""
    from ._factory import head_from_config, key_mismatches
    from ._registry import backbones

    try:
        with torch.device("meta"):
            backbone = backbones.get(cfg.arch).builder(**cfg.backbone_kwargs)
            head = head_from_config(cfg.head, backbone.num_features)
    except Exception as exc:  # a builder that cannot run on meta: create() checks after loading
        logger.debug("cannot check %s on the meta device: %s", cfg.name, exc)
        return
    expected = {f"backbone.{k}": v.shape for k, v in backbone.state_dict().items()}
    expected.update({f"head.{k}": v.shape for k, v in head.state_dict().items()})
    problems = key_mismatches(expected, state_dict)
    if problems:
        raise CheckpointError(
            f"the checkpoint at {_weights_source(cfg)} does not fit {cfg.name!r} (a checkpoint "
            f"of another architecture or tag?); {problems}"
        )


def _fetch_and_convert(cfg: PretrainedCfg, cache_dir: str | os.PathLike[str] | None) -> StateDict:
    """Fetch the upstream file, read and convert it. A fetched file that cannot be read is
    fetched once more; one that still fails, or does not fit the architecture, is removed."""
    for attempt in (0, 1):
        path, converter = fetch_upstream_file(cfg, cache_dir, force=attempt == 1)
        try:
            checkpoint = read_state_dict_file(path)
        except CheckpointError as exc:
            _discard(path)
            if attempt == 0:
                logger.warning("%s; fetching it again", exc)
                continue
            raise
        try:
            state_dict = convert(checkpoint, converter)
            _check_fits(cfg, state_dict)
        except CheckpointError:
            _discard(path)
            raise
        return state_dict
    raise AssertionError("unreachable")


def _discard(path: Path) -> None:
    """Remove a cached file (resolving huggingface_hub's symlink to its blob as well)."""
    with contextlib.suppress(OSError):
        real = path.resolve()
        path.unlink()
        if real != path:
            real.unlink()


def load_pretrained_state_dict(
    cfg: PretrainedCfg, *, cache_dir: str | os.PathLike[str] | None = None
) -> StateDict:
    """Native-key weights of ``cfg``: from the converted cache (memory-mapped safetensors),
    else fetched, converted and cached once. A corrupt cached file is converted again."""
    from safetensors.torch import save_file

    folder = cache_root(cache_dir) / "converted" / cfg.name
    weights = folder / "model.safetensors"
    if weights.is_file():
        try:
            return read_state_dict_file(weights)
        except CheckpointError as exc:
            logger.warning("%s; converting it again", exc)
    with _locked(weights):
        if weights.is_file():  # converted by another process while we waited, or corrupt
            try:
                return read_state_dict_file(weights)
            except CheckpointError:
                weights.unlink()
        state_dict = _fetch_and_convert(cfg, cache_dir)
        tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
        _atomic_write(weights, lambda p: save_file(tensors, str(p)))
        meta = {"name": cfg.name, "source": _weights_source(cfg), "converter": cfg.converter}
        _atomic_write(
            folder / "config.json", lambda p: p.write_text(json.dumps(meta, indent=2) + "\n")
        )
    return read_state_dict_file(weights)


# ---------------------------------------------------------------------------------- labels
# Label names are read at run time from public sources, never typed in from memory.
# source -> ("hub", repo, file): a transformers config.json with "id2label"
#           ("url", address, "name2index"): a JSON object {name: index}
# FSD50K's vocabulary is only published inside the dataset's Zenodo archive (no single-file
# address), so the fsd50k tags have model.labels None.
LABEL_SOURCES: dict[str, tuple[str, str, str]] = {
    "audioset": ("hub", "MIT/ast-finetuned-audioset-10-10-0.4593", "config.json"),
    "speech_commands": ("hub", "MIT/ast-finetuned-speech-commands-v2", "config.json"),
    "openmic": (
        "url",
        "https://raw.githubusercontent.com/cosmir/openmic-2018/master/class-map.json",
        "name2index",
    ),
}


def _labels_from_source(
    kind: str, where: str, what: str, cache_dir: str | os.PathLike[str] | None
) -> list[str]:
    if kind == "hub":
        config = json.loads(hub_download(where, what, cache_dir=cache_dir).read_text())
        id2label = {int(k): str(v) for k, v in config["id2label"].items()}
    else:
        name2index = json.loads(download_url(where, cache_dir=cache_dir).read_text())
        id2label = {int(v): str(k) for k, v in name2index.items()}
    if sorted(id2label) != list(range(len(id2label))):
        raise ValueError("class indices are not 0..K-1")
    return [id2label[i] for i in range(len(id2label))]


_HUB = "https://huggingface.co"
_PROXY_ENVS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_PROBE_TIMEOUT = 3.0  # seconds
_PROBE_TTL = 60.0  # seconds a probe's answer is reused
_probes: dict[tuple[str, int], tuple[float, bool]] = {}


def _reachable(address: str) -> bool:
    """Whether a TCP connection to the host of ``address`` opens within a few seconds.

    Labels are optional, but a download on a machine without network spends ~20 s in the HTTP
    clients' retries before failing; one quick connection attempt (remembered for a minute)
    skips that. Behind a proxy the host is not connected to directly, so the answer is yes.
    """
    parsed = urllib.parse.urlsplit(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return True  # file:// and the like: let the real download decide
    if any(os.environ.get(name) for name in _PROXY_ENVS):
        return True
    key = (parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    when, ok = _probes.get(key, (-_PROBE_TTL, False))
    if time.monotonic() - when >= _PROBE_TTL:
        try:
            socket.create_connection(key, timeout=_PROBE_TIMEOUT).close()
            ok = True
        except OSError:
            ok = False
        _probes[key] = (time.monotonic(), ok)
    return ok


def load_labels(
    source: str, *, cache_dir: str | os.PathLike[str] | None = None, num_classes: int | None = None
) -> list[str] | None:
    """Class names for a label source (see ``LABEL_SOURCES``), cached in ``labels/``.

    Labels are optional: an unknown source, an offline machine without the cached names, or a
    failed download give None (logged), never an error.
    """
    target = cache_root(cache_dir) / "labels" / f"{source}.json"
    labels: list[str] | None = None
    if target.is_file():
        with contextlib.suppress(ValueError, OSError):
            labels = json.loads(target.read_text())
    if labels is None:
        if source not in LABEL_SOURCES:
            logger.info("no public label list for %r; model.labels is None", source)
            return None
        kind, where, what = LABEL_SOURCES[source]
        address = (os.environ.get("HF_ENDPOINT") or _HUB) if kind == "hub" else rewrite_url(where)
        if not offline() and not _reachable(address):
            logger.warning(
                "labels %r unavailable (cannot connect to %s); model.labels is None. "
                "`audiozoo download NAME` on a machine with internet caches them in the cache "
                "folder's labels/ (copy it and set AUDIOZOO_CACHE), or set model.labels yourself.",
                source,
                address,
            )
            return None
        try:
            labels = _labels_from_source(kind, where, what, cache_dir)
        except (PretrainedUnavailableError, ValueError, KeyError, OSError) as exc:
            logger.warning("labels %r unavailable (%s); model.labels is None", source, exc)
            return None
        names = labels
        _atomic_write(target, lambda p: p.write_text(json.dumps(names)))
    if num_classes is not None and len(labels) != num_classes:
        logger.warning(
            "label source %r has %d names for %d classes; model.labels is None",
            source,
            len(labels),
            num_classes,
        )
        return None
    return list(labels)


def load_audiozoo_model(name: str, **kwargs: Any) -> Any:
    """``hf-hub:`` / ``local-dir:`` names → AudioModel (audiozoo format)."""
    from .format import load_audiozoo_model as _load

    return _load(name, **kwargs)
