"""The frontend contract: waveform (B, N) -> spectrogram (B, 1, F, T), float32."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from .._registry import frontends

__all__ = ["Frontend", "register_frontend"]


class Frontend(nn.Module, metaclass=abc.ABCMeta):
    """Base class of all frontends.

    A frontend reproduces the preprocessing a checkpoint was trained with. Subclasses build their
    filterbanks and windows once in ``__init__`` (as non-persistent buffers) and implement
    :meth:`forward` and :meth:`num_frames`.

    Attributes:
        sample_rate: the sample rate (Hz) the frontend expects its input at.
        hop_length: samples between two output frames.
        n_mels: number of frequency bins ``F`` of the output.
        min_samples: the shortest input (in samples) that yields at least one frame.
    """

    sample_rate: int
    hop_length: int
    n_mels: int
    min_samples: int = 1

    @abc.abstractmethod
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Args: waveform (B, N) float. Returns: (B, 1, F, T) float32."""

    @abc.abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """Number of output frames ``T`` for an input of ``num_samples`` samples."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments; ``cls(**config())`` rebuilds the frontend."""

    @property
    def frame_rate(self) -> float:
        """Output frames per second."""
        return self.sample_rate / self.hop_length

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


def register_frontend(name: str):  # type: ignore[no-untyped-def]
    """Class decorator: register a :class:`Frontend` subclass under ``name``."""
    return frontends.decorator(name)
