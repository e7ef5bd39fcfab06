"""Unit tests of audiozoo.resample (no torchaudio needed).

The reference is direct band-limited interpolation written from the formula, sample by sample in
float64 numpy: y[j] = sum_i x[i] * (c / orig) * sinc(u) * window(u), u = c * (i / orig - j / new),
c = rolloff * min(orig, new), |u| <= lowpass_filter_width (rates reduced by their gcd).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from audiozoo._errors import AudioTypeError
from audiozoo.resample import Resampler, resample

RATE_PAIRS = [(44100, 32000), (48000, 16000), (16000, 32000), (8000, 16000), (22050, 32000)]


def _naive(
    x: np.ndarray,
    orig: int,
    new: int,
    j: int,
    width: int = 6,
    rolloff: float = 0.99,
    kaiser_beta: float | None = None,
) -> float:
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    c = rolloff * min(orig, new)
    total = 0.0
    for i, xi in enumerate(x):
        u = c * (i / orig - j / new)
        if abs(u) > width:
            continue
        sinc = 1.0 if u == 0 else math.sin(math.pi * u) / (math.pi * u)
        if kaiser_beta is None:
            window = math.cos(math.pi * u / (2 * width)) ** 2
        else:
            window = float(
                np.i0(kaiser_beta * math.sqrt(1 - (u / width) ** 2)) / np.i0(kaiser_beta)
            )
        total += xi * (c / orig) * sinc * window
    return total


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
@pytest.mark.parametrize("method", ["sinc_interp_hann", "sinc_interp_kaiser"])
def test_against_direct_interpolation(orig: int, new: int, method: str) -> None:
    x = torch.randn(203, generator=torch.Generator().manual_seed(orig + new), dtype=torch.float64)
    y = resample(x, orig, new, resampling_method=method)
    beta = 14.769656459379492 if method == "sinc_interp_kaiser" else None
    points = [0, 1, 2, len(y) // 2, len(y) - 2, len(y) - 1]  # edges included (zero padding)
    for j in points:
        expected = _naive(x.numpy(), orig, new, j, kaiser_beta=beta)
        assert y[j].item() == pytest.approx(expected, abs=1e-10), j


def test_options_reach_the_kernel() -> None:
    x = torch.randn(150, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = resample(x, 48000, 32000, lowpass_filter_width=3, rolloff=0.8)
    for j in (0, 50, 99):
        assert y[j].item() == pytest.approx(_naive(x.numpy(), 48000, 32000, j, 3, 0.8), abs=1e-10)
    k = resample(x, 48000, 32000, resampling_method="sinc_interp_kaiser", beta=5.0)
    assert k[40].item() == pytest.approx(
        _naive(x.numpy(), 48000, 32000, 40, kaiser_beta=5.0), abs=1e-10
    )


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
def test_band_limited_sine_keeps_its_frequency(orig: int, new: int) -> None:
    freq, seconds = 997.0, 0.5
    t_in = torch.arange(int(orig * seconds), dtype=torch.float64) / orig
    y = resample(torch.sin(2 * math.pi * freq * t_in).float(), orig, new)
    t_out = torch.arange(len(y), dtype=torch.float64) / new
    expected = torch.sin(2 * math.pi * freq * t_out)
    edge = new // 50  # 20 ms at each end see the zero padding
    assert (y[edge:-edge].double() - expected[edge:-edge]).abs().max() < 2e-3
    spectrum = torch.fft.rfft(y.double() * torch.hann_window(len(y), dtype=torch.float64)).abs()
    peak_hz = spectrum.argmax().item() * new / len(y)
    assert abs(peak_hz - freq) <= new / len(y)


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 441, 1001, 4410])
def test_output_length(orig: int, new: int, n: int) -> None:
    y = resample(torch.zeros(2, 3, n), orig, new)
    assert y.shape == (2, 3, math.ceil(new * n / orig))


def test_batched_equals_per_clip() -> None:
    x = torch.randn(2, 3, 999, generator=torch.Generator().manual_seed(1))
    y = resample(x, 44100, 32000)
    for a in range(2):
        for b in range(3):
            torch.testing.assert_close(y[a, b], resample(x[a, b], 44100, 32000), rtol=0, atol=1e-6)


def test_identity_when_rates_are_equal() -> None:
    x = torch.randn(2, 100)
    assert resample(x, 16000, 16000) is x
    assert Resampler(32000, 32000)(x) is x


def test_dtype_and_device_are_kept() -> None:
    x = torch.randn(2, 1000)
    assert resample(x.double(), 48000, 16000).dtype == torch.float64
    half = resample(x.half(), 48000, 16000)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half, resample(x.half().float(), 48000, 16000).half())


def test_integer_valued_floats_are_accepted() -> None:
    x = torch.randn(1, 500)
    torch.testing.assert_close(resample(x, 44100.0, 32000.0), resample(x, 44100, 32000))


@pytest.mark.parametrize(
    ("orig", "new", "match"),
    [
        (44100.5, 32000, "not an integer"),
        (0, 32000, "positive integer"),
        (44100, -16000, "positive integer"),
        (True, 16000, "positive integer"),
        ("44100", 16000, "positive integer"),
    ],
)
def test_bad_rates_raise(orig: object, new: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resample(torch.zeros(10), orig, new)  # type: ignore[arg-type]


def test_bad_options_raise() -> None:
    x = torch.zeros(10)
    with pytest.raises(ValueError, match="resampling_method"):
        resample(x, 48000, 16000, resampling_method="linear")
    with pytest.raises(ValueError, match="lowpass_filter_width"):
        resample(x, 48000, 16000, lowpass_filter_width=0)
    with pytest.raises(ValueError, match="rolloff"):
        resample(x, 48000, 16000, rolloff=1.5)
    with pytest.raises(ValueError, match="beta"):
        resample(x, 48000, 16000, beta=8.0)
    with pytest.raises(AudioTypeError, match="float"):
        resample(torch.zeros(10, dtype=torch.int16), 48000, 16000)
    with pytest.raises(ValueError, match="orig_freq and new_freq"):
        Resampler()(x)


def test_resampler_matches_function_and_caches_kernel() -> None:
    x = torch.randn(2, 3000)
    r = Resampler(44100, 32000, resampling_method="sinc_interp_kaiser")
    assert r.state_dict() == {}
    torch.testing.assert_close(
        r(x), resample(x, 44100, 32000, resampling_method="sinc_interp_kaiser"), rtol=0, atol=0
    )
    kernel, _ = r.kernel(441, 320, torch.float32, x.device)
    r(x)
    assert r.kernel(441, 320, torch.float32, x.device)[0] is kernel
    # per-call rates reuse the same module; reduced rates share a kernel (88200/64000 = 441/320)
    torch.testing.assert_close(r(x, 88200, 64000), r(x), rtol=0, atol=0)
    torch.testing.assert_close(
        r(x, 48000, 16000), resample(x, 48000, 16000, resampling_method="sinc_interp_kaiser")
    )


@settings(max_examples=30, deadline=None)
@given(
    rates=st.sampled_from([*RATE_PAIRS, (32000, 44100), (16000, 48000), (11025, 8000), (3, 2)]),
    n=st.integers(min_value=0, max_value=3000),
    scale=st.floats(min_value=1e-6, max_value=1e3),
)
def test_fuzz_shape_finiteness_linearity(rates: tuple[int, int], n: int, scale: float) -> None:
    orig, new = rates
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    y = resample(x, orig, new)
    assert y.shape == (2, math.ceil(new * n / orig))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(resample(x * scale, orig, new), y * scale)
