"""Helpers shared by the frontends: input checks, autocast guard, SpecAugment masking."""

from __future__ import annotations

import torch

from .._errors import AudioTypeError, InvalidAudioError

__all__ = ["check_waveform", "float32_no_autocast", "mask_along_axis"]


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


def float32_no_autocast(device: torch.device) -> torch.autocast:
    """Context that disables autocast on ``device``: frontends always compute in float32."""
    return torch.autocast(device_type=device.type, enabled=False)


def mask_along_axis(
    spec: torch.Tensor,
    mask_param: int,
    axis: int,
    generator: torch.Generator | None = None,
    value: float = 0.0,
) -> torch.Tensor:
    """Mask one random band per example along ``axis`` (SpecAugment), i.i.d. over the batch.

    Same sampling as ``torchaudio.functional.mask_along_axis_iid``: the band width is
    ``floor(u1 * mask_param)`` and its start ``floor(u2 * (size - u1 * mask_param))`` with
    ``u1, u2 ~ U[0, 1)`` drawn per example (``mask_param`` is capped at the axis size, so the band
    always lies inside the spectrogram).

    Args:
        spec: (B, F, T) spectrogram.
        mask_param: maximum band width (exclusive); 0 disables masking.
        axis: 1 (frequency) or 2 (time).
        generator: random generator for the draws; None uses torch's global generator.
        value: value written into the band.

    Returns:
        (B, F, T) masked copy of ``spec``.
    """
    if mask_param <= 0:
        return spec
    batch, size = spec.shape[0], spec.shape[axis]
    # Draw on the generator's device so a seeded CPU generator works for CUDA input too.
    draw_device = generator.device if generator is not None else spec.device
    u = torch.rand(2, batch, generator=generator, device=draw_device, dtype=torch.float32)
    u = u.to(spec.device)
    width = u[0] * min(mask_param, size)
    start = (u[1] * (size - width)).long()
    end = start + width.long()
    idx = torch.arange(size, device=spec.device)
    band = (idx >= start[:, None]) & (idx < end[:, None])  # (B, size)
    band = band[:, :, None] if axis == 1 else band[:, None, :]
    return spec.masked_fill(band, value)
