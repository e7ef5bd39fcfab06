"""The run: this process's share of the inputs through the model into the outputs."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._layers import layer_indices
from ..model import AudioModel
from .decoding import AudioFiles, Decoded, batches
from .inputs import Input, cpu_share, find_inputs, plan_cpu, resolve_shard
from .summary import Progress, Summary
from .writers import MANIFEST, PerFileWriter, Record, ShardWriter, atomic_write

__all__ = ["FORMATS", "embed_corpus"]

FORMATS = ("npz", "npy", "shard", "parquet")


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
    """Embed every input file of this process's share into ``output`` (see :mod:`audiozoo.corpus`).

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
    atomic_write(out / MANIFEST, lambda f: f.write(manifest.encode("utf-8")))
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
    bar = Progress(len(pending), progress)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        dataset = AudioFiles(pending, model.sample_rate)  # type: ignore[arg-type]
        finished = 0
        background = n_workers + (0 if model.device.type != "cpu" else n_threads) > cpu_share()
        summary.background = background and n_workers > 0
        for batch in batches(dataset, batch_size, n_workers, background):
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
    atomic_write(out / name, lambda f: f.write(text.encode("utf-8")))
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
