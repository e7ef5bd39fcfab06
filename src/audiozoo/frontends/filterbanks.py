"""Mel filterbanks as pure functions (no state, no torchaudio).

Two conventions are in use by the checkpoints audiozoo loads, and they are *not* interchangeable:

- :func:`kaldi_mel_banks`: Kaldi's filterbank (``torchaudio.compliance.kaldi.get_mel_banks``), used by
  EfficientAT, PaSST and AST. Triangles are built in the mel domain on the natural-log mel scale
  ``mel(f) = 1127 ln(1 + f / 700)``, peak 1, no area normalisation; the Nyquist bin gets weight 0.
- :func:`melscale_fbanks`: torchaudio's / librosa's filterbank
  (``torchaudio.functional.melscale_fbanks``): triangles built in Hz between mel-spaced points on
  the HTK (``2595 log10(1 + f / 700)``) or Slaney scale, optionally Slaney area-normalised.

Both compute in float32 with the same operations in the same order as torchaudio, because the
checkpoints were trained with those exact values: the results are bit-identical to torchaudio's
(tested in ``tests/parity/test_frontend_parity.py``; a float64 computation differs by up to 3e-5).
"""

from __future__ import annotations

import math
import warnings

import torch

__all__ = ["kaldi_mel_banks", "melscale_fbanks"]


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float
) -> torch.Tensor:
    """Kaldi-style mel filterbank, including the zero column for the Nyquist bin.

    Equivalent to ``torchaudio.compliance.kaldi.get_mel_banks(n_mels, n_fft, sample_rate, fmin, fmax,
    100, -500, 1.0)[0]`` padded with one zero column on the right, which is how every upstream user
    applies it to an ``n_fft``-point one-sided spectrum.

    Args:
        n_mels: number of triangular filters (>= 1).
        n_fft: FFT size (even); the spectrum has ``n_fft // 2 + 1`` bins.
        sample_rate: sample rate in Hz.
        fmin: lower edge of the first filter in Hz, ``0 <= fmin < sample_rate / 2``.
        fmax: upper edge of the last filter in Hz; a value ``<= 0`` is an offset from the Nyquist
            frequency (Kaldi convention: ``0`` means Nyquist, ``-400`` means Nyquist - 400 Hz).

    Returns:
        (n_mels, n_fft // 2 + 1) float32 weights; ``mel = bank @ power_spectrum``.

    Raises:
        ValueError: for an odd ``n_fft`` or frequency bounds outside ``0 <= fmin < fmax <= Nyquist``.
    """
    if n_mels < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels}")
    if n_fft < 2 or n_fft % 2:
        raise ValueError(f"n_fft must be even and >= 2, got {n_fft}")
    nyquist = 0.5 * sample_rate
    high = fmax + nyquist if fmax <= 0.0 else float(fmax)
    if not (0.0 <= fmin < nyquist and 0.0 < high <= nyquist and fmin < high):
        raise ValueError(
            f"bad mel bounds: fmin={fmin} Hz, fmax={fmax} Hz (-> {high} Hz) for Nyquist {nyquist} Hz; "
            "need 0 <= fmin < fmax <= Nyquist"
        )
    # float32, in torchaudio's order of operations: bit-identical to it (see the module docstring).
    mel_low = 1127.0 * math.log(1.0 + fmin / 700.0)
    delta = (1127.0 * math.log(1.0 + high / 700.0) - mel_low) / (n_mels + 1)
    i = torch.arange(n_mels, dtype=torch.float32)[:, None]  # (n_mels, 1)
    left = mel_low + i * delta
    center = mel_low + (i + 1.0) * delta
    right = mel_low + (i + 2.0) * delta
    # Kaldi uses n_fft / 2 bins (0 .. Nyquist exclusive); the Nyquist column is appended as 0 below.
    freqs = (sample_rate / n_fft) * torch.arange(n_fft // 2, dtype=torch.float32)
    mel = (1127.0 * (1.0 + freqs / 700.0).log())[None, :]  # (1, n_fft // 2)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    bank = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(bank, (0, 1))


# Slaney scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_MIN_LOG_MEL = 1000.0 / _SLANEY_HZ_PER_MEL
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(freq: float, mel_scale: str) -> float:
    if mel_scale == "htk":
        return 2595.0 * math.log10(1.0 + freq / 700.0)
    if freq >= 1000.0:
        return _SLANEY_MIN_LOG_MEL + math.log(freq / 1000.0) / _SLANEY_LOGSTEP
    return freq / _SLANEY_HZ_PER_MEL


def _mel_to_hz(mels: torch.Tensor, mel_scale: str) -> torch.Tensor:
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = mels * _SLANEY_HZ_PER_MEL
    log = 1000.0 * torch.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL))
    return torch.where(mels >= _SLANEY_MIN_LOG_MEL, log, linear)


def melscale_fbanks(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = None,
    mel_scale: str = "htk",
) -> torch.Tensor:
    """Triangular mel filterbank with ``torchaudio.functional.melscale_fbanks`` semantics.

    The ``n_freqs`` STFT bins are spread linearly over ``[0, sample_rate // 2]``; ``n_mels + 2``
    points are spaced evenly on the mel scale between ``f_min`` and ``f_max`` and converted back
    to Hz; filter ``i`` rises from point ``i`` to ``i + 1`` and falls to ``i + 2`` (linear in Hz).

    Args:
        n_freqs: number of one-sided STFT bins (``n_fft // 2 + 1``).
        f_min: lowest frequency in Hz.
        f_max: highest frequency in Hz.
        n_mels: number of filters.
        sample_rate: sample rate in Hz.
        norm: ``None`` (peak 1) or ``"slaney"`` (divide each triangle by its width in Hz / 2, i.e.
            constant area).
        mel_scale: ``"htk"`` or ``"slaney"``.

    Returns:
        (n_freqs, n_mels) float32, the same orientation as torchaudio: ``mel = spec @ fbanks`` for a
        spectrum with frequency last.

    Raises:
        ValueError: for an unknown ``norm`` or ``mel_scale``.
    """
    if norm not in (None, "slaney"):
        raise ValueError(f'norm must be None or "slaney", got {norm!r}')
    if mel_scale not in ("htk", "slaney"):
        raise ValueError(f'mel_scale must be "htk" or "slaney", got {mel_scale!r}')
    # float32, in torchaudio's order of operations: bit-identical to it (see the module docstring).
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float32)
    m_pts = torch.linspace(
        _hz_to_mel(f_min, mel_scale), _hz_to_mel(f_max, mel_scale), n_mels + 2, dtype=torch.float32
    )
    f_pts = _mel_to_hz(m_pts, mel_scale)  # (n_mels + 2,)
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)  # (n_freqs, n_mels)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2:] - f_pts[:-2]))[None, :]
    if bool((fb.amax(dim=0) == 0.0).any()):
        warnings.warn(
            f"at least one of the {n_mels} mel filters is all zero: n_mels is too high for "
            f"n_freqs={n_freqs} bins between {f_min} and {f_max} Hz",
            UserWarning,
            stacklevel=2,
        )
    return fb
