"""Checkpoints: reading files safely, converting upstream keys, the convert-once cache, key checks.

An upstream checkpoint (a ``.pt`` pickle or ``.safetensors`` file in its authors' key layout) is
read without executing code (``torch.load(weights_only=True)``), checked to be a plain (nested)
state dict, mapped to audiozoo's native keys (``backbone.*``, ``head.*``) by the tag's
registered converter, checked against the keys, shapes and dtypes of the model it is for, and
cached as safetensors under ``converted/<arch.tag>/`` so that conversion happens once. The
cached file's sha256 (and the sha256 of the upstream file it came from) is recorded in
``converted/<arch.tag>/config.json`` and checked on every load: a converted file that no longer
matches, that came from a file other than the one the tag pins, or that no longer fits the model
(written by another audiozoo version) is converted again, once. Downloading is
:mod:`audiozoo.download`'s job.

Errors never pass on torch's advice to retry with ``weights_only=False``: a file that holds
more than tensors is refused, with what it is.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ._errors import CheckpointError, PretrainedUnavailableError
from ._registry import converters
from .download import (
    atomic_write,
    cache_root,
    discard,
    download_url,
    hub_download,
    locked,
    offline,
)
from .integrity import (
    describe_file,
    read_record,
    sha256_file,
    structure_problem,
    torch_load_reason,
)
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
# native key -> the model's tensor (shape and dtype are checked) or just its shape
Expected = Mapping[str, torch.Size | torch.Tensor]
NATIVE_PREFIXES = ("backbone.", "head.")


# ---------------------------------------------------------------------------------- reading
class _Unreadable(Exception):
    """Why a file is not a readable checkpoint (the caller says which file, or which URL)."""


def _describe(path: Path) -> str:
    """What ``path`` is, with the Content-Type it was downloaded with, if it was."""
    return describe_file(path, (read_record(path) or {}).get("content_type"))


def _read(path: Path) -> dict[str, Any]:
    """The tensors of ``path``; raises _Unreadable."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise _Unreadable(
                f"not a valid safetensors file ({exc}); it is {_describe(path)}"
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        reason = torch_load_reason(exc)
        if "Unsupported global" in reason:
            reason += (
                " (audiozoo reads tensors only and never runs code from a file: re-save a "
                "checkpoint you trust as a plain state dict of tensors, e.g. with safetensors)"
            )
        raise _Unreadable(
            f"it is {_describe(path)}, and torch.load(weights_only=True) says: {reason}"
        ) from None
    if not isinstance(obj, dict):
        raise _Unreadable(f"it holds a {type(obj).__name__}, not a state dict")
    problem = structure_problem(obj)
    if problem:
        raise _Unreadable(f"it is not a plain state dict: {problem}")
    return obj


def read_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors from a ``.safetensors`` file (memory-mapped) or a pickle read with
    ``torch.load(weights_only=True)`` (never executes code from the file).

    Raises:
        PretrainedUnavailableError: the file does not exist.
        CheckpointError: the file is truncated, corrupt, not a state dict (what it is instead
            is named), holds itself, nests too deeply, or has tensors under non-string keys.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedUnavailableError(f"checkpoint file not found: {path}")
    try:
        return _read(path)
    except _Unreadable as exc:
        raise CheckpointError(f"cannot read {path} as a checkpoint: {exc}") from None


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
        try:
            return convert(_read(path), converter)
        except _Unreadable as exc:
            discard(path)
            raise CheckpointError(
                f"the file downloaded from {src} is not a readable checkpoint: {exc}; it was "
                "removed from the cache"
            ) from None
    else:
        path = Path(src).expanduser()
        if path.is_dir():
            path = path / "model.safetensors"
    return convert(read_state_dict_file(path), converter)


# ---------------------------------------------------------------------------------- key checks
def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "integer"


