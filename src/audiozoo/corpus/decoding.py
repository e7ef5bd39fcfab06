"""Decoding in DataLoader workers: files -> mono waveforms at the model's rate."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Sequence

import soundfile
import torch

from ..resample import Resampler
from .inputs import Input

__all__ = ["AudioFiles", "Decoded", "batches", "read_mono"]


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


def batches(
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
