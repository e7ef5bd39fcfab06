"""Input validation at the API boundary: anything a user passes as audio -> (B, N) float32.

Documented behaviour (tested in tests/test_audio_input.py and tests/test_input_faults.py):

| input | behaviour |
|---|---|
| (N,) | one clip; outputs lose the batch axis again |
| (B, N) | a batch of clips |
| (B, C, N) | multichannel: channels are averaged to mono |
| (N, C) or (B, N, C) with C <= 8 and N >= 64 | InvalidAudioError: (samples, channels), as ``soundfile.read`` returns it; pass ``x.T`` |
| list of clips (N_i,) / (C, N_i), equal lengths or not | variable-length batch (model.py) |
| list mixing clips with other items; nested lists of unequal lengths | AudioTypeError saying what a list of clips is |
| rank 0 or > 3 | InvalidAudioError |
| int16 / int32 PCM | scaled to [-1, 1) by 2**15 / 2**31 |
| other integer, bool, complex dtypes | AudioTypeError |
| float16 / bfloat16 / float64 | converted to float32 |
| NaN or Inf samples | InvalidAudioError (names the first bad clip) |
| finite, peak above the frontend's ``max_amplitude`` (1e10) or the float32 range | InvalidAudioError naming the peak |
| empty | InvalidAudioError |
| numpy array (any strides or byte order), Python list | converted with torch.as_tensor |
| meta, sparse or nested tensor | AudioTypeError |
| tensor on another device | moved to the model's device |
| non-contiguous view | made contiguous |
| ``sample_rate`` not a positive integer (44100.5, True, NaN, [44100]) or below 1 kHz | InvalidAudioError naming ``sample_rate`` |
| clip shorter than one analysis window of the frontend | zero-padded (model.py); one UserWarning per call |
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import sys
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

import numpy as np
import torch

from ._errors import AudioTypeError, InvalidAudioError

__all__ = [
    "as_clip_list",
    "as_waveform",
    "check_sample_rate",
    "is_clip_list",
    "warn_short_clips",
]

_PCM_SCALE = {torch.int16: 2.0**15, torch.int32: 2.0**31}
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
# (samples, channels) detection: at most this many columns (7.1 surround has 8) ...
_MAX_CHANNELS = 8
# ... and at least this many rows (2 ms at 32 kHz). A batch of that many clips of <= 8 samples
# is not audio either; fewer rows run, with the short-clip warning.
_MIN_ROWS = 64


def check_sample_rate(
    value: Any,
    name: str = "sample_rate",
    *,
    minimum: int = 1,
    fraction_hint: str = "resample to an integer rate first",
) -> int:
    """``value`` as a positive integer sample rate in Hz, else InvalidAudioError naming ``name``.

    Accepts ints, numpy / 0-d tensor integers and integral finite floats (44100.0). Refuses bools
    (a likely mix-up of arguments), fractions (44100.5: truncating would shift every frequency),
    NaN, infinities, other types, and rates below ``minimum`` (a model's 1 kHz floor: a rate in
    kHz, such as 16, would upsample the audio thousands of times).
    """
    rate: int | None = None
    if not isinstance(value, (bool, np.bool_)):
        try:
            rate = operator.index(value)
        except TypeError:
            real = isinstance(value, numbers.Real) or (
                isinstance(value, torch.Tensor) and value.ndim == 0 and value.is_floating_point()
            )
            if real and math.isfinite(float(value)):
                if not float(value).is_integer():
                    raise InvalidAudioError(
                        f"{name}={value!r} is not an integer: pass a positive integer sample rate "
                        f"in Hz (for a fractional rate, {fraction_hint})"
                    ) from None
                rate = int(value)
    if rate is None or rate <= 0:
        raise InvalidAudioError(
            f"{name} must be a positive integer sample rate in Hz, got {value!r}"
        )
    if rate < minimum:
        raise InvalidAudioError(
            f"{name}={rate} Hz is below {minimum} Hz, not an audio sample rate; pass the rate in "
            f"Hz (16 kHz is {name}=16000)"
        )
    return rate


def as_waveform(
    audio: Any,
    *,
    device: torch.device | None = None,
    name: str = "waveform",
    max_amplitude: float | None = None,
) -> tuple[torch.Tensor, bool]:
    """Validate and normalise audio input.

    Args:
        audio: tensor, numpy array or nested list of shape (N,), (B, N) or (B, C, N).
        device: device to move the result to (the model's); None keeps the input's device.
        name: how the argument is called in error messages.
        max_amplitude: largest accepted peak |sample| (the frontend's
            :attr:`~audiozoo.Frontend.max_amplitude`); None: only the float32 range.

    Returns:
        ``(waveform, unbatched)``: waveform (B, N) float32, contiguous; ``unbatched`` is True when
        the input was a single (N,) clip, so the caller can drop the batch axis of its output.
    """
    audio = _as_tensor(audio, name)
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
    _check_layout(audio, name)
    unbatched = audio.ndim == 1
    if unbatched:
        audio = audio.unsqueeze(0)
    if audio.numel() == 0:
        raise InvalidAudioError(f"{name} is empty (shape {tuple(audio.shape)}); pass some samples")
    if device is not None and audio.device != device:
        audio = audio.to(device)
    _check_values(audio, name, max_amplitude)  # in the input's dtype: float64 may not fit float32
    audio = audio.to(torch.float32)
    if audio.ndim == 3:  # (B, C, N): mix down to mono, as the checkpoints were trained on mono
        audio = audio.mean(dim=1)
    return audio.contiguous(), unbatched


def _as_tensor(audio: Any, name: str) -> torch.Tensor:
    """Any array-like -> tensor (not yet validated), or AudioTypeError saying what to pass."""
    if isinstance(audio, torch.Tensor):
        if audio.is_nested:
            raise AudioTypeError(
                f"{name} is a nested tensor; pass clips of different lengths as a list of tensors"
            )
        if audio.layout != torch.strided:
            raise AudioTypeError(
                f"{name} is a {str(audio.layout).removeprefix('torch.')} tensor; audiozoo reads "
                f"dense samples: pass {name}.to_dense()"
            )
        if audio.device.type == "meta":
            raise AudioTypeError(
                f"{name} is a meta tensor: it has a shape but no samples; pass real audio"
            )
        return audio
    if isinstance(audio, (str, bytes, os.PathLike)) or not (
        hasattr(audio, "__len__") or hasattr(audio, "__array__")
    ):
        raise AudioTypeError(
            f"{name} must be a torch.Tensor, numpy array or list of samples, got "
            f"{type(audio).__name__}; to read a file use soundfile.read(path) first"
        )
    if isinstance(audio, np.ndarray):
        audio = _native(audio)
    elif isinstance(audio, (list, tuple)) and any(_is_clip(a) for a in audio):
        i = next(i for i, a in enumerate(audio) if not _is_clip(a))
        raise AudioTypeError(
            f"{name} looks like a list of clips, but item {i} is a {type(audio[i]).__name__}: a "
            "list of clips holds only tensors or numpy arrays of shape (N,) or (channels, N)"
        )
    try:
        return torch.as_tensor(audio)
    except (TypeError, ValueError, RuntimeError) as exc:
        hint = ""
        if "expected sequence of length" in str(exc):
            hint = (
                "; nested lists of different lengths: pass clips of different lengths as a "
                "list of tensors or numpy arrays, one per clip"
            )
        raise AudioTypeError(f"cannot convert {name} to a tensor: {exc}{hint}") from None


def _native(array: np.ndarray) -> np.ndarray:
    """A numpy array torch.as_tensor accepts: native byte order, no negative strides."""
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if any(s < 0 for s in array.strides):  # a reversed view, e.g. x[::-1]
        array = np.ascontiguousarray(array)
    return array


def _is_clip(item: Any) -> bool:
    return (isinstance(item, torch.Tensor) or hasattr(item, "__array__")) and getattr(
        item, "ndim", 0
    ) >= 1


def _check_layout(audio: torch.Tensor, name: str) -> None:
    """Refuse (samples, channels) arrays: they would run as thousands of 2-sample clips."""
    if audio.ndim < 2 or audio.shape[-1] > _MAX_CHANNELS or audio.shape[-2] < _MIN_ROWS:
        return
    fix = f"{name}.T" if audio.ndim == 2 else f"{name}.transpose(1, 2)"
    raise InvalidAudioError(
        f"{name} has shape {tuple(audio.shape)}: this looks like (samples, channels), the layout "
        f"soundfile.read returns for multichannel audio, while audiozoo takes (channels, samples) "
        f"and averages the channels: pass {fix}. (If these really are {audio.shape[-2]} clips of "
        f"{audio.shape[-1]} samples: that is far shorter than any analysis window; pad them.)"
    )


def _check_values(audio: torch.Tensor, name: str, max_amplitude: float | None) -> None:
    """NaN/Inf, and peaks that float32 or the frontend's power spectrum cannot hold."""
    peak = float(audio.detach().abs().amax())  # NaN propagates: one pass for the common case
    limit = _FLOAT32_MAX if max_amplitude is None else min(max_amplitude, _FLOAT32_MAX)
    if peak <= limit:
        return
    finite = torch.isfinite(audio).reshape(audio.shape[0], -1)
    if not bool(finite.all()):
        bad = int((~finite).any(dim=-1).nonzero()[0, 0])
        raise InvalidAudioError(
            f"{name} contains NaN or Inf samples (first in batch item {bad}); check the decoder "
            "or replace them, e.g. torch.nan_to_num(waveform, nan=0.0, posinf=1.0, neginf=-1.0)"
        )
    fix = "audio samples are expected in about [-1, 1]: normalise, e.g. x / x.abs().max()"
    if peak > _FLOAT32_MAX:
        raise InvalidAudioError(
            f"{name} has peak amplitude {peak:.3g}, beyond the float32 range ({_FLOAT32_MAX:.3g}) "
            f"that audiozoo computes in; {fix}"
        )
    raise InvalidAudioError(
        f"{name} has peak amplitude {peak:.3g}, above {limit:.3g}, where the frontend's float32 "
        f"power spectrum overflows (the outputs would be NaN); {fix}"
    )


def is_clip_list(audio: Any) -> bool:
    """True for a list or tuple of clips (tensors or numpy arrays, of any lengths), the input of
    variable-length batches; a nested list of numbers is one array, not a list of clips."""
    return isinstance(audio, (list, tuple)) and len(audio) > 0 and all(map(_is_clip, audio))


def as_clip_list(
    audio: Any,
    lengths: Any = None,
    *,
    device: torch.device | None = None,
    max_amplitude: float | None = None,
) -> list[torch.Tensor]:
    """Validate clips of different lengths -> list of (N_i,) float32 tensors.

    Args:
        audio: a list of clips, each (N_i,) or (channels, N_i) (mixed to mono); or, with
            ``lengths``, a padded batch (B, N) / (B, C, N) whose row ``i`` has ``lengths[i]`` real
            samples.
        lengths: (B,) integers (tensor, array or list) with ``1 <= lengths[i] <= N``, or None.
        device: device to move the clips to.
        max_amplitude: as in :func:`as_waveform`.
    """
    if lengths is None:
        if not is_clip_list(audio):
            raise AudioTypeError(
                "a batch of clips of different lengths is a list of 1-D tensors or arrays, or a "
                "padded (batch, N) tensor with lengths="
            )
        clips = []
        for i, item in enumerate(audio):
            item = _as_tensor(item, f"waveform[{i}]")
            if item.ndim not in (1, 2):
                raise InvalidAudioError(
                    f"waveform[{i}] must have shape (N,) or (channels, N), got {tuple(item.shape)}"
                )
            _check_layout(item, f"waveform[{i}]")
            wave, _ = as_waveform(
                item[None], device=device, name=f"waveform[{i}]", max_amplitude=max_amplitude
            )
            clips.append(wave[0])
        return clips
    wave, _ = as_waveform(audio, device=device, max_amplitude=max_amplitude)
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


# ---------------------------------------------------------------------- short clips
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


def warn_short_clips(
    lengths: Sequence[int], window: int, sample_rate: int, *, maybe_transposed: bool = False
) -> None:
    """One UserWarning when any clip is shorter than one analysis window of ``window`` samples,
    pointing at the first caller outside audiozoo and torch (the user's line)."""
    short = [n for n in lengths if n < window]
    if not short:
        return
    n = min(short)
    samples = f"{n} sample{'s' if n != 1 else ''}"
    if len(lengths) == 1:
        what = f"a clip of {samples} is"
    elif len(set(lengths)) == 1:
        what = f"{len(lengths)} clips of {samples} are"
    else:
        what = f"{len(short)} clips (shortest {samples}) are"
    hint = (
        " If the array is (samples, channels), as soundfile.read returns it, pass waveform.T."
        if maybe_transposed
        else ""
    )
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith((_PACKAGE_DIR, _TORCH_DIR)):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"{what} shorter than one analysis window of the frontend ({window} samples, "
        f"{1000 * window / sample_rate:g} ms at {sample_rate} Hz): zero-padded at the end, so the "
        f"outputs mostly describe the padding.{hint}",
        UserWarning,
        stacklevel=level,
    )
