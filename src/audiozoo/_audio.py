"""Input validation at the API boundary: anything a user passes as audio -> (B, N) float32.

Documented behaviour (tested in tests/test_audio_input.py):

| input | behaviour |
|---|---|
| (N,) | one clip; outputs lose the batch axis again |
| (B, N) | a batch of clips |
| (B, C, N) | multichannel: channels are averaged to mono |
| rank 0 or > 3 | InvalidAudioError |
| int16 / int32 PCM | scaled to [-1, 1) by 2**15 / 2**31 |
| other integer, bool, complex dtypes | AudioTypeError |
| float16 / bfloat16 / float64 | converted to float32 |
| NaN or Inf samples | InvalidAudioError (names the first bad clip) |
| empty | InvalidAudioError |
| numpy array, Python list | converted with torch.as_tensor |
| tensor on another device | moved to the model's device |
| non-contiguous view | made contiguous |
"""

from __future__ import annotations

from typing import Any

import torch

from ._errors import AudioTypeError, InvalidAudioError

__all__ = ["as_clip_list", "as_waveform", "is_clip_list"]

_PCM_SCALE = {torch.int16: 2.0**15, torch.int32: 2.0**31}


def as_waveform(
    audio: Any, *, device: torch.device | None = None, name: str = "waveform"
) -> tuple[torch.Tensor, bool]:
    """Validate and normalise audio input.

    Args:
        audio: tensor, numpy array or nested list of shape (N,), (B, N) or (B, C, N).
        device: device to move the result to (the model's); None keeps the input's device.
        name: how the argument is called in error messages.

    Returns:
        ``(waveform, unbatched)``: waveform (B, N) float32, contiguous; ``unbatched`` is True when
        the input was a single (N,) clip, so the caller can drop the batch axis of its output.
    """
    if not isinstance(audio, torch.Tensor):
        if isinstance(audio, (str, bytes)) or not hasattr(audio, "__len__"):
            raise AudioTypeError(
                f"{name} must be a torch.Tensor, numpy array or list of samples, got "
                f"{type(audio).__name__}; to read a file use soundfile.read(path) first"
            )
        try:
            audio = torch.as_tensor(audio)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise AudioTypeError(f"cannot convert {name} to a tensor: {exc}") from None
    if audio.is_complex() or audio.dtype == torch.bool:
        raise AudioTypeError(f"{name} has dtype {audio.dtype}; pass real-valued float samples")
    if not audio.is_floating_point():
        scale = _PCM_SCALE.get(audio.dtype)
        if scale is None:
            raise AudioTypeError(
                f"{name} has integer dtype {audio.dtype}; audiozoo reads int16 and int32 PCM "
                "(scaled to [-1, 1)) or float samples: convert it with waveform.float() / full_scale"
            )
        audio = audio.to(torch.float32) / scale
    if audio.ndim == 0 or audio.ndim > 3:
        raise InvalidAudioError(
            f"{name} must have shape (N,), (batch, N) or (batch, channels, N); got "
            f"{tuple(audio.shape)}"
        )
    unbatched = audio.ndim == 1
    if unbatched:
        audio = audio.unsqueeze(0)
    if audio.numel() == 0:
        raise InvalidAudioError(f"{name} is empty (shape {tuple(audio.shape)}); pass some samples")
    if device is not None and audio.device != device:
        audio = audio.to(device)
    audio = audio.to(torch.float32)
    if audio.ndim == 3:  # (B, C, N): mix down to mono, as the checkpoints were trained on mono
        audio = audio.mean(dim=1)
    finite = torch.isfinite(audio)
    if not bool(finite.all()):
        bad = int((~finite).any(dim=-1).nonzero()[0, 0])
        raise InvalidAudioError(
            f"{name} contains NaN or Inf samples (first in batch item {bad}); check the decoder "
            "or replace them, e.g. torch.nan_to_num(waveform, nan=0.0, posinf=1.0, neginf=-1.0)"
        )
    return audio.contiguous(), unbatched


def is_clip_list(audio: Any) -> bool:
    """True for a list or tuple of clips (tensors or numpy arrays, of any lengths), the input of
    variable-length batches; a nested list of numbers is one array, not a list of clips."""
    return (
        isinstance(audio, (list, tuple))
        and len(audio) > 0
        and all(
            (isinstance(a, torch.Tensor) or hasattr(a, "__array__")) and getattr(a, "ndim", 0) >= 1
            for a in audio
        )
    )


def as_clip_list(
    audio: Any, lengths: Any = None, *, device: torch.device | None = None
) -> list[torch.Tensor]:
    """Validate clips of different lengths -> list of (N_i,) float32 tensors.

    Args:
        audio: a list of clips, each (N_i,) or (channels, N_i) (mixed to mono); or, with
            ``lengths``, a padded batch (B, N) / (B, C, N) whose row ``i`` has ``lengths[i]`` real
            samples.
        lengths: (B,) integers (tensor, array or list) with ``1 <= lengths[i] <= N``, or None.
        device: device to move the clips to.
    """
    if lengths is None:
        if not is_clip_list(audio):
            raise AudioTypeError(
                "a batch of clips of different lengths is a list of 1-D tensors or arrays, or a "
                "padded (batch, N) tensor with lengths="
            )
        clips = []
        for i, item in enumerate(audio):
            item = item if isinstance(item, torch.Tensor) else torch.as_tensor(item)
            if item.ndim not in (1, 2):
                raise InvalidAudioError(
                    f"waveform[{i}] must have shape (N,) or (channels, N), got {tuple(item.shape)}"
                )
            wave, _ = as_waveform(item[None], device=device, name=f"waveform[{i}]")
            clips.append(wave[0])
        return clips
    wave, _ = as_waveform(audio, device=device)
    n = torch.as_tensor(lengths)
    fractional = n.is_floating_point() and not bool((n == n.round()).all())
    if n.is_complex() or n.dtype == torch.bool or fractional:
        raise AudioTypeError(f"lengths must be integers (samples per clip), got {n.tolist()}")
    n = n.to(torch.int64).reshape(-1) if n.ndim <= 1 else n
    if n.ndim != 1 or n.shape[0] != wave.shape[0]:
        raise InvalidAudioError(
            f"lengths must have one entry per clip: shape ({wave.shape[0]},), got "
            f"{tuple(torch.as_tensor(lengths).shape)}"
        )
    bad = (n < 1) | (n > wave.shape[-1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise InvalidAudioError(
            f"lengths[{i}] = {int(n[i])} is outside 1..{wave.shape[-1]} (the padded length)"
        )
    return [wave[i, : int(k)] for i, k in enumerate(n.tolist())]
