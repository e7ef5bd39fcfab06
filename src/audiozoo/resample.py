"""Band-limited resampling in pure torch (``torchaudio.functional.resample`` semantics).

The rates are reduced by their gcd to ``orig / new``. Output sample ``j`` is the input convolved
with a windowed sinc centred at time ``j / new`` (in units of input seconds), low-pass at
``rolloff * min(orig, new) / 2`` and truncated after ``lowpass_filter_width`` zero crossings.
The ``new`` output phases repeat every ``orig`` input samples, so all of them are computed at once
by one ``conv1d`` with ``new`` output channels and stride ``orig`` (polyphase form). The output has
``ceil(new * N / orig)`` samples.

Example::

    from audiozoo.resample import resample
    wave_32k = resample(wave_44k, 44100, 32000)   # (..., N) -> (..., ceil(N * 320 / 441))
"""

from __future__ import annotations

import math
from collections import OrderedDict
from numbers import Integral

import torch
from torch import nn

from ._audio import check_sample_rate
from ._errors import AudioTypeError, InvalidAudioError

__all__ = ["Resampler", "resample"]

_METHODS = ("sinc_interp_hann", "sinc_interp_kaiser")
_KAISER_BETA = 14.769656459379492  # torchaudio's default
_CACHE_SIZE = 8
# Largest polyphase kernel (new x taps of the gcd-reduced rates): 2**25 taps, 268 MB in float64.
# 44100 -> 32000 needs 320 x 459; an odd real rate such as 44056 -> 32000, 4000 x 5525.
_MAX_KERNEL = 1 << 25


def _check_rate(value: object, name: str) -> int:
    hint = "pass integer rates with the same ratio: 44100 -> 5512.5 Hz as 8 -> 1"
    return check_sample_rate(value, name, fraction_hint=hint)


def _check_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> None:
    """Refuse rates whose gcd-reduced ratio needs a polyphase kernel of gigabytes (a typo such
    as 44101 Hz: 44101:32000 would be a 32000 x 44119 kernel, 11 GB in float64)."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    taps = 2 * _kernel_width(o, n, lowpass_filter_width, rolloff) + o
    if n * taps > _MAX_KERNEL:
        raise InvalidAudioError(
            f"resampling {orig} Hz to {new} Hz: the rates reduce only to {o}:{n}, which needs a "
            f"{n} x {taps} polyphase kernel ({n * taps * 8 / 1e9:.1f} GB in float64; audiozoo "
            f"refuses more than {_MAX_KERNEL} taps). Check the rate: a standard rate such as "
            "44100 or 48000 reduces to a small ratio; or resample in two steps"
        )


def _kernel_width(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> int:
    """Input samples of context on each side of the kernel, for gcd-reduced rates."""
    return math.ceil(lowpass_filter_width * orig / (min(orig, new) * rolloff))


def _check_options(
    lowpass_filter_width: int, rolloff: float, resampling_method: str, beta: float | None
) -> None:
    if isinstance(lowpass_filter_width, bool) or not isinstance(lowpass_filter_width, Integral):
        raise ValueError(f"lowpass_filter_width must be an integer, got {lowpass_filter_width!r}")
    if lowpass_filter_width <= 0:
        raise ValueError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    if not 0.0 < rolloff <= 1.0:
        raise ValueError(f"rolloff must be in (0, 1], got {rolloff}")
    if resampling_method not in _METHODS:
        raise ValueError(
            f"resampling_method must be one of {', '.join(_METHODS)}; got {resampling_method!r}"
        )
    if beta is not None and resampling_method != "sinc_interp_kaiser":
        raise ValueError('beta is the Kaiser window shape: use it with "sinc_interp_kaiser"')


def _sinc_kernel(
    orig: int,
    new: int,
    lowpass_filter_width: int,
    rolloff: float,
    resampling_method: str,
    beta: float | None,
) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc kernel for gcd-reduced rates, computed in float64.

    Returns:
        ``(kernel, width)``: kernel (new, 1, 2 * width + orig) float64; ``width`` input samples of
        context are needed on each side.
    """
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates
    width = _kernel_width(orig, new, lowpass_filter_width, rolloff)
    # t[j, k]: distance (in input samples scaled to the cutoff) between output phase j, at input
    # time j * orig / new, and input tap k - width.
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    phases = torch.arange(0, -new, -1, dtype=torch.float64)[:, None] / new
    t = ((phases + taps) * cutoff).clamp(-lowpass_filter_width, lowpass_filter_width)
    if resampling_method == "sinc_interp_hann":
        window = torch.cos(t * (math.pi / lowpass_filter_width / 2)) ** 2
    else:
        b = torch.tensor(_KAISER_BETA if beta is None else float(beta), dtype=torch.float64)
        window = torch.i0(b * torch.sqrt(1 - (t / lowpass_filter_width) ** 2)) / torch.i0(b)
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernel = sinc * window * (cutoff / orig)
    return kernel[:, None, :], width


