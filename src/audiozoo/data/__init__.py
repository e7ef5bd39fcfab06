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

from .folder import FolderDataset
from .signals import SYNTHETIC_CLASSES
from .synthetic import SyntheticAudio, SyntheticEvents

__all__ = ["SYNTHETIC_CLASSES", "FolderDataset", "SyntheticAudio", "SyntheticEvents"]
