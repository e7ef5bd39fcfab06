"""Checkpoints: reading files safely, converting upstream keys, the convert-once cache, key checks.

An upstream checkpoint (a ``.pt`` pickle or ``.safetensors`` file in its authors' key layout) is
read without executing code (``torch.load(weights_only=True)``), mapped to audiozoo's native keys
(``backbone.*``, ``head.*``) by the tag's registered converter, checked against the shapes of the
model it is for, and cached as safetensors under ``converted/<arch.tag>/`` so that conversion
happens once. Downloading is :mod:`audiozoo.download`'s job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ._errors import CheckpointError, PretrainedUnavailableError
from ._registry import converters
from .download import atomic_write, cache_root, discard, download_url, hub_download, locked
from .pretrained import PretrainedCfg

__all__ = [
    "convert",
    "key_mismatches",
    "load_pretrained_state_dict",
    "read_checkpoint",
    "read_state_dict_file",
]

logger = logging.getLogger("audiozoo")
StateDict = dict[str, torch.Tensor]
Shapes = Mapping[str, torch.Size]
NATIVE_PREFIXES = ("backbone.", "head.")


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


# ---------------------------------------------------------------------------------- key checks
def key_mismatches(expected: Shapes, state_dict: Mapping[str, torch.Tensor]) -> str:
    """Missing, unexpected and wrong-shape keys of ``state_dict`` against ``expected`` shapes,
    as one line for an error message; "" when it fits exactly."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k])}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k])
    )
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        )
        if keys
    )


# ---------------------------------------------------------------------------------- release files
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_upstream_file(
    cfg: PretrainedCfg, cache_dir: str | os.PathLike[str] | None, *, force: bool = False
) -> tuple[Path, str]:
    """The checkpoint file of ``cfg`` and its converter: the audiozoo-format Hub repository
    when there is one (native keys), else the upstream Hub file, else ``url`` and then each of
    ``alt_urls`` until one answers. A file whose sha256 differs from ``cfg.sha256`` is removed
    and refused."""
    if cfg.audiozoo_hub_id:
        path = hub_download(
            cfg.audiozoo_hub_id, "model.safetensors", cache_dir=cache_dir, force=force
        )
        return path, "native"
    if cfg.hf_hub_id:
        path = hub_download(
            cfg.hf_hub_id, cfg.hf_filename or "model.safetensors", cache_dir=cache_dir, force=force
        )
    elif cfg.url:
        path = _download_any((cfg.url, *cfg.alt_urls), cache_dir, force)
    else:
        raise PretrainedUnavailableError(f"{cfg.name!r} has no weights source")
    if cfg.sha256 and _sha256(path) != cfg.sha256.lower():
        discard(path)
        raise CheckpointError(
            f"the file fetched for {cfg.name!r} from {cfg.source} does not have the sha256 the "
            f"tag pins ({cfg.sha256}); it was removed. The upstream file changed or the download "
            "was corrupted: try again, or report the changed file."
        )
    return path, cfg.converter


def _download_any(
    urls: tuple[str, ...], cache_dir: str | os.PathLike[str] | None, force: bool
) -> Path:
    """The first of ``urls`` that downloads; the error of the last one otherwise."""
    for i, url in enumerate(urls):
        try:
            return download_url(url, cache_dir=cache_dir, force=force)
        except PretrainedUnavailableError as exc:
            if i == len(urls) - 1:
                raise
            logger.warning("%s; trying the next source %s", exc, urls[i + 1])
    raise AssertionError("unreachable")


def _fetch_and_convert(
    cfg: PretrainedCfg, expected: Shapes, cache_dir: str | os.PathLike[str] | None
) -> StateDict:
    """Fetch the upstream file, read and convert it. A fetched file that cannot be read is
    fetched once more; one that still fails, or does not fit ``expected``, is removed."""
    for attempt in (0, 1):
        path, converter = fetch_upstream_file(cfg, cache_dir, force=attempt == 1)
        try:
            checkpoint = read_state_dict_file(path)
        except CheckpointError as exc:
            discard(path)
            if attempt == 0:
                logger.warning("%s; fetching it again", exc)
                continue
            raise
        try:
            state_dict = convert(checkpoint, converter)
            problems = key_mismatches(expected, state_dict)
            if problems:
                raise CheckpointError(
                    f"the checkpoint at {cfg.source} does not fit {cfg.name!r} (a checkpoint "
                    f"of another architecture or tag?); {problems}"
                )
        except CheckpointError:
            discard(path)
            raise
        return state_dict
    raise AssertionError("unreachable")


def load_pretrained_state_dict(
    cfg: PretrainedCfg, expected: Shapes, *, cache_dir: str | os.PathLike[str] | None = None
) -> StateDict:
    """Native-key weights of ``cfg``: from the converted cache (memory-mapped safetensors),
    else fetched, converted, checked against ``expected`` (native key → shape of the model
    with its own head) and cached once. A corrupt cached file is converted again."""
    from safetensors.torch import save_file

    folder = cache_root(cache_dir) / "converted" / cfg.name
    weights = folder / "model.safetensors"
    if weights.is_file():
        try:
            return read_state_dict_file(weights)
        except CheckpointError as exc:
            logger.warning("%s; converting it again", exc)
    with locked(weights):
        if weights.is_file():  # converted by another process while we waited, or corrupt
            try:
                return read_state_dict_file(weights)
            except CheckpointError:
                weights.unlink()
        state_dict = _fetch_and_convert(cfg, expected, cache_dir)
        tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
        atomic_write(weights, lambda p: save_file(tensors, str(p)))
        meta = {"name": cfg.name, "source": cfg.source, "converter": cfg.converter}
        atomic_write(
            folder / "config.json", lambda p: p.write_text(json.dumps(meta, indent=2) + "\n")
        )
    return read_state_dict_file(weights)