def key_mismatches(expected: Expected, state_dict: Mapping[str, Any]) -> str:
    """Missing, unexpected, non-tensor, wrong-shape and wrong-dtype keys of ``state_dict``
    against ``expected`` (the model's tensors, or just their shapes), as one line for an error
    message; "" when it fits. Floating-point values of another precision fit a floating-point
    tensor (they are cast when loaded); integer, bool or complex values do not."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    common = set(expected) & set(state_dict)
    not_tensor = sorted(
        f"{k}: {type(state_dict[k]).__name__}"
        for k in common
        if not isinstance(state_dict[k], torch.Tensor)
    )
    tensors = {k for k in common if isinstance(state_dict[k], torch.Tensor)}
    shape = {
        k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in expected.items()
    }
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {shape[k]}"
        for k in tensors
        if tuple(state_dict[k].shape) != shape[k]
    )
    wrong_dtype = sorted(
        f"{k}: checkpoint {state_dict[k].dtype} vs model {e.dtype}"
        for k in tensors
        if isinstance(e := expected[k], torch.Tensor)
        and _dtype_kind(state_dict[k].dtype) != _dtype_kind(e.dtype)
    )
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("not a tensor", not_tensor),
            ("wrong shape", wrong_shape),
            ("wrong dtype", wrong_dtype),
        )
        if keys
    )


# ---------------------------------------------------------------------------------- release files
def _origin(cfg: PretrainedCfg, path: Path) -> str:
    """Where a fetched file came from, for messages (its URL, not a cache path)."""
    record = read_record(path)
    if record and isinstance(record.get("url"), str):
        via = record.get("source")
        return record["url"] + (
            f" (via {via})" if isinstance(via, str) and via != record["url"] else ""
        )
    if cfg.audiozoo_hub_id:
        return f"model.safetensors of the Hub repository {cfg.audiozoo_hub_id}"
    if cfg.hf_hub_id:
        return f"{cfg.hf_filename or 'model.safetensors'} of the Hub repository {cfg.hf_hub_id}"
    return str(cfg.source or path)


def fetch_upstream_file(
    cfg: PretrainedCfg, cache_dir: str | os.PathLike[str] | None, *, force: bool = False
) -> tuple[Path, str]:
    """The checkpoint file of ``cfg`` and its converter: the audiozoo-format Hub repository
    when there is one (native keys), else the upstream Hub file, else ``url`` and then each of
    ``alt_urls`` until one answers. A file (cached or fetched, from a URL or the Hub) whose
    sha256 differs from ``cfg.sha256`` is removed and fetched once more, then refused."""
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
    if cfg.sha256:
        digest = sha256_file(path)
        if digest != cfg.sha256.lower():
            message = (
                f"the file fetched for {cfg.name!r} from {_origin(cfg, path)} has the sha256 "
                f"{digest}, not the {cfg.sha256} the tag pins; it was removed"
            )
            discard(path)
            if not force and not offline():
                logger.warning("%s; fetching it again", message)
                return fetch_upstream_file(cfg, cache_dir, force=True)
            raise CheckpointError(
                f"{message}. The upstream file changed, or something between here and the "
                "server changes it: try again from another network, or report the changed file."
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
    cfg: PretrainedCfg, expected: Expected, cache_dir: str | os.PathLike[str] | None
) -> tuple[StateDict, str]:
    """Fetch the upstream file, read and convert it; returns the state dict and the file's
    sha256. A fetched file that cannot be read is fetched once more; one that still fails, or
    does not fit ``expected``, is removed, and the error names where it came from and what it
    is."""
    for attempt in (0, 1):
        path, converter = fetch_upstream_file(cfg, cache_dir, force=attempt == 1)
        origin = _origin(cfg, path)
        try:
            checkpoint = _read(path)
        except _Unreadable as exc:
            message = (
                f"the file fetched for {cfg.name!r} from {origin} is not a readable "
                f"checkpoint: {exc}"
            )
            discard(path)
            if attempt == 0 and not offline():
                logger.warning("%s; fetching it again", message.rstrip("."))
                continue
            raise CheckpointError(
                f"{message}. It was removed from the cache"
                + (
                    " (fetched twice, with the same result): check the address (a moved file, "
                    "or a proxy that answers for it)."
                    if attempt
                    else "."
                )
            ) from None
        source_sha256 = sha256_file(path)
        try:
            state_dict = convert(checkpoint, converter)
            problems = key_mismatches(expected, state_dict)
            if problems:
                raise CheckpointError(
                    f"the checkpoint at {origin} does not fit {cfg.name!r} (a checkpoint "
                    f"of another architecture or tag?); {problems}"
                )
        except CheckpointError:
            discard(path)
            raise
        return state_dict, source_sha256
    raise AssertionError("unreachable")


def _read_converted(
    cfg: PretrainedCfg, weights: Path, meta_path: Path, expected: Expected
) -> tuple[StateDict | None, str | None]:
    """The cached conversion of ``cfg`` if it is sound: (state dict, None); else (None, why),
    or (None, None) when there is none."""
    if not weights.is_file():
        return None, None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta = meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        meta = {}  # written by an older audiozoo, or lost: nothing to compare with
    recorded, size = meta.get("sha256"), weights.stat().st_size
    if isinstance(meta.get("size"), int) and meta["size"] != size:
        return None, (
            f"the converted file {weights} has {size} bytes, not the {meta['size']} written "
            "(truncated, e.g. by a full disk, or changed)"
        )
    if isinstance(recorded, str) and sha256_file(weights) != recorded:
        return None, (
            f"the converted file {weights} does not match the sha256 recorded when it was "
            "written (bit rot, or an edit)"
        )
    if cfg.sha256 and meta.get("source_sha256") != cfg.sha256.lower():
        return None, (
            f"the converted file {weights} was not converted from the upstream file that "
            f"{cfg.name!r} pins (sha256 {cfg.sha256})"
        )
    try:
        state_dict = read_state_dict_file(weights)
    except CheckpointError as exc:
        return None, str(exc)
    problems = key_mismatches(expected, state_dict)
    if problems:
        return None, (
            f"the converted file {weights} does not fit {cfg.name!r} (converted by another "
            f"version of audiozoo?): {problems}"
        )
    return state_dict, None


def load_pretrained_state_dict(
    cfg: PretrainedCfg, expected: Expected, *, cache_dir: str | os.PathLike[str] | None = None
) -> StateDict:
    """Native-key weights of ``cfg``: from the converted cache (memory-mapped safetensors,
    sha256 checked), else fetched, converted, checked against ``expected`` (native key → tensor
    or shape of the model with its own head) and cached once. A cached conversion that is
    corrupt, stale or of another upstream file is converted again, once."""
    from safetensors.torch import save_file

    folder = cache_root(cache_dir) / "converted" / cfg.name
    weights, meta_path = folder / "model.safetensors", folder / "config.json"
    state_dict, _ = _read_converted(cfg, weights, meta_path, expected)
    if state_dict is not None:
        return state_dict
    with locked(weights, meta_path):
        # converted by another process while we waited? (and the reason, said once, if not)
        state_dict, problem = _read_converted(cfg, weights, meta_path, expected)
        if state_dict is not None:
            return state_dict
        if problem:
            logger.warning("%s; converting it again", problem.rstrip("."))
            weights.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
        try:
            state_dict, source_sha256 = _fetch_and_convert(cfg, expected, cache_dir)
        except (CheckpointError, PretrainedUnavailableError) as exc:
            if problem is None:
                raise
            raise type(exc)(f"{exc} (and the cached conversion was removed: {problem})") from None
        tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp))
            meta = {
                "name": cfg.name,
                "source": cfg.source,
                "converter": cfg.converter,
                "size": tmp.stat().st_size,
                "sha256": sha256_file(tmp),
                "source_sha256": source_sha256,
            }
            # the record first: the weights never exist without it
            atomic_write(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))

        atomic_write(weights, write)
    return read_state_dict_file(weights)
