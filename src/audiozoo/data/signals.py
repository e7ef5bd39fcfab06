"""The synthetic sound classes: seeded generators of tones, chirps, noise bursts, clicks, ..."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["GENERATORS", "SYNTHETIC_CLASSES", "Rng", "check_classes", "fade", "item_rng"]

Rng = np.random.Generator


# ---------------------------------------------------------------------------------------------
# Sound generators: (rng, num_samples, sample_rate) -> float64 signal with peak about 1.


def _log_uniform(rng: Rng, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _sine_from_freq(freq: np.ndarray, sr: int, rng: Rng) -> np.ndarray:
    """Sine with instantaneous frequency ``freq`` (Hz per sample) and a random start phase."""
    return np.sin(2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi))


def _tone(rng: Rng, n: int, sr: int) -> np.ndarray:
    return _sine_from_freq(np.full(n, _log_uniform(rng, 300, 3000)), sr, rng)


def _chirp(rng: Rng, n: int, sr: int, up: bool) -> np.ndarray:
    low = _log_uniform(rng, 200, 800)
    high = low * rng.uniform(4, 10)
    ramp = np.linspace(0.0, 1.0, n)
    if not up:
        ramp = ramp[::-1]
    return _sine_from_freq(low * (high / low) ** ramp, sr, rng)  # exponential sweep


def _chirp_up(rng: Rng, n: int, sr: int) -> np.ndarray:
    return _chirp(rng, n, sr, up=True)


def _chirp_down(rng: Rng, n: int, sr: int) -> np.ndarray:
    return _chirp(rng, n, sr, up=False)


def _noise_bursts(rng: Rng, n: int, sr: int) -> np.ndarray:
    """1 to 3 bursts of white noise, 40 to 150 ms each."""
    out = np.zeros(n)
    for _ in range(rng.integers(1, 4)):
        length = min(n, int(rng.uniform(0.04, 0.15) * sr))
        start = int(rng.integers(0, n - length + 1))
        out[start : start + length] += rng.standard_normal(length) * np.hanning(length)
    return out / 3.0


def _click_train(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Decaying clicks (2 ms) at a regular rate of 5 to 15 per second."""
    out = np.zeros(n)
    period = int(sr / rng.uniform(5, 15))
    click = np.exp(-np.arange(int(0.002 * sr)) / (0.0005 * sr)) * rng.choice([-1, 1])
    for start in range(int(rng.integers(0, period)), n, period):
        seg = click[: n - start]
        out[start : start + len(seg)] += seg
    return out


def _am_tone(rng: Rng, n: int, sr: int, rate: tuple[float, float]) -> np.ndarray:
    t = np.arange(n) / sr
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(*rate) * t + rng.uniform(0, 2 * np.pi)))
    return envelope * _tone(rng, n, sr)


def _am_slow(rng: Rng, n: int, sr: int) -> np.ndarray:
    return _am_tone(rng, n, sr, (2.0, 4.0))


def _am_fast(rng: Rng, n: int, sr: int) -> np.ndarray:
    return _am_tone(rng, n, sr, (8.0, 14.0))


def _harmonic(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Harmonic complex: fundamental 150-400 Hz, 5 to 10 partials with 1/k amplitudes."""
    f0 = _log_uniform(rng, 150, 400)
    partials = [k for k in range(1, int(rng.integers(5, 11)) + 1) if k * f0 < sr / 2]
    out = sum(_sine_from_freq(np.full(n, k * f0), sr, rng) / k for k in partials)
    return np.asarray(out) / 2.0


def _vibrato(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Frequency-modulated tone: 4-8 Hz vibrato of +-10 to 20 %."""
    t = np.arange(n) / sr
    f = _log_uniform(rng, 400, 2500)
    depth = rng.uniform(0.1, 0.2)
    return _sine_from_freq(f * (1 + depth * np.sin(2 * np.pi * rng.uniform(4, 8) * t)), sr, rng)


def _rumble(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Continuous low-frequency noise: white noise through a second-order low-pass (cut-off
    100-400 Hz, -12 dB per octave), applied in the frequency domain."""
    cutoff = rng.uniform(100, 400)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    out = np.fft.irfft(spectrum / (1 + (freqs / cutoff) ** 2), n)
    return out / (np.abs(out).max() + 1e-12)


GENERATORS: dict[str, Callable[[Rng, int, int], np.ndarray]] = {
    "tone": _tone,
    "chirp_up": _chirp_up,
    "chirp_down": _chirp_down,
    "noise_bursts": _noise_bursts,
    "click_train": _click_train,
    "am_slow": _am_slow,
    "am_fast": _am_fast,
    "harmonic": _harmonic,
    "vibrato": _vibrato,
    "rumble": _rumble,
}

#: The sound classes of :class:`SyntheticAudio`, in label order.
SYNTHETIC_CLASSES: tuple[str, ...] = tuple(GENERATORS)


def item_rng(seed: int, index: int) -> Rng:
    # SeedSequence mixes (seed, index), so items of different seeds are unrelated.
    return np.random.default_rng([seed, index])


def check_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return SYNTHETIC_CLASSES
    unknown = [c for c in classes if c not in GENERATORS]
    if unknown or not classes:
        raise ValueError(f"unknown synthetic classes {unknown}; choose from {SYNTHETIC_CLASSES}")
    return tuple(classes)


def fade(signal: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    """Raised-cosine fade-in/out so events start and stop without a click."""
    k = min(len(signal) // 2, int(seconds * sr))
    if k > 0:
        ramp = 0.5 * (1 - np.cos(np.linspace(0, np.pi, k)))
        signal[:k] *= ramp
        signal[-k:] *= ramp[::-1]
    return signal
