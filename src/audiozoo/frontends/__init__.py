"""Frontends: waveform (B, N) → spectrogram (B, 1, F, T), float32, pure torch.

Importing this package registers the built-in frontends:

| name | class | used by |
|---|---|---|
| ``"stft_mel"`` | :class:`StftMel` | EfficientAT, PaSST (32 kHz log-mel, Kaldi filterbank) |
| ``"kaldi_fbank"`` | :class:`KaldiFbank` | AST (16 kHz Kaldi fbank, padded to 1024 frames) |
| ``"mel"`` | :class:`MelSpectrogram` | the course CNN; generic torchaudio-style log-mel |
"""

from .base import Frontend
from .filterbanks import kaldi_mel_banks, melscale_fbanks
from .kaldi_fbank import KaldiFbank
from .mel_spectrogram import MelSpectrogram
from .stft_mel import StftMel

__all__ = [
    "Frontend",
    "KaldiFbank",
    "MelSpectrogram",
    "StftMel",
    "kaldi_mel_banks",
    "melscale_fbanks",
]
