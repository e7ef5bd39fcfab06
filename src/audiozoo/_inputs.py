"""Where audio enters an :class:`~audiozoo.AudioModel`: validation, ``sample_rate=``, short clips.

:func:`prepare` (a batch or one clip) and :func:`prepare_clips` (a list of clips, or a padded
batch with ``lengths=``) run the checks of :mod:`audiozoo._audio` with the frontend's amplitude
bound, check ``sample_rate`` (a positive integer, at least :data:`MIN_SAMPLE_RATE`), resample to
the model's rate, and warn once per call about clips shorter than one analysis window of the
frontend (counted at the model's rate, after resampling).
"""

from __future__ import annotations

from typing import Any

import torch

from ._audio import as_clip_list, as_waveform, check_sample_rate, warn_short_clips
from ._clips import groups_by
from .frontends.base import Frontend
from .resample import resample

__all__ = ["MIN_SAMPLE_RATE", "analysis_window", "prepare", "prepare_clips"]

# Below 1 kHz a "rate" is almost surely given in kHz (sample_rate=16): resampling it to 32 kHz
# would stretch one second of audio into more than half an hour.
MIN_SAMPLE_RATE = 1000


def analysis_window(frontend: Frontend) -> int:
    """Samples of one analysis window of the frontend (``win_length``, else ``n_fft``)."""
    return int(
        getattr(frontend, "win_length", None)
        or getattr(frontend, "n_fft", None)
        or frontend.min_samples
    )


def _rate(frontend: Frontend, sample_rate: Any) -> int | None:
    """A checked ``sample_rate=``; None when there is nothing to resample."""
    if sample_rate is None:
        return None
    rate = check_sample_rate(sample_rate, "sample_rate", minimum=MIN_SAMPLE_RATE)
    return None if rate == frontend.sample_rate else rate


def prepare(
    frontend: Frontend, waveform: Any, sample_rate: Any, device: torch.device
) -> tuple[torch.Tensor, bool]:
    """(N,), (B, N) or (B, C, N) audio -> ((B, N) float32 at the frontend's rate, unbatched)."""
    rate = _rate(frontend, sample_rate)
    bound = getattr(frontend, "max_amplitude", None)
    wave, unbatched = as_waveform(waveform, device=device, max_amplitude=bound)
    if rate is not None:
        wave = resample(wave, rate, frontend.sample_rate)
    b, n = wave.shape
    window = analysis_window(frontend)
    warn_short_clips([n] * b, window, frontend.sample_rate, maybe_transposed=b > n)
    return wave, unbatched


def prepare_clips(
    frontend: Frontend, waveform: Any, lengths: Any, sample_rate: Any, device: torch.device
) -> list[torch.Tensor]:
    """A list of clips or a padded batch with ``lengths`` -> 1-D float32 clips at the
    frontend's rate (clips of one length are resampled as one batch)."""
    rate = _rate(frontend, sample_rate)
    bound = getattr(frontend, "max_amplitude", None)
    clips = as_clip_list(waveform, lengths, device=device, max_amplitude=bound)
    if rate is not None:
        out = list(clips)
        for idx in groups_by(clips, lambda c: c.shape[-1]).values():
            batch = resample(torch.stack([clips[i] for i in idx]), rate, frontend.sample_rate)
            for row, i in enumerate(idx):
                out[i] = batch[row]
        clips = out
    lengths_out = [c.shape[-1] for c in clips]
    warn_short_clips(lengths_out, analysis_window(frontend), frontend.sample_rate)
    return clips
