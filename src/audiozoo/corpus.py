"""Embedding a corpus: audio files in, one embedding file per input (or one shard per process) out.

This is what ``audiozoo embed`` runs; the same functions work from Python::

    import audiozoo
    from audiozoo.corpus import embed_corpus, merge_shards

    model = audiozoo.create("mn10.as")
    summary = embed_corpus(model, ["clips/"], "embeddings/", frames=True)
    print(summary.text())

How a run goes:

1. **Inputs** (:func:`find_inputs`): files, folders (searched recursively for audio files
   soundfile reads) and list files (``.txt``/``.lst``/``.list``: one path per line, relative
   paths relative to the list file, ``#`` comments). Each input gets a **key**: its path relative
   to the common folder of all inputs, with ``/`` separators. Keys are sorted; a file named twice
   is one input.
2. **Share** (:func:`resolve_shard`): ``--shard i/n``, else ``RANK``/``WORLD_SIZE`` (set by
   ``torchrun``), else the whole list. Process ``i`` of ``n`` takes keys ``i, i + n, ...``.
3. **Resume**: inputs whose output already exists (a per-file output, or a key in any shard of
   the output folder) are skipped; outputs are written atomically (temporary file + rename), so
   a run killed at any point leaves only complete files.
4. **Decoding** in DataLoader workers (:class:`AudioFiles`): soundfile, mixed to mono, resampled
   to the model's rate with a kernel-caching :class:`~audiozoo.resample.Resampler`. A file that
   fails to decode is recorded with its reason and never stops the run.
5. **The model** on batches of clips of any lengths (``model.embed(list_of_clips)``: every file
   gets exactly what it gets alone), under ``torch.inference_mode``. Within the share, files are
   ordered by size so that batches hold clips of similar length.
6. **Outputs** (:class:`PerFileWriter`, :class:`ShardWriter`) and a :class:`Summary` (files,
   seconds of audio, throughput, time in decoding vs the model, failures with reasons), also
   written to ``summary-<shard>.json``.

Cores (:func:`plan_cpu`): decoding workers and the model's intra-op threads share the process's
cores (its CPU affinity divided by ``LOCAL_WORLD_SIZE`` under torchrun) without oversubscribing
them: from 4 cores on ``workers + threads == cores``; below, the model gets every core and one
decoding worker runs at the lowest CPU priority (nice 19), taking only the cycles the model
leaves idle. DataLoader workers run torch with one thread each.

Output formats (``format=``):

- ``"npz"`` (default): ``<output>/<key without extension>.npz`` per file with ``embedding``
  (C,), and with ``frames=True`` also ``frames`` (T, C) and ``timestamps`` (T,) (seconds of each
  frame's start); with ``layers`` each array name gets ``@<layer>`` (``embedding@blocks.3``).
- ``"npy"``: ``<key>.npy`` per file holding one array: the clip embedding, or with
  ``frames=True`` the frame embeddings (one layer only).
- ``"shard"``: one ``shard-<i>-of-<n>.npz`` per process: ``file`` (M,), ``seconds`` (M,),
  ``embedding`` (M, C), with frames ``frames`` (sum of T, C), ``frame_offsets`` (M + 1,) (file
  ``m`` has frames ``frame_offsets[m]:frame_offsets[m + 1]``) and ``timestamps``; layer suffixes as
  above. Written in parts while the run goes (resumable) and joined at the end.
- ``"parquet"`` (needs pyarrow): the same per process as ``shard-<i>-of-<n>.parquet``, one row per
  file, list columns for embeddings, frames and timestamps.

:func:`merge_shards` checks that every input of ``manifest.txt`` (written by every process: the
sorted keys of the whole run) is present exactly once (or failed to decode, with the reason in a
``summary-*.json``), and joins the shards of several processes into one ``embeddings.npz`` /
``embeddings.parquet`` in manifest order (a single process's shard is already the whole run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from ._layers import layer_indices
from .model import AudioModel
from .resample import Resampler

__all__ = [
    "AudioFiles",
    "Decoded",
    "Input",
    "MergeReport",
    "PerFileWriter",
    "ShardWriter",
    "Summary",
    "cpu_share",
    "embed_corpus",
    "find_inputs",
    "merge_shards",
    "plan_cpu",
    "read_embeddings",
    "read_mono",
    "resolve_shard",
]

FORMATS = ("npz", "npy", "shard", "parquet")
LIST_SUFFIXES = (".txt", ".lst", ".list")
AUDIO_SUFFIXES = tuple(sorted({f".{f.lower()}" for f in soundfile.available_formats()} | {".oga"}))
MANIFEST = "manifest.txt"
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


# ---------------------------------------------------------------------------------- inputs
@dataclasses.dataclass(frozen=True)
class Input:
    """One audio file: ``key`` (its name in every output) and ``path`` (absolute)."""

    key: str
    path: str


def find_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Input]:
    """Audio files named by files, folders and list files, with their keys, sorted by key.

    Raises:
        FileNotFoundError: a folder or list file that does not exist, or no input at all.
    """
    paths: dict[str, None] = {}
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES:
                    paths[str(f.resolve())] = None
        elif p.suffix.lower() in LIST_SUFFIXES:
            if not p.is_file():
                raise FileNotFoundError(f"list file {p} does not exist")
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line).expanduser()
                    paths[str((q if q.is_absolute() else p.parent / q).resolve())] = None
        else:  # a file; a missing one becomes a failure of the run, not an error here
            paths[str(p.resolve())] = None
    if not paths:
        raise FileNotFoundError(f"no audio files in {[str(i) for i in inputs]}")
    names = list(paths)
    root = os.path.commonpath([os.path.dirname(n) for n in names])
    items = [Input(Path(os.path.relpath(n, root)).as_posix(), n) for n in names]
    return sorted(items, key=lambda i: i.key)


def resolve_shard(shard: str | tuple[int, int] | None = None) -> tuple[int, int]:
    """``(index, count)`` of this process: ``shard`` ("i/n" or a pair), else ``RANK`` /
    ``WORLD_SIZE`` from the environment (torchrun, SLURM with those set), else ``(0, 1)``."""
    if shard is None:
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None or world is None:
            return 0, 1
        shard = (int(rank), int(world))
    if isinstance(shard, str):
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes INDEX/COUNT, e.g. 0/4; got {shard!r}") from None
    else:
        i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard {i}/{n}: the index must be in 0..{n - 1}")
    return i, n


def cpu_share() -> int:
    """Cores this process may use: its CPU affinity divided by ``LOCAL_WORLD_SIZE`` (processes
    on this node under torchrun), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def plan_cpu(
    workers: int | None = None, threads: int | None = None, *, device: str = "cpu"
) -> tuple[int, int]:
    """``(decoding workers, model threads)`` for this process's share of the cores
    (:func:`cpu_share`).

    On the CPU, decoding (read + resample) is 15-20 % of the work for the EfficientAT models
    (``python -m benchmarks --only corpus``). From 4 cores on it gets one worker per 4 cores and
    the model the other cores: ``workers + threads == cores``. Below 4 cores a whole core for
    decoding would leave the model idle-starved, so the model gets every core and one worker
    decodes **at the lowest CPU priority** (nice 19, see :func:`embed_corpus`): it runs only on
    cycles the model's threads leave idle and never takes a core from them. On a GPU the model
    needs one thread and the workers get the rest. An explicit value is kept and the other
    fitted around it.
    """
    cores = cpu_share()
    gpu = not device.startswith("cpu")
    if workers is None:
        if gpu:
            workers = max(0, cores - (threads or 1))
        elif threads is not None:
            workers = max(0, cores - threads) if cores >= 4 else 1
        else:
            workers = cores // 4 if cores >= 4 else 1
    if threads is None:
        threads = 1 if gpu else max(1, cores - workers) if cores >= 4 else cores
    return max(0, workers), max(1, threads)


