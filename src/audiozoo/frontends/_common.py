"""Helpers shared by the frontends: input checks, the autocast guard and CPU batch chunking."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable

import torch

from .._errors import AudioTypeError, InvalidAudioError, RegistryError

__all__ = [
    "MAX_FILTERBANK",
    "MAX_N_FFT",
    "by_cpu_chunks",
    "check_filterbank_size",
    "check_waveform",
    "cpu_batch_chunks",
    "float32_no_autocast",
    "single_threaded_pool",
]

# Samples per chunk of a CPU batch (see cpu_batch_chunks): one 10 s clip at 32 kHz is 320,000.
CPU_CHUNK_SAMPLES = 1 << 18

# Size bounds, checked before any buffer is built: a frontend's window and filterbank are computed
# in __init__ from these numbers, so a config.json with n_fft = 10**9 would otherwise allocate
# gigabytes before anything could refuse it. The bounds are far above every published setting
# (n_fft 1024, 128 mels) and keep the buffers under 32 MB.
MAX_N_FFT = 1 << 16  # 65536 samples: 2 s at 32 kHz
MAX_FILTERBANK = 1 << 23  # n_mels * (n_fft // 2 + 1) values (32 MB of float32)


def check_filterbank_size(n_mels: int, n_fft: int, where: str) -> None:
    """Refuse an FFT or a filterbank above the size bounds (see ``MAX_N_FFT``)."""
    if n_fft > MAX_N_FFT:
        raise RegistryError(
            f"{where}: n_fft = {n_fft} is above the limit of {MAX_N_FFT} samples; audio models "
            "use 512 to 4096"
        )
    if n_mels * (n_fft // 2 + 1) > MAX_FILTERBANK:
        raise RegistryError(
            f"{where}: {n_mels} mel bins over {n_fft // 2 + 1} frequency bins make a filterbank "
            f"of {n_mels * (n_fft // 2 + 1):,} values, above the limit of {MAX_FILTERBANK:,}"
        )


def check_waveform(waveform: torch.Tensor, min_samples: int, frontend: str) -> None:
    """Raise a clear error unless ``waveform`` is a (B, N) float tensor with N >= ``min_samples``."""
    if not isinstance(waveform, torch.Tensor) or not waveform.is_floating_point():
        kind = waveform.dtype if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise AudioTypeError(f"{frontend} expects a float waveform tensor, got {kind}")
    if waveform.ndim != 2:
        raise InvalidAudioError(
            f"{frontend} expects a waveform of shape (batch, samples), got {tuple(waveform.shape)}; "
            "use waveform.unsqueeze(0) for a single clip"
        )
    if waveform.shape[-1] < min_samples:
        raise InvalidAudioError(
            f"{frontend} needs at least {min_samples} samples per clip, got {waveform.shape[-1]}"
        )


def float32_no_autocast(
    device: torch.device,
) -> torch.autocast | contextlib.nullcontext[None]:
    """Context that disables autocast on ``device``: frontends always compute in float32.

    Outside autocast it is a no-op, so no autocast node enters traced graphs (``torch.export``
    before torch 2.5 rejects them)."""
    if not torch.is_autocast_enabled(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)


def cpu_batch_chunks(waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Split a CPU batch (B, N) into consecutive row chunks of at most ``CPU_CHUNK_SAMPLES`` samples
    (at least one row each); returns ``(waveform,)`` when there is nothing to split.

    Why: a frontend's temporaries (frames, spectra) are ~13x the input. For a whole batch of
    10 s clips they are tens of MB, above glibc's largest mmap threshold (32 MB), so every call
    maps fresh pages and page-faults through them; that alone doubled the time of a batch of 8
    (``python -m benchmarks --only frontends``). Clip-sized temporaries are reused from the heap.
    GPUs have a caching allocator and want the whole batch, and traced, compiled or exported
    graphs must keep a symbolic batch size, so those get one chunk.
    """
    rows = max(1, CPU_CHUNK_SAMPLES // max(1, waveform.shape[-1]))
    if waveform.device.type != "cpu" or waveform.shape[0] <= rows or _tracing():
        return (waveform,)
    return waveform.split(rows)


def by_cpu_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor], waveform: torch.Tensor
) -> torch.Tensor:
    """``fn(waveform)`` for a (B, N) batch, computed per :func:`cpu_batch_chunks` chunk and
    concatenated along the batch axis; ``fn`` must treat the clips of a batch independently.

    The thread policy on the CPU (eager mode, more than one intra-op thread): the chunks run on
    :func:`single_threaded_pool`, one chunk per thread at a time, each thread computing with one
    intra-op thread. A frontend is dozens of small operations per clip; run with torch's
    intra-op parallelism every one of them is a parallel region that waits for its slowest
    thread, and on a busy machine a descheduled thread makes each wait a scheduler time slice
    (the StftMel was 4x slower than hear21passt at batch 8 with a load of 3). Whole chunks per
    thread have no such barrier: a thread that is held up delays only its own clip while the
    other threads take the remaining ones. A single chunk (one clip) runs in the calling thread
    with torch's threads, like the upstream code: on one thread it was 1.5x slower when idle.
    """
    chunks = cpu_batch_chunks(waveform)
    if len(chunks) == 1:
        return fn(waveform)
    threads = torch.get_num_threads()
    if waveform.device.type != "cpu" or threads < 2 or _tracing() or _in_pool():
        return torch.cat([fn(chunk) for chunk in chunks])
    pool = single_threaded_pool(threads)
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(chunk: torch.Tensor) -> torch.Tensor:  # grad modes are per thread: carry them over
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(chunk)

    return torch.cat(list(pool.map(run, chunks)))


_POOL: tuple[int, int, concurrent.futures.ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()
_LOCAL = threading.local()


def _init_worker() -> None:
    torch.ones(1 << 16).add_(1).sum()  # torch initialises a thread's pool size at its first op
    torch.set_num_threads(1)  # then this thread computes on its own (OpenMP/MKL: per thread)
    _LOCAL.in_pool = True


def _in_pool() -> bool:
    return bool(getattr(_LOCAL, "in_pool", False))


def single_threaded_pool(size: int) -> concurrent.futures.ThreadPoolExecutor:
    """A process-wide pool of ``size`` threads that each run torch with one intra-op thread
    (recreated after a fork, or when the size changes)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL[0] == os.getpid() and _POOL[1] == size:
            return _POOL[2]
        if _POOL is not None and _POOL[0] == os.getpid():
            _POOL[2].shutdown(wait=False)
        threads = torch.get_num_threads()
        pool = concurrent.futures.ThreadPoolExecutor(
            size, thread_name_prefix="audiozoo-frontend", initializer=_init_worker
        )
        started = threading.Barrier(size)  # tasks that wait for each other: one thread each
        list(pool.map(lambda _: started.wait(), range(size)))
        # set_num_threads(1) in a worker also changed torch's default for new threads: restore it
        torch.set_num_threads(threads)
        _POOL = (os.getpid(), size, pool)
        return pool


def _tracing() -> bool:
    """True under torch.jit tracing, torch.compile / dynamo, or torch.export."""
    compiler = torch.compiler
    is_exporting = getattr(compiler, "is_exporting", lambda: False)  # torch >= 2.5
    return torch.jit.is_tracing() or compiler.is_compiling() or is_exporting()
