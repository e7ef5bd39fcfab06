"""Helpers shared by the frontends: input checks and the autocast guard."""

from __future__ import annotations

import contextlib

import torch

from .._errors import AudioTypeError, InvalidAudioError

__all__ = ["check_waveform", "float32_no_autocast"]


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
