"""Weights on disk and on the network: read, download, convert once, cache.

Cache layout (root: ``cache_dir`` argument, else ``$AUDIOZOO_CACHE``, else
``~/.cache/audiozoo``)::

    downloads/<sha256(url)[:16]>-<file name>    upstream files fetched from a URL
    converted/<arch.tag>/model.safetensors      native-key weights, converted once
    converted/<arch.tag>/config.json            what was converted from where
    labels/<source>.json                        label names

Hub files go through ``huggingface_hub.hf_hub_download`` (its own cache, ``HF_HOME``).
Every file is written to a temporary name in the same folder and renamed atomically when
complete, so a crash never leaves a partial file where a complete one is expected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch

from ._errors import CheckpointError, PretrainedUnavailableError
from ._registry import converters
from .pretrained import PretrainedCfg

__all__ = [
    "cache_root",
    "download_url",
    "load_labels",
    "load_pretrained_state_dict",
    "read_checkpoint",
]

logger = logging.getLogger("audiozoo")
StateDict = dict[str, torch.Tensor]
CACHE_ENV = "AUDIOZOO_CACHE"
NATIVE_PREFIXES = ("backbone.", "head.")


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
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------------- reading
def read_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors from a ``.safetensors`` file (memory-mapped) or a pickle read with
    ``torch.load(weights_only=True)`` (never executes code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedUnavailableError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
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
    if checkpoint and all(
        isinstance(k, str) and k.startswith(NATIVE_PREFIXES) for k in checkpoint
    ):
        return {k: v for k, v in checkpoint.items()}
    result: StateDict = converters.get(converter)(checkpoint)
    return result


def read_checkpoint(
    source: str | os.PathLike[str], *, converter: str, cache_dir: str | os.PathLike[str] | None = None
) -> StateDict:
    """A local file or a URL (downloaded into the cache) → native-key state dict."""
    src = os.fspath(source)
    if src.startswith(("http://", "https://")):
        path = download_url(src, cache_dir=cache_dir)
    else:
        path = Path(src).expanduser()
    return convert(read_state_dict_file(path), converter)


# ---------------------------------------------------------------------------------- download
def download_url(url: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Download ``url`` into the cache (once) and return the local path."""
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download"
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = cache_root(cache_dir) / "downloads" / f"{digest}-{name}"
    if target.is_file():
        return target
    if offline():
        raise PretrainedUnavailableError(_offline_message(url))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            expected = resp.headers.get("Content-Length")
            done = 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
        if expected is not None and done != int(expected):
            raise PretrainedUnavailableError(
                f"download of {url} ended after {done} of {expected} bytes; try again"
            )
        os.replace(tmp_name, target)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise PretrainedUnavailableError(
            f"could not download {url}: {exc}. {_offline_hint()}"
        ) from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _offline_hint() -> str:
    return (
        "On a machine without internet, run `audiozoo download NAME` where you have internet "
        "and copy the cache folder, or pass pretrained=PATH to a checkpoint file."
    )


def _offline_message(what: str) -> str:
    return f"HF_HUB_OFFLINE is set and {what} is not in the cache. {_offline_hint()}"


def fetch_upstream_file(cfg: PretrainedCfg, cache_dir: str | os.PathLike[str] | None) -> Path:
    """The upstream checkpoint file of ``cfg``, from the Hub or its URL."""
    if cfg.hf_hub_id:
        from huggingface_hub import hf_hub_download

        try:
            return Path(
                hf_hub_download(cfg.hf_hub_id, cfg.hf_filename or "model.safetensors")
            )
        except Exception as exc:  # huggingface_hub raises many types (offline, 404, network)
            raise PretrainedUnavailableError(
                f"could not fetch {cfg.hf_filename or 'model.safetensors'} of {cfg.hf_hub_id} "
                f"from the Hugging Face Hub: {type(exc).__name__}: {exc}. {_offline_hint()}"
            ) from None
    if cfg.url:
        return download_url(cfg.url, cache_dir=cache_dir)
    raise PretrainedUnavailableError(f"{cfg.name!r} has no weights source")


def load_pretrained_state_dict(
    cfg: PretrainedCfg, *, cache_dir: str | os.PathLike[str] | None = None
) -> StateDict:
    """Native-key weights of ``cfg``: from the converted cache, else fetched and converted once."""
    from safetensors.torch import save_file

    folder = cache_root(cache_dir) / "converted" / cfg.name
    weights = folder / "model.safetensors"
    if weights.is_file():
        try:
            return dict(read_state_dict_file(weights))
        except CheckpointError:
            logger.warning("cached %s is corrupt; converting it again", weights)
    state_dict = convert(read_state_dict_file(fetch_upstream_file(cfg, cache_dir)), cfg.converter)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(weights, lambda p: save_file(
        {k: v.contiguous() for k, v in state_dict.items()}, str(p)))
    meta = {"name": cfg.name, "source": cfg.hf_hub_id or cfg.url, "converter": cfg.converter}
    _atomic_write(folder / "config.json", lambda p: p.write_text(json.dumps(meta, indent=2)))
    return state_dict


def _atomic_write(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------------- labels
# Label names are read at run time from public sources, never typed in from memory.
LABEL_SOURCES: dict[str, tuple[str, str]] = {
    # source -> (Hub repo, file); the file is a config.json with "id2label"
    "audioset": ("MIT/ast-finetuned-audioset-10-10-0.4593", "config.json"),
    "speech_commands": ("MIT/ast-finetuned-speech-commands-v2", "config.json"),
}


def load_labels(
    source: str, *, cache_dir: str | os.PathLike[str] | None = None, num_classes: int | None = None
) -> list[str] | None:
    """Class names for a label source, cached; None (with a log message) if unavailable."""
    target = cache_root(cache_dir) / "labels" / f"{source}.json"
    if target.is_file():
        labels = json.loads(target.read_text())
    elif source in LABEL_SOURCES and not offline():
        repo, filename = LABEL_SOURCES[source]
        try:
            from huggingface_hub import hf_hub_download

            config = json.loads(Path(hf_hub_download(repo, filename)).read_text())
        except Exception as exc:  # network, offline, missing file: labels are optional
            logger.warning("labels %r unavailable (%s); model.labels is None", source, exc)
            return None
        id2label = config["id2label"]
        labels = [id2label[str(i)] for i in range(len(id2label))]
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, lambda p: p.write_text(json.dumps(labels)))
    else:
        logger.info("labels %r not cached; model.labels is None", source)
        return None
    if num_classes is not None and len(labels) != num_classes:
        logger.warning("label source %r has %d names for %d classes", source, len(labels),
                       num_classes)
        return None
    return list(labels)


def load_audiozoo_model(name: str, **kwargs: Any) -> Any:
    """``hf-hub:`` / ``local-dir:`` names → AudioModel (audiozoo format)."""
    from .format import load_audiozoo_model as _load

    return _load(name, **kwargs)
