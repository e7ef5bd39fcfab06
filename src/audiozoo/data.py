"""Data sets for examples, tests and quick experiments.

- :class:`SyntheticAudio`: labelled clips of synthetic sound classes (tones, chirps, noise
  bursts, click trains, amplitude-modulated tones, ...), generated deterministically from a seed.
  Works offline; a small model learns it in minutes on a CPU.
- :class:`SyntheticEvents`: clips with several timed events and frame targets, for sound event
  detection (SED) with frame heads.
- :class:`FolderDataset`: audio files and a CSV of labels, read with soundfile, mixed to mono
  and resampled to the model's rate.

Example::

    from audiozoo.data import SyntheticAudio
    train = SyntheticAudio(800, sample_rate=model.sample_rate, duration=1.0, seed=0)
    test = SyntheticAudio(200, sample_rate=model.sample_rate, duration=1.0, seed=1)
    wave, label = train[0]          # (32000,) float32, int
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch.utils.data import Dataset

__all__ = ["SYNTHETIC_CLASSES", "FolderDataset", "SyntheticAudio", "SyntheticEvents"]

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


_GENERATORS: dict[str, Callable[[Rng, int, int], np.ndarray]] = {
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
SYNTHETIC_CLASSES: tuple[str, ...] = tuple(_GENERATORS)


def _item_rng(seed: int, index: int) -> Rng:
    # SeedSequence mixes (seed, index), so items of different seeds are unrelated.
    return np.random.default_rng([seed, index])


def _check_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return SYNTHETIC_CLASSES
    unknown = [c for c in classes if c not in _GENERATORS]
    if unknown or not classes:
        raise ValueError(f"unknown synthetic classes {unknown}; choose from {SYNTHETIC_CLASSES}")
    return tuple(classes)


def _fade(signal: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    """Raised-cosine fade-in/out so events start and stop without a click."""
    k = min(len(signal) // 2, int(seconds * sr))
    if k > 0:
        ramp = 0.5 * (1 - np.cos(np.linspace(0, np.pi, k)))
        signal[:k] *= ramp
        signal[-k:] *= ramp[::-1]
    return signal


class SyntheticAudio(Dataset):
    """Deterministic labelled clips of synthetic sound classes.

    Item ``i`` has label ``i % num_classes`` (balanced classes) and a waveform whose parameters
    (frequencies, rates, positions, level, background noise) are drawn from a generator seeded by
    ``(seed, i)``: the same arguments always give the same clips, and data sets with different
    seeds are independent (use one seed for training and another for a held-out split).

    Args:
        num_items: number of clips.
        sample_rate: sample rate of the waveforms (Hz).
        duration: clip length (s).
        seed: data set seed.
        classes: subset of :data:`SYNTHETIC_CLASSES` (default: all ten).
        snr_db: range of the signal-to-background-noise ratio (dB).

    Items:
        ``(waveform, label)``: (N,) float32 with ``N = round(duration * sample_rate)``, and an int.
    """

    def __init__(
        self,
        num_items: int,
        *,
        sample_rate: int = 32000,
        duration: float = 1.0,
        seed: int = 0,
        classes: Sequence[str] | None = None,
        snr_db: tuple[float, float] = (10.0, 30.0),
    ) -> None:
        if num_items < 0:
            raise ValueError(f"num_items must be >= 0, got {num_items}")
        self.num_items = num_items
        self.sample_rate = sample_rate
        self.num_samples = round(duration * sample_rate)
        if self.num_samples < 1:
            raise ValueError(f"duration {duration} s gives no samples at {sample_rate} Hz")
        self.seed = seed
        self.classes = _check_classes(classes)
        self.snr_db = snr_db

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.num_items <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} items")
        index %= self.num_items
        label = index % len(self.classes)
        rng = _item_rng(self.seed, index)
        n, sr = self.num_samples, self.sample_rate
        signal = _fade(_GENERATORS[self.classes[label]](rng, n, sr), sr)
        signal = signal / (np.sqrt(np.mean(signal**2)) + 1e-12)  # unit RMS
        noise = rng.standard_normal(n) * 10 ** (-rng.uniform(*self.snr_db) / 20)
        level = 10 ** (rng.uniform(-30, -12) / 20)  # RMS level, dBFS
        wave = level * (signal + noise)
        wave /= max(1.0, float(np.abs(wave).max()))  # click trains have a high crest factor
        return torch.from_numpy(wave.astype(np.float32)), label

    @property
    def labels(self) -> list[int]:
        """Label of every item (without generating the audio)."""
        return [i % len(self.classes) for i in range(self.num_items)]


class SyntheticEvents(Dataset):
    """Clips with timed sound events and frame-level targets, for sound event detection.

    Each clip holds 1 to ``max_events`` events (``min_event``..``max_event`` seconds long, random
    class and onset; events of different classes may overlap, events of one class do not) over
    low-level background noise. Item ``i`` is generated from a generator seeded by
    ``(seed, i)``.

    Frame ``t`` covers ``[t * frame_hop, (t + 1) * frame_hop)``; its target for a class is 1 when
    an event of that class is active at the frame centre ``(t + 0.5) * frame_hop``.

    Args:
        num_items: number of clips.
        sample_rate: sample rate (Hz).
        duration: clip length (s).
        frame_hop: seconds between target frames (use ``model.frame_hop``).
        num_frames: target frames per clip (default ``ceil(duration / frame_hop)``); pass the
            model's output length when its padding gives one frame more or less.
        seed: data set seed.
        classes: event classes, a subset of :data:`SYNTHETIC_CLASSES`.
        max_events: most events per clip.
        min_event, max_event: event length range (s).

    Items:
        ``(waveform, targets)``: (N,) float32 and (num_frames, K) float32 in {0, 1}.
        :meth:`events` gives the reference events ``(onset, offset, class_index)`` of an item.
    """

    def __init__(
        self,
        num_items: int,
        *,
        sample_rate: int = 32000,
        duration: float = 4.0,
        frame_hop: float = 0.32,
        num_frames: int | None = None,
        seed: int = 0,
        classes: Sequence[str] | None = (
            "tone",
            "chirp_up",
            "noise_bursts",
            "click_train",
            "am_fast",
        ),
        max_events: int = 3,
        min_event: float = 0.5,
        max_event: float = 2.0,
    ) -> None:
        if not 0 < min_event <= max_event <= duration:
            raise ValueError(
                f"need 0 < min_event <= max_event <= duration, got {min_event}, {max_event}, "
                f"{duration}"
            )
        if frame_hop <= 0:
            raise ValueError(f"frame_hop must be > 0, got {frame_hop}")
        self.num_items = num_items
        self.sample_rate = sample_rate
        self.duration = duration
        self.num_samples = round(duration * sample_rate)
        self.frame_hop = frame_hop
        self.num_frames = num_frames if num_frames is not None else math.ceil(duration / frame_hop)
        self.seed = seed
        self.classes = _check_classes(classes)
        self.max_events = max_events
        self.min_event, self.max_event = min_event, max_event

    def __len__(self) -> int:
        return self.num_items

    def _generate(self, index: int) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
        if not -self.num_items <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} items")
        rng = _item_rng(self.seed, index % self.num_items)
        sr = self.sample_rate
        wave = rng.standard_normal(self.num_samples) * 10 ** (-50 / 20)  # background, -50 dBFS
        events: list[tuple[float, float, int]] = []
        for _ in range(int(rng.integers(1, self.max_events + 1))):
            k = int(rng.integers(len(self.classes)))
            length = rng.uniform(self.min_event, self.max_event)
            onset = rng.uniform(0, self.duration - length)
            offset = onset + length
            if any(c == k and onset < off and on < offset for on, off, c in events):
                continue  # one class never overlaps itself: the targets could not tell them apart
            start, stop = round(onset * sr), round(offset * sr)
            signal = _fade(_GENERATORS[self.classes[k]](rng, stop - start, sr), sr)
            signal /= np.sqrt(np.mean(signal**2)) + 1e-12
            wave[start:stop] += signal * 10 ** (rng.uniform(-26, -14) / 20)
            events.append((start / sr, stop / sr, k))
        events.sort()
        return wave, events

    def events(self, index: int) -> list[tuple[float, float, int]]:
        """Reference events of item ``index``: ``(onset_s, offset_s, class_index)``, by onset."""
        return self._generate(index)[1]

    def frame_targets(self, events: Sequence[tuple[float, float, int]]) -> torch.Tensor:
        """(num_frames, K) float32 targets for a list of events (see the class docstring)."""
        centres = (torch.arange(self.num_frames, dtype=torch.float64) + 0.5) * self.frame_hop
        targets = torch.zeros(self.num_frames, len(self.classes))
        for onset, offset, k in events:
            targets[(centres >= onset) & (centres < offset), k] = 1.0
        return targets

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        wave, events = self._generate(index)
        return torch.from_numpy(wave.astype(np.float32)), self.frame_targets(events)


# ---------------------------------------------------------------------------------------------
# Audio files


class FolderDataset(Dataset):
    """Audio files in a folder with a CSV of labels.

    The CSV has a header with at least the columns ``filename`` (a path relative to ``root``) and
    ``label``. A label cell holding several labels separated by ``;`` makes the data set
    multi-label. Files are read with soundfile, mixed to mono (mean over channels) and
    resampled to ``sample_rate`` with :func:`audiozoo.resample.resample`.

    Args:
        root: folder the file names are relative to.
        csv_file: the CSV (default ``root / "labels.csv"``); relative paths are relative to
            ``root``.
        sample_rate: sample rate of the returned waveforms (the model's).
        classes: class names in output order (default: the sorted labels found in the CSV).
        duration: if given, crop (from the start) or zero-pad every clip to this many seconds,
            so clips can be batched.
        multi_label: force multi-hot targets even when every row has one label (default:
            multi-label exactly when some row has several).
        split: keep only rows whose ``split`` column equals this (e.g. ``"train"``/``"test"``).

    Items:
        ``(waveform, target)``: (N,) float32; an int class index, or a (K,) float32 multi-hot
        vector for multi-label data.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        csv_file: str | os.PathLike[str] | None = None,
        *,
        sample_rate: int,
        classes: Sequence[str] | None = None,
        duration: float | None = None,
        multi_label: bool | None = None,
        split: str | None = None,
    ) -> None:
        self.root = Path(root)
        path = self.root / (csv_file if csv_file is not None else "labels.csv")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "filename" not in fields or "label" not in fields:
                raise ValueError(
                    f"{path} needs a header with the columns 'filename' and 'label', got {fields}"
                )
            if split is not None and "split" not in fields:
                raise ValueError(f"split={split!r} but {path} has no 'split' column")
            rows = [r for r in reader if split is None or r["split"] == split]
        self.files = [self.root / r["filename"] for r in rows]
        self.item_labels = [[s.strip() for s in r["label"].split(";") if s.strip()] for r in rows]
        found = sorted({label for labels in self.item_labels for label in labels})
        self.classes = tuple(classes) if classes is not None else tuple(found)
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise ValueError(f"labels {unknown} in {path} are not in classes={list(self.classes)}")
        self.multi_label = (
            multi_label
            if multi_label is not None
            else any(len(labels) != 1 for labels in self.item_labels)
        )
        self.sample_rate = sample_rate
        self.num_samples = None if duration is None else round(duration * sample_rate)
        self._index = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.files)

    def target(self, index: int) -> int | torch.Tensor:
        """Target of item ``index`` without reading its audio."""
        labels = self.item_labels[index]
        if not self.multi_label:
            return self._index[labels[0]]
        hot = torch.zeros(len(self.classes))
        hot[[self._index[c] for c in labels]] = 1.0
        return hot

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        data, sr = soundfile.read(self.files[index], dtype="float32", always_2d=True)  # (N, ch)
        wave = torch.from_numpy(data.mean(axis=1))
        if sr != self.sample_rate:
            from .resample import resample

            wave = resample(wave, sr, self.sample_rate)
        if self.num_samples is not None:
            wave = wave[: self.num_samples]
            wave = torch.nn.functional.pad(wave, (0, self.num_samples - wave.shape[0]))
        return wave.contiguous(), self.target(index)
