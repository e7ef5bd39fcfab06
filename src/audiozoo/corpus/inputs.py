"""Inputs of a corpus run: finding the audio files, this process's share, its cores."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import soundfile

__all__ = [
    "AUDIO_SUFFIXES",
    "LIST_SUFFIXES",
    "Input",
    "cpu_share",
    "find_inputs",
    "plan_cpu",
    "resolve_shard",
]

LIST_SUFFIXES = (".txt", ".lst", ".list")
AUDIO_SUFFIXES = tuple(sorted({f".{f.lower()}" for f in soundfile.available_formats()} | {".oga"}))


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
