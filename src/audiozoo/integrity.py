"""Content hashes of cached files, and what a file that is not a checkpoint actually is.

Every file audiozoo puts in its cache has a recorded sha256 (see :mod:`audiozoo.download` for
the layout):

- ``downloads/<file>``: in the record ``downloads/<file>.meta.json`` (with the URL and the
  ``Content-Type`` it was fetched with), written before the file itself appears;
- ``converted/<arch.tag>/model.safetensors``: in ``converted/<arch.tag>/config.json``, with the
  sha256 of the upstream file it was converted from;
- ``hub/.../blobs/<name>``: huggingface_hub names each blob by its hash (the sha256 of large
  files, the git blob sha1 of small ones), so the name is the record.

:func:`verify_tree` re-hashes a whole cache folder (``audiozoo download --verify``).
:func:`describe_file` says what a file that is not a checkpoint is (``"an HTML page
(text/html, 1.2 kB) starting with '<!DOCTYPE html>'"``); :func:`structure_problem` and
:func:`torch_load_reason` say why a pickle is not a plain state dict, without passing on
torch's advice to load it unsafely.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "RECORD_SUFFIX",
    "CacheEntry",
    "CacheReport",
    "blob_mismatch",
    "describe_bytes",
    "describe_file",
    "is_markup",
    "read_record",
    "sha256_file",
    "structure_problem",
    "torch_load_reason",
    "verify_tree",
]

RECORD_SUFFIX = ".meta.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_PARTIAL = (".part", ".incomplete")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks (hashlib releases the GIL while hashing)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def blob_mismatch(path: str | Path) -> str | None:
    """For a huggingface_hub cache file (a snapshot link or its blob): why its content does not
    match the hash it is named by, or None (matches, or not named by a hash)."""
    blob = Path(path).resolve()
    name = blob.name
    if _HEX64.fullmatch(name):
        actual = sha256_file(blob)
    elif _HEX40.fullmatch(name):
        actual = _git_blob_sha1(blob)
    else:
        return None
    if actual == name:
        return None
    return f"{blob} has the hash {actual}, not the {name} it is stored under"


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The ``.meta.json`` record of a downloaded file, or None when absent or unreadable."""
    try:
        record = json.loads(Path(f"{path}{RECORD_SUFFIX}").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


# ---------------------------------------------------------------------------------- sniffing
def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 999.95:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"


def is_markup(head: bytes) -> bool:
    """True when ``head`` starts like an HTML or XML document (an error or login page, never a
    checkpoint)."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _kind(head: bytes) -> tuple[str, bool]:
    """(what ``head`` looks like, whether it is text)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        return "an empty file", False
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page", True
    if text.startswith(b"<"):
        return "an XML or HTML document", True
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data", False
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (PyTorch's checkpoint format)", False
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle", False
    if len(head) > 9 and head[8:10] == b'{"':
        return "a safetensors file", False
    if text.startswith((b"{", b"[")):
        return "JSON", True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data", False
    return (
        ("text", True) if all(c >= 32 or c in b"\t\r\n" for c in head) else ("binary data", False)
    )


def describe_bytes(head: bytes, size: int, content_type: str | None = None) -> str:
    """What a file or HTTP body is, for an error message: ``"an HTML page (text/html, 1.2 kB)
    starting with '<!DOCTYPE html>'"``. ``head``: its first bytes (64 are plenty)."""
    kind, is_text = _kind(head)
    details = ", ".join(x for x in (content_type, _size(size)) if x)
    if not head:
        return f"{kind} ({details})"
    start: str
    if is_text:
        line = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n").split("\n", 1)[0]
        start = repr(line[:40])
    else:
        start = repr(head[:16])
    return f"{kind} ({details}) starting with {start}"


def describe_file(path: str | Path, content_type: str | None = None) -> str:
    """:func:`describe_bytes` of a file on disk."""
    with open(path, "rb") as f:
        head = f.read(64)
    return describe_bytes(head, Path(path).stat().st_size, content_type)


# ---------------------------------------------------------------------------------- pickles
_MAX_DEPTH = 32  # real checkpoints nest a few levels ({"model": {"state_dict": ...}})


def torch_load_reason(exc: BaseException) -> str:
    """torch.load's complaint, without its advice to load with ``weights_only=False`` or to
    allowlist globals (both would run or trust what the file says)."""
    text = str(exc)
    found = re.search(r"WeightsUnpickler error:\s*(.*)", text, re.S)
    text = found.group(1) if found else text
    text = re.split(r"\s*(?:Please use `torch\.serialization|Check the documentation of)", text)[0]
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept = [x for x in sentences if "weights_only" not in x and "safe_globals" not in x]
    return " ".join(kept).strip() or type(exc).__name__


def structure_problem(obj: Any) -> str | None:
    """Why a loaded pickle is not a plain nested state dict (None: it is): a container that
    holds itself, nesting deeper than _MAX_DEPTH, or tensors under keys that are not strings.
    Iterative, so no input can exhaust Python's recursion limit."""
    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(obj, 0, False)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            done.add(id(node))
            continue
        if not isinstance(node, (dict, list, tuple)) or id(node) in done:
            continue
        if id(node) in on_path:
            return "it contains itself (a container that holds itself)"
        if depth >= _MAX_DEPTH:
            return f"it nests deeper than {_MAX_DEPTH} levels"
        if isinstance(node, dict):
            keys = [k for k, v in node.items() if isinstance(v, torch.Tensor)]
            bad = [k for k in keys if not isinstance(k, str)]
            if bad:
                return f"it has tensors under non-string keys ({', '.join(map(repr, bad[:5]))})"
            children = list(node.values())
        else:
            children = list(node)
        on_path.add(id(node))
        stack.append((node, depth, True))
        stack.extend(
            (child, depth + 1, False)
            for child in children
            if isinstance(child, (dict, list, tuple))
        )
    return None


# ---------------------------------------------------------------------------------- verify
Status = Literal["ok", "unrecorded", "corrupt", "partial"]
_STATUSES: tuple[Status, ...] = ("ok", "unrecorded", "corrupt", "partial")


@dataclass(frozen=True)
class CacheEntry:
    """One checked file: ``ok`` (matches its recorded hash), ``unrecorded`` (no hash known:
    written by an older audiozoo), ``corrupt`` (differs from its record; it is fetched or
    converted again when next loaded), ``partial`` (left by an interrupted download; removed
    by the next download of that file)."""

    path: Path
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class CacheReport:
    """What :func:`verify_tree` found. ``ok`` is False when a file is corrupt."""

    root: Path
    entries: tuple[CacheEntry, ...]

    @property
    def problems(self) -> tuple[CacheEntry, ...]:
        return tuple(e for e in self.entries if e.status == "corrupt")

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        counts = {s: sum(e.status == s for e in self.entries) for s in _STATUSES}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        lines = [f"cache {self.root}: {len(self.entries)} file(s) checked ({summary or 'empty'})"]
        for e in self.entries:
            rel = e.path.relative_to(self.root) if self.root in e.path.parents else e.path
            lines.append(f"{e.status:<10}  {rel}" + (f": {e.detail}" if e.detail else ""))
        if self.problems:
            lines.append(
                "corrupt files are fetched or converted again when next loaded "
                "(e.g. `audiozoo download NAME`), or delete them"
            )
        return "\n".join(lines)


def _check_download(path: Path) -> CacheEntry:
    record = read_record(path)
    if record is None or not isinstance(record.get("sha256"), str):
        return CacheEntry(path, "unrecorded", "no recorded sha256 (fetched by an older audiozoo)")
    actual = sha256_file(path)
    if actual != record["sha256"]:
        return CacheEntry(
            path, "corrupt", f"sha256 {actual} differs from the recorded {record['sha256']}"
        )
    return CacheEntry(path, "ok")


def _check_converted(path: Path) -> CacheEntry:
    try:
        meta = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
        recorded = meta.get("sha256") if isinstance(meta, dict) else None
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, str):
        return CacheEntry(path, "unrecorded", "no recorded sha256 (converted by an older audiozoo)")
    actual = sha256_file(path)
    if actual != recorded:
        return CacheEntry(path, "corrupt", f"sha256 {actual} differs from the recorded {recorded}")
    return CacheEntry(path, "ok")


def _check_blob(path: Path) -> CacheEntry:
    if not (_HEX64.fullmatch(path.name) or _HEX40.fullmatch(path.name)):
        return CacheEntry(path, "unrecorded", "not named by its hash")
    problem = blob_mismatch(path)
    return CacheEntry(path, "corrupt", problem) if problem else CacheEntry(path, "ok")


def verify_tree(root: str | Path) -> CacheReport:
    """Re-hash every file of the audiozoo cache folder ``root`` against its record."""
    root = Path(root)
    entries: list[CacheEntry] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).parts
        if path.name.endswith(_PARTIAL):
            entries.append(CacheEntry(path, "partial", "left by an interrupted download"))
        elif path.name.endswith((".lock", RECORD_SUFFIX)):
            continue
        elif rel[0] == "downloads" and len(rel) == 2:
            entries.append(_check_download(path))
        elif rel[0] == "converted" and path.name == "model.safetensors":
            entries.append(_check_converted(path))
        elif rel[0] == "hub" and len(rel) > 2 and rel[-2] == "blobs":
            entries.append(_check_blob(path))
    return CacheReport(root, tuple(entries))