# ---------------------------------------------------------------------------------- decoding
@dataclasses.dataclass
class Decoded:
    """One decoded file: the mono waveform at the model's rate, or the reason it failed."""

    item: Input
    wave: torch.Tensor | None
    seconds: float = 0.0
    decode_s: float = 0.0
    error: str | None = None


class AudioFiles(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Files -> :class:`Decoded` (soundfile, mean over channels, resampled to ``sample_rate``).
    Never raises for a bad file: the item carries the error instead."""

    def __init__(self, items: Sequence[Input], sample_rate: int) -> None:
        self.items = list(items)
        self.sample_rate = sample_rate
        self.resampler = Resampler()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded:
        item = self.items[index]
        start = time.perf_counter()
        try:
            wave, rate = read_mono(item.path)
            if not bool(torch.isfinite(wave).all()):
                raise ValueError("the file holds NaN or Inf samples")
            seconds = wave.shape[0] / rate
            if rate != self.sample_rate:
                wave = self.resampler(wave, int(rate), self.sample_rate)
            wave = wave.contiguous()
        except Exception as exc:  # any unreadable file is one failure, never the end of the run
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Decoded(
                item, None, 0.0, time.perf_counter() - start, f"{type(exc).__name__}: {reason}"
            )
        return Decoded(item, wave, seconds, time.perf_counter() - start)


def read_mono(path: str) -> tuple[torch.Tensor, int]:
    """(N,) float32 mono mix of an audio file and its rate. 16-bit PCM is read as integers and
    scaled by 1 / 32768 (the values soundfile's float conversion gives); channels are averaged
    in torch (numpy's ``mean(axis=1)`` over 2 columns was 6 ms for 10 s of stereo at 44.1 kHz)."""
    try:
        sound = soundfile.SoundFile(path)
    except RuntimeError:  # libsndfile says "System error" for a missing or unreadable file
        with open(path, "rb"):  # the OS's reason: FileNotFoundError, PermissionError, ...
            pass
        raise
    with sound as f:
        pcm16 = f.subtype == "PCM_16"
        data = f.read(dtype="int16" if pcm16 else "float32", always_2d=True)
        rate = f.samplerate
    if data.shape[0] == 0:
        raise ValueError("the file holds no samples")
    x = torch.from_numpy(data)
    channels = x.shape[1]
    if pcm16:
        mono = x[:, 0].to(torch.float32)
        for c in range(1, channels):
            mono += x[:, c]
        wave = mono.mul_(1.0 / (32768 * channels))
    else:
        wave = x[:, 0].clone() if channels == 1 else x.mean(dim=1)
    return wave, rate


def _collate(batch: list[Decoded]) -> list[Decoded]:
    return batch


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # one thread per decoding worker


def _background_worker_init(_: int) -> None:
    """A decoding worker that shares cores with the model: lowest priority, so it only gets the
    cycles the model's threads leave idle."""
    _worker_init(_)
    with contextlib.suppress(OSError):
        os.nice(19)


# ---------------------------------------------------------------------------------- writing
def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
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


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` (uncompressed, loadable with ``allow_pickle=False``), any array names
    (``np.savez`` itself cannot take one called ``file``)."""

    def write(f: Any) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, value in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

    _atomic_write(path, write)


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
            _atomic_write(self.path(record["file"]), lambda f: np.save(f, value))
        else:
            _save_npz(self.path(record["file"]), arrays)

    def close(self) -> None:
        pass


class ShardWriter:
    """One shard file per process; written in parts of ``part_size`` files so that a killed run
    keeps what it finished, joined into ``shard-<i>-of-<n>.<ext>`` by :meth:`close`."""

    def __init__(
        self, output: Path, index: int, count: int, fmt: str = "shard", part_size: int = 64
    ) -> None:
        if fmt == "parquet":
            _require_pyarrow()
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
        for path in _shard_files(self.output):
            keys.update(_read_records(path, keys_only=True)[0])
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
        _write_records(self.output / f"{self.name}.part-{number:06d}{self.ext}", self.pending)
        self.pending = []

    def close(self) -> None:
        """Flush, then join this process's shard and parts into one file."""
        self.flush()
        files = self._files()
        if not files or (len(files) == 1 and ".part-" not in files[0].name):
            return
        records: dict[str, Record] = {}  # by key: a part left by a crash in here counts once
        for path in files:
            for r in _read_records(path)[1]:
                records.setdefault(r["file"], r)
        _write_records(self.output / f"{self.name}{self.ext}", list(records.values()))
        for path in files:
            if ".part-" in path.name:
                path.unlink()


def _require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError(
            "format 'parquet' needs pyarrow: pip install pyarrow (or use --format shard, NPZ)"
        ) from None
    return pyarrow


def _shard_files(output: Path) -> list[Path]:
    return sorted(
        p
        for p in output.glob("shard-*-of-*")
        if p.suffix in (".npz", ".parquet") and not p.name.startswith(".")
    )


def _write_records(path: Path, records: list[Record]) -> None:
    if path.suffix == ".parquet":
        pa = _require_pyarrow()
        columns: dict[str, Any] = {
            "file": [r["file"] for r in records],
            "seconds": [r["seconds"] for r in records],
        }
        for name in [k for k in records[0] if k not in ("file", "seconds")]:
            columns[name] = [np.asarray(r[name]).tolist() for r in records]
        table = pa.table(columns)

        def write(f: Any) -> None:
            pa.parquet.write_table(table, f)

        _atomic_write(path, write)
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
    _save_npz(path, arrays)


def _read_records(path: Path, keys_only: bool = False) -> tuple[list[str], list[Record]]:
    """(keys, records) of a shard file (records empty with ``keys_only``)."""
    if path.suffix == ".parquet":
        pa = _require_pyarrow()
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


# ---------------------------------------------------------------------------------- summary
@dataclasses.dataclass
class Summary:
    """What a run did. ``failures``: key -> reason (those files are retried by the next run)."""

    shard: tuple[int, int]
    total: int = 0
    skipped: int = 0
    done: int = 0
    audio_seconds: float = 0.0
    wall_s: float = 0.0
    decode_s: float = 0.0
    model_s: float = 0.0
    write_s: float = 0.0
    workers: int = 0
    threads: int = 1
    background: bool = False  # the workers run at the lowest priority beside the model
    failures: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def decode_share(self) -> float:
        """Decoding time (summed over workers) / (decoding + model) time."""
        busy = self.decode_s + self.model_s
        return self.decode_s / busy if busy > 0 else 0.0

    def text(self) -> str:
        i, n = self.shard
        lines = [
            f"shard {i}/{n}: {self.done} files embedded, {self.skipped} already done, "
            f"{len(self.failures)} failed (of {self.total})",
            f"audio: {self.audio_seconds:.1f} s in {self.wall_s:.1f} s wall: "
            f"{self.files_per_s:.2f} files/s, {self.audio_seconds / max(self.wall_s, 1e-9):.1f}x "
            "real time",
            f"time: decoding {self.decode_s:.1f} s (in {self.workers} workers"
            f"{' at low priority' if self.background else ''}), model "
            f"{self.model_s:.1f} s ({self.threads} threads), writing {self.write_s:.1f} s; "
            f"decoding {100 * self.decode_share:.0f} % of decoding + model",
        ]
        lines += [f"failed: {k}: {why}" for k, why in sorted(self.failures.items())]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(files_per_s=self.files_per_s, decode_share=self.decode_share)
        return out


class _Progress:
    """A one-line progress bar on a terminal (stderr), silent otherwise."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        width = 30
        filled = int(width * done / max(self.total, 1))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} files, "
            f"{failed} failed, {rate:.1f} files/s, ETA {eta:.0f} s "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


# ---------------------------------------------------------------------------------- the run
def _records(
    model: AudioModel,
    batch: list[Decoded],
    frames: bool,
    layers: Any,
) -> list[Record]:
    """Embeddings of the decoded clips of ``batch`` (one forward for the whole batch)."""
    waves = [d.wave for d in batch]
    out = model.embed(waves, frames="both" if frames else False, layers=layers)
    per_layer = out if layers is not None else {None: out}
    hops = model.layer_frame_hops
    records: list[Record] = [{"file": d.item.key, "seconds": d.seconds} for d in batch]
    for name, value in per_layer.items():
        tag = f"@{name}" if name is not None else ""
        clip, seq = value if frames else (value, None)
        hop = hops[name] if name is not None else model.frame_hop
        for m, r in enumerate(records):
            r["embedding" + tag] = clip[m].float().cpu().numpy()
            if seq is not None:
                f = seq[m].float().cpu().numpy()
                r["frames" + tag] = f
                r["timestamps" + tag] = (np.arange(len(f)) * hop).astype(np.float64)
    return records


def _batches(
    dataset: AudioFiles, batch_size: int, workers: int, background: bool = False
) -> Iterator[list[Decoded]]:
    if workers == 0:
        for start in range(0, len(dataset), batch_size):
            yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_background_worker_init if background else _worker_init,
        prefetch_factor=2,
        persistent_workers=False,
    )
    yield from loader


def embed_corpus(
    model: AudioModel,
    inputs: Sequence[str | os.PathLike[str]] | Sequence[Input],
    output: str | os.PathLike[str],
    *,
    frames: bool = False,
    layers: Any = None,
    batch_size: int = 16,
    workers: int | None = None,
    threads: int | None = None,
    format: str = "npz",
    shard: str | tuple[int, int] | None = None,
    progress: bool | None = None,
    part_size: int = 64,
    on_batch: Callable[[Summary], None] | None = None,
) -> Summary:
    """Embed every input file of this process's share into ``output`` (see the module docstring).

    Args:
        model: the model (its device is used; put it in eval mode).
        inputs: files, folders and list files, or :func:`find_inputs` items.
        output: output folder (created).
        frames: also write frame embeddings and their timestamps.
        layers: None (the backbone output), ``"all"``, or layer names / indices (``embed``'s).
        batch_size: clips per model call.
        workers, threads: decoding workers and model threads (:func:`plan_cpu` fills the rest).
        format: ``"npz"``, ``"npy"``, ``"shard"`` (NPZ) or ``"parquet"``.
        shard: ``"i/n"`` or ``(i, n)``; None: from ``RANK``/``WORLD_SIZE``.
        progress: progress bar on stderr (None: when stderr is a terminal).
        part_size: files per part of a shard (what a killed run loses at most).
        on_batch: called with the running summary after each batch.

    Returns:
        The :class:`Summary` (also written to ``output/summary-<shard>.json``).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if (
        format == "npy"
        and layers is not None
        and not (isinstance(layers, (str, int)) and layers != "all")
    ):
        raise ValueError("format 'npy' holds one array per file: choose one layer, or use npz")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if layers is not None:
        layer_indices(model.layer_names, layers, model.arch)  # bad names fail before any file
    start = time.perf_counter()
    index, count = resolve_shard(shard)
    items = (
        list(inputs)
        if inputs and all(isinstance(i, Input) for i in inputs)
        else find_inputs(inputs)  # type: ignore[arg-type]
    )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    manifest = "".join(f"{i.key}\n" for i in items)  # type: ignore[union-attr]
    _atomic_write(out / MANIFEST, lambda f: f.write(manifest.encode("utf-8")))
    mine = items[index::count]
    writer: PerFileWriter | ShardWriter
    if format in ("npz", "npy"):
        writer = PerFileWriter(out, items, f".{format}")  # type: ignore[arg-type]
    else:
        writer = ShardWriter(out, index, count, format, part_size)
    done = writer.done()
    pending = [i for i in mine if i.key not in done]  # type: ignore[union-attr]
    # Similar lengths together: fewer distinct lengths per batch (file size ~ duration).
    pending.sort(key=lambda i: (_size(i.path), i.key))  # type: ignore[union-attr]
    n_workers, n_threads = plan_cpu(workers, threads, device=str(model.device))
    summary = Summary((index, count), len(mine), len(mine) - len(pending), workers=n_workers)
    summary.threads = n_threads
    bar = _Progress(len(pending), progress)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        dataset = AudioFiles(pending, model.sample_rate)  # type: ignore[arg-type]
        finished = 0
        background = n_workers + (0 if model.device.type != "cpu" else n_threads) > cpu_share()
        summary.background = background and n_workers > 0
        for batch in _batches(dataset, batch_size, n_workers, background):
            good = []
            for d in batch:
                summary.decode_s += d.decode_s
                if d.error is not None:
                    summary.failures[d.item.key] = d.error
                else:
                    good.append(d)
            records = _run_batch(model, good, frames, layers, summary)
            t0 = time.perf_counter()
            for record in records:
                writer.add(record)
            summary.write_s += time.perf_counter() - t0
            finished += len(batch)
            summary.done += len(records)
            summary.audio_seconds += sum(r["seconds"] for r in records)
            summary.wall_s = time.perf_counter() - start
            bar.update(finished, len(summary.failures))
            if on_batch is not None:
                on_batch(summary)
        t0 = time.perf_counter()
        writer.close()
        summary.write_s += time.perf_counter() - t0
    finally:
        bar.close()
        torch.set_num_threads(saved_threads)
    summary.wall_s = time.perf_counter() - start
    name = f"summary-{index:05d}-of-{count:05d}.json"
    text = json.dumps(summary.to_json(), indent=2)
    _atomic_write(out / name, lambda f: f.write(text.encode("utf-8")))
    return summary


def _run_batch(
    model: AudioModel, good: list[Decoded], frames: bool, layers: Any, summary: Summary
) -> list[Record]:
    """One forward for the batch; if it fails, each clip alone, so one bad clip fails alone."""
    if not good:
        return []
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            return _records(model, good, frames, layers)
    except (RuntimeError, ValueError, TypeError) as batch_error:
        if len(good) == 1:
            summary.failures[good[0].item.key] = f"{type(batch_error).__name__}: {batch_error}"
            return []
        records = []
        for d in good:
            records += _run_batch(model, [d], frames, layers, summary)
        return records
    finally:
        summary.model_s += time.perf_counter() - t0


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


# ---------------------------------------------------------------------------------- merging
@dataclasses.dataclass
class MergeReport:
    """The check of a run's outputs against its manifest."""

    expected: int
    found: int
    missing: list[str]
    duplicates: dict[str, int]
    unexpected: list[str]
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    merged: Path | None = None

    @property
    def ok(self) -> bool:
        """Every input is present exactly once, or failed to decode with a recorded reason."""
        return not (self.missing or self.duplicates or self.unexpected)

    @property
    def complete(self) -> bool:
        """Every input is present exactly once."""
        return self.ok and not self.failed

    def text(self) -> str:
        head = (
            f"{self.found} of {self.expected} inputs present"
            + (f", {len(self.failed)} failed (reasons in summary-*.json)" if self.failed else "")
            + (f"; merged into {self.merged}" if self.merged else "")
            + ("" if self.ok else "; NOT COMPLETE")
        )
        lines = [head]
        lines += [f"missing: {k}" for k in self.missing[:20]]
        if len(self.missing) > 20:
            lines.append(f"... and {len(self.missing) - 20} more missing")
        lines += [f"duplicate ({n} times): {k}" for k, n in sorted(self.duplicates.items())]
        lines += [f"not in the manifest: {k}" for k in self.unexpected[:20]]
        return "\n".join(lines)


def merge_shards(
    output: str | os.PathLike[str], *, inputs: Iterable[str] | None = None, write: bool = True
) -> MergeReport:
    """Check that every input is present exactly once in ``output``; join the shards.

    Args:
        output: the output folder of a run (all processes).
        inputs: the expected keys; default: the run's ``manifest.txt``.
        write: write ``embeddings.npz`` / ``embeddings.parquet`` (shards, in manifest order) when
            the check passes.
    """
    out = Path(output)
    if inputs is None:
        manifest = out / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: is {out} the output of audiozoo embed?")
        expected = [k for k in manifest.read_text(encoding="utf-8").splitlines() if k]
    else:
        expected = list(inputs)
    # joined shards and the parts of a run that was stopped (not an earlier merge's output)
    shards = _shard_files(out)
    counts: dict[str, int] = {}
    records: dict[str, Record] = {}
    if shards:
        for path in shards:
            keys, recs = _read_records(path, keys_only=not write)
            for k in keys:
                counts[k] = counts.get(k, 0) + 1
            records.update({r["file"]: r for r in recs})
    else:  # per-file outputs: one file per key, by construction at most once
        items = [Input(k, k) for k in expected]
        for suffix in (".npz", ".npy"):
            w = PerFileWriter(out, items, suffix)
            for k in w.done():
                counts[k] = counts.get(k, 0) + 1
    failed: dict[str, str] = {}
    for path in sorted(out.glob("summary-*-of-*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            failed.update(json.loads(path.read_text(encoding="utf-8"))["failures"])
    wanted = set(expected)
    report = MergeReport(
        expected=len(expected),
        found=len(wanted & set(counts)),
        missing=[k for k in expected if k not in counts and k not in failed],
        duplicates={k: n for k, n in counts.items() if n > 1},
        unexpected=sorted(set(counts) - wanted),
        failed={k: v for k, v in failed.items() if k in wanted and k not in counts},
    )
    if write and shards and report.ok:
        if len(shards) == 1:  # one process: its shard is the whole run, no second copy
            report.merged = shards[0]
        else:
            report.merged = out / f"embeddings{shards[0].suffix}"
            _write_records(report.merged, [records[k] for k in expected if k in records])
    return report


def read_embeddings(path: str | os.PathLike[str]) -> list[Record]:
    """Read a shard or ``embeddings.npz`` / ``.parquet``: one dict per file (``file``,
    ``seconds``, ``embedding``, and ``frames`` / ``timestamps`` when written)."""
    return _read_records(Path(path))[1]
