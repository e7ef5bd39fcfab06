"""Outputs of a corpus run: atomic writes, per-file outputs, shards, reading them back."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import Input

__all__ = ["MANIFEST", "PerFileWriter", "Record", "ShardWriter", "read_embeddings"]

MANIFEST = "manifest.txt"  # the sorted keys of the whole run, written by every process
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(file)`` into a temporary file beside ``path``, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp's 0600 -> what open() would have given
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` (uncompressed, loadable with ``allow_pickle=False``), any array names
    (``np.savez`` itself cannot take one called ``file``)."""

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, value in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

    atomic_write(path, write)


Record = dict[str, Any]  # "file", "seconds", and "embedding[@layer]" / "frames[@layer]" / ...


class PerFileWriter:
    """One ``.npz`` (or ``.npy``) per input, at ``output / key`` with the extension replaced
    (kept when two inputs would get the same name)."""

    def __init__(self, output: Path, items: Sequence[Input], suffix: str = ".npz") -> None:
        self.output, self.suffix = output, suffix
        stems = [str(Path(i.key).with_suffix("")) for i in items]
        unique = len(set(stems)) == len(stems)
        self._names = {
            i.key: (s if unique else i.key) + suffix for i, s in zip(items, stems, strict=True)
        }

    def path(self, key: str) -> Path:
        return self.output / self._names[key]

    def done(self) -> set[str]:
        return {k for k in self._names if self.path(k).is_file()}

    def add(self, record: Record) -> None:
        arrays = {k: v for k, v in record.items() if isinstance(v, np.ndarray)}
        if self.suffix == ".npy":
            (value,) = arrays.values()
            atomic_write(self.path(record["file"]), lambda f: np.save(f, value))
        else:
            save_npz(self.path(record["file"]), arrays)

    def close(self) -> None:
        pass


class ShardWriter:
    """One shard file per process; written in parts of ``part_size`` files so that a killed run
    keeps what it finished, joined into ``shard-<i>-of-<n>.<ext>`` by :meth:`close`."""

    def __init__(
        self, output: Path, index: int, count: int, fmt: str = "shard", part_size: int = 64
    ) -> None:
        if fmt == "parquet":
            require_pyarrow()
        self.output, self.fmt, self.part_size = output, fmt, part_size
        self.ext = ".parquet" if fmt == "parquet" else ".npz"
        self.name = f"shard-{index:05d}-of-{count:05d}"
        self.pending: list[Record] = []

    def _files(self) -> list[Path]:
        return sorted(self.output.glob(f"{self.name}{self.ext}")) + sorted(
            self.output.glob(f"{self.name}.part-*{self.ext}")
        )

    def done(self) -> set[str]:
        """Keys in any shard of the output folder (a resumed run may use another count)."""
        keys: set[str] = set()
        for path in shard_files(self.output):
            keys.update(read_records(path, keys_only=True)[0])
        return keys

    def add(self, record: Record) -> None:
        self.pending.append(record)
        if len(self.pending) >= self.part_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        parts = sorted(self.output.glob(f"{self.name}.part-*{self.ext}"))
        number = 1 + max((int(p.name.split(".part-")[1].split(".")[0]) for p in parts), default=0)
        write_records(self.output / f"{self.name}.part-{number:06d}{self.ext}", self.pending)
        self.pending = []

    def close(self) -> None:
        """Flush, then join this process's shard and parts into one file."""
        self.flush()
        files = self._files()
        if not files or (len(files) == 1 and ".part-" not in files[0].name):
            return
        records: dict[str, Record] = {}  # by key: a part left by a crash in here counts once
        for path in files:
            for r in read_records(path)[1]:
                records.setdefault(r["file"], r)
        write_records(self.output / f"{self.name}{self.ext}", list(records.values()))
        for path in files:
            if ".part-" in path.name:
                path.unlink()


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError(
            "format 'parquet' needs pyarrow: pip install pyarrow (or use --format shard, NPZ)"
        ) from None
    return pyarrow


def shard_files(output: Path) -> list[Path]:
    return sorted(
        p
        for p in output.glob("shard-*-of-*")
        if p.suffix in (".npz", ".parquet") and not p.name.startswith(".")
    )


def write_records(path: Path, records: list[Record]) -> None:
    if path.suffix == ".parquet":
        pa = require_pyarrow()
        columns: dict[str, Any] = {
            "file": [r["file"] for r in records],
            "seconds": [r["seconds"] for r in records],
        }
        for name in [k for k in records[0] if k not in ("file", "seconds")]:
            columns[name] = [np.asarray(r[name]).tolist() for r in records]
        table = pa.table(columns)

        def write(f: Any) -> None:
            pa.parquet.write_table(table, f)

        atomic_write(path, write)
        return
    arrays: dict[str, np.ndarray] = {
        "file": np.array([r["file"] for r in records], dtype=np.str_),
        "seconds": np.array([r["seconds"] for r in records], dtype=np.float64),
    }
    for name in [k for k in records[0] if k not in ("file", "seconds")]:
        values = [np.asarray(r[name]) for r in records]
        if name.startswith(("frames", "timestamps")):  # ragged: concatenated with offsets
            arrays[name] = np.concatenate(values)
            if name.startswith("frames"):
                offsets = np.cumsum([0] + [len(v) for v in values])
                arrays[name.replace("frames", "frame_offsets", 1)] = offsets.astype(np.int64)
        else:
            arrays[name] = np.stack(values)
    save_npz(path, arrays)


def read_records(path: Path, keys_only: bool = False) -> tuple[list[str], list[Record]]:
    """(keys, records) of a shard file (records empty with ``keys_only``)."""
    if path.suffix == ".parquet":
        pa = require_pyarrow()
        table = pa.parquet.read_table(path, columns=["file"] if keys_only else None)
        keys = [str(k) for k in table.column("file").to_pylist()]
        if keys_only:
            return keys, []
        rows = table.to_pylist()
        return keys, [
            {
                k: (np.asarray(v, dtype=np.float32) if isinstance(v, list) else v)
                for k, v in r.items()
            }
            for r in rows
        ]
    with np.load(path, allow_pickle=False) as z:
        keys = [str(k) for k in z["file"]]
        if keys_only:
            return keys, []
        data = {k: z[k] for k in z.files}
    records: list[Record] = [
        {"file": k, "seconds": float(s)} for k, s in zip(keys, data["seconds"], strict=True)
    ]
    for name, value in data.items():
        if name in ("file", "seconds") or name.startswith("frame_offsets"):
            continue
        if name.startswith(("frames", "timestamps")):
            suffix = name.split("@", 1)[1] if "@" in name else None
            offsets = data["frame_offsets" + (f"@{suffix}" if suffix else "")]
            for m, r in enumerate(records):
                r[name] = value[offsets[m] : offsets[m + 1]]
        else:
            for m, r in enumerate(records):
                r[name] = value[m]
    return keys, records


def read_embeddings(path: str | os.PathLike[str]) -> list[Record]:
    """Read a shard or ``embeddings.npz`` / ``.parquet``: one dict per file (``file``,
    ``seconds``, ``embedding``, and ``frames`` / ``timestamps`` when written)."""
    return read_records(Path(path))[1]