def _apply_kernel(
    waveform: torch.Tensor, orig: int, new: int, kernel: torch.Tensor, width: int
) -> torch.Tensor:
    shape = waveform.shape
    x = waveform.reshape(math.prod(shape[:-1]), 1, shape[-1])  # (B', 1, N)
    x = nn.functional.pad(x, (width, width + orig))
    y = nn.functional.conv1d(x, kernel, stride=orig)  # (B', new, L): phase j of block l
    y = y.transpose(1, 2).reshape(x.shape[0], y.shape[1] * y.shape[2])  # phases -> (B', new * L)
    target = -(-new * shape[-1] // orig)  # ceil(new * N / orig) in exact integer arithmetic
    return y[:, :target].reshape(*shape[:-1], target)


def _compute_dtype(waveform: torch.Tensor) -> torch.dtype:
    if not waveform.is_floating_point():
        raise AudioTypeError(
            f"resample expects a float waveform, got {waveform.dtype}; convert integer PCM first "
            "(e.g. waveform.float() / 32768)"
        )
    # Half-precision convolutions are slow or unsupported on CPU; compute those in float32.
    return waveform.dtype if waveform.dtype == torch.float64 else torch.float32


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
    resampling_method: str = "sinc_interp_hann",
    beta: float | None = None,
) -> torch.Tensor:
    """Resample ``waveform`` from ``orig_freq`` to ``new_freq`` Hz (band-limited sinc interpolation).

    Matches ``torchaudio.functional.resample`` (same kernel and output length); the kernel is
    computed in float64 and cast to the computation dtype. For repeated calls with the same rates,
    :class:`Resampler` caches the kernel.

    Args:
        waveform: (..., N) float tensor, on any device.
        orig_freq: input sample rate (positive integer).
        new_freq: output sample rate (positive integer).
        lowpass_filter_width: zero crossings of the sinc kept on each side (sharper when larger).
        rolloff: low-pass cutoff as a fraction of the lower Nyquist frequency.
        resampling_method: "sinc_interp_hann" or "sinc_interp_kaiser".
        beta: Kaiser window shape (``sinc_interp_kaiser`` only; default 14.769656459379492).

    Returns:
        (..., ceil(new_freq * N / orig_freq)) tensor with the input's dtype and device; the input
        itself when the rates are equal. float16/bfloat16 input is computed in float32.

    Raises:
        InvalidAudioError: (a ValueError) for rates that are not positive integers (44100.5,
            True, NaN) or whose reduced ratio needs a kernel of over 2**25 taps (44101 -> 32000).
        ValueError: for invalid options.
        AudioTypeError: for a non-float waveform.
    """
    orig = _check_rate(orig_freq, "orig_freq")
    new = _check_rate(new_freq, "new_freq")
    _check_options(lowpass_filter_width, rolloff, resampling_method, beta)
    dtype = _compute_dtype(waveform)
    if orig == new:
        return waveform
    _check_kernel(orig, new, lowpass_filter_width, rolloff)
    g = math.gcd(orig, new)
    kernel, width = _sinc_kernel(
        orig // g, new // g, lowpass_filter_width, rolloff, resampling_method, beta
    )
    kernel = kernel.to(device=waveform.device, dtype=dtype)
    out = _apply_kernel(waveform.to(dtype), orig // g, new // g, kernel, width)
    return out.to(waveform.dtype)


class Resampler(nn.Module):
    """Resampling module that caches its windowed-sinc kernels.

    Kernels are kept per (reduced orig, reduced new, dtype, device) for the most recently used
    combinations, so a model can resample inputs of varying sample rates without rebuilding them.
    The cache holds no state_dict entries.

    Args:
        orig_freq: default input rate for :meth:`forward` (None = must be given per call).
        new_freq: default output rate for :meth:`forward` (None = must be given per call).
        lowpass_filter_width: as in :func:`resample`.
        rolloff: as in :func:`resample`.
        resampling_method: as in :func:`resample`.
        beta: as in :func:`resample`.
    """

    def __init__(
        self,
        orig_freq: int | None = None,
        new_freq: int | None = None,
        *,
        lowpass_filter_width: int = 6,
        rolloff: float = 0.99,
        resampling_method: str = "sinc_interp_hann",
        beta: float | None = None,
    ) -> None:
        super().__init__()
        _check_options(lowpass_filter_width, rolloff, resampling_method, beta)
        self.orig_freq = None if orig_freq is None else _check_rate(orig_freq, "orig_freq")
        self.new_freq = None if new_freq is None else _check_rate(new_freq, "new_freq")
        self.lowpass_filter_width = lowpass_filter_width
        self.rolloff = rolloff
        self.resampling_method = resampling_method
        self.beta = beta
        self._kernels: OrderedDict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = (
            OrderedDict()
        )
        self._widths: dict[tuple[int, int], int] = {}

    def kernel(
        self, orig: int, new: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        """The cached (new, 1, 2 * width + orig) kernel and ``width`` for gcd-reduced rates."""
        key = (orig, new, dtype, device)
        if key in self._kernels:
            self._kernels.move_to_end(key)
        else:
            kernel, self._widths[orig, new] = _sinc_kernel(
                orig,
                new,
                self.lowpass_filter_width,
                self.rolloff,
                self.resampling_method,
                self.beta,
            )
            self._kernels[key] = kernel.to(device=device, dtype=dtype)
            if len(self._kernels) > _CACHE_SIZE:
                self._kernels.popitem(last=False)
        return self._kernels[key], self._widths[orig, new]

    def forward(
        self,
        waveform: torch.Tensor,
        orig_freq: int | None = None,
        new_freq: int | None = None,
    ) -> torch.Tensor:
        """Args: waveform (..., N) float; rates default to the constructor's.

        Returns: (..., ceil(new * N / orig)), the input's dtype and device.
        """
        orig_arg = self.orig_freq if orig_freq is None else orig_freq
        new_arg = self.new_freq if new_freq is None else new_freq
        if orig_arg is None or new_arg is None:
            raise ValueError("pass orig_freq and new_freq, to the constructor or to forward()")
        orig = _check_rate(orig_arg, "orig_freq")
        new = _check_rate(new_arg, "new_freq")
        dtype = _compute_dtype(waveform)
        if orig == new:
            return waveform
        _check_kernel(orig, new, self.lowpass_filter_width, self.rolloff)
        g = math.gcd(orig, new)
        kernel, width = self.kernel(orig // g, new // g, dtype, waveform.device)
        out = _apply_kernel(waveform.to(dtype), orig // g, new // g, kernel, width)
        return out.to(waveform.dtype)

    def extra_repr(self) -> str:
        return (
            f"orig_freq={self.orig_freq}, new_freq={self.new_freq}, "
            f"lowpass_filter_width={self.lowpass_filter_width}, rolloff={self.rolloff}, "
            f"resampling_method={self.resampling_method!r}"
        )
