"""Synthetic data sets: labelled clips (:class:`SyntheticAudio`) and timed events
(:class:`SyntheticEvents`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .signals import GENERATORS, check_classes, fade, item_rng

__all__ = ["SyntheticAudio", "SyntheticEvents"]


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
        self.classes = check_classes(classes)
        self.snr_db = snr_db

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.num_items <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} items")
        index %= self.num_items
        label = index % len(self.classes)
        rng = item_rng(self.seed, index)
        n, sr = self.num_samples, self.sample_rate
        signal = fade(GENERATORS[self.classes[label]](rng, n, sr), sr)
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
        self.classes = check_classes(classes)
        self.max_events = max_events
        self.min_event, self.max_event = min_event, max_event

    def __len__(self) -> int:
        return self.num_items

    def _generate(self, index: int) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
        if not -self.num_items <= index < self.num_items:
            raise IndexError(f"index {index} out of range for {self.num_items} items")
        rng = item_rng(self.seed, index % self.num_items)
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
            signal = fade(GENERATORS[self.classes[k]](rng, stop - start, sr), sr)
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
