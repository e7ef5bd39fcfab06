"""The frontend contract: waveform (B, N) -> spectrogram (B, 1, F, T), float32."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._checks import check_bool, check_int
from .._registry import frontends
from ..augment import freq_mask, time_mask
from ._common import by_cpu_chunks

__all__ = ["Frontend", "register_frontend"]


class Frontend(nn.Module, metaclass=abc.ABCMeta):
    """Base class of all frontends.

    A frontend reproduces the preprocessing a checkpoint was trained with. Subclasses build their
    filterbanks and windows once in ``__init__`` (as non-persistent buffers) and implement
    :meth:`forward` and :meth:`num_frames`. Every constructor argument is stored as an attribute
    of the same name, so :meth:`config` follows from the constructor. Frontends with SpecAugment
    take ``freqm``, ``timem`` and ``augment`` and call :meth:`_init_spec_augment` and
    :meth:`_spec_augment`.

    A frontend computes in float32 whatever the model's dtype: ``model.half()`` or
    ``model.to(torch.bfloat16)`` leave its floating-point buffers and parameters in float32 (see
    :meth:`_apply`), and :class:`~audiozoo.AudioModel` casts the spectrogram to the backbone's
    dtype.

    Attributes:
        sample_rate: the sample rate (Hz) the frontend expects its input at.
        hop_length: samples between two output frames.
        n_mels: number of frequency bins ``F`` of the output.
        min_samples: the shortest input (in samples) that yields at least one frame.
        max_amplitude: the largest peak |sample| AudioModel accepts. 1e10, far above any audio
            convention (int32 full scale is 2.1e9) and far below the amplitudes whose float32
            power spectrum overflows in the shipped frontends (about 1e14 for BEATs' input
            scale of 2**15, 1e16 and more for the others; tests/test_input_faults.py checks every
            shipped configuration at this bound). A frontend with a larger gain lowers it.
    """

    sample_rate: int
    hop_length: int
    n_mels: int
    min_samples: int = 1
    max_amplitude: float = 1e10

    @abc.abstractmethod
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Args: waveform (B, N) float. Returns: (B, 1, F, T) float32."""

    @abc.abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """Number of output frames ``T`` for an input of ``num_samples`` samples."""

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> Any:
        """``nn.Module._apply`` (behind ``.to()``, ``.half()``, ``.cuda()``, ...) that keeps
        float32 tensors float32 with their exact values: devices follow the model, dtypes do not
        (filterbanks and windows in float16 would lose the spectrogram's quiet bins, and the
        frontends compute in float32)."""
        float32: list[tuple[dict[str, Any], str, torch.Tensor]] = [
            (slots, key, t.detach())
            for module in self.modules()
            for slots in (module._parameters, module._buffers)
            for key, t in slots.items()
            if t is not None and t.dtype == torch.float32
        ]
        out = super()._apply(fn, *args, **kwargs)
        for slots, key, old in float32:  # the exact float32 values, on the new device
            new = slots[key]
            if new is None or new.dtype == torch.float32:
                continue
            if isinstance(new, nn.Parameter):
                new.data = old.to(new.device)
            else:
                slots[key] = old.to(new.device)
        return out

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments; ``cls(**config())`` rebuilds the frontend."""
        params = inspect.signature(type(self).__init__).parameters.values()
        return {
            p.name: getattr(self, p.name)
            for p in params
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    # ------------------------------------------------------------------ SpecAugment
    def _init_spec_augment(
        self, freqm: int, timem: int, augment: bool, where: str | None = None
    ) -> None:
        """Check and store the SpecAugment options; ``generator`` (a ``torch.Generator`` or
        None for torch's global one) drives every random draw of the augmentation."""
        where = where or type(self).__name__
        self.freqm = check_int(freqm, "freqm", where, low=0)
        self.timem = check_int(timem, "timem", where, low=0)
        self.augment = check_bool(augment, "augment", where)
        self.generator: torch.Generator | None = None

    @property
    def augmenting(self) -> bool:
        """True in train mode with ``augment=True``: training-time augmentation runs."""
        return self.training and bool(getattr(self, "augment", False))

    def _spec_augment(self, spec: torch.Tensor) -> torch.Tensor:
        """Frequency then time masks of up to ``freqm``/``timem`` bins, i.i.d. per example, when
        :attr:`augmenting`; ``spec`` unchanged otherwise. Args: spec (B, F, T)."""
        if not self.augmenting:
            return spec
        spec = freq_mask(spec, self.freqm, generator=self.generator)
        return time_mask(spec, self.timem, generator=self.generator)

    def _per_clip_then_batch(
        self,
        x: torch.Tensor,
        log_mel: Callable[[torch.Tensor], torch.Tensor],
        normalise: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """(B, N) float32 -> (B, F, T): ``log_mel`` then ``normalise`` on chunks of clips
        (``by_cpu_chunks``); when :attr:`augmenting`, SpecAugment draws its masks
        over the whole batch between the two, as the upstream pipelines do."""
        augmenting = self.augmenting

        def per_clip(chunk: torch.Tensor) -> torch.Tensor:
            out = log_mel(chunk)
            return out if augmenting else normalise(out)

        out = by_cpu_chunks(per_clip, x)
        return normalise(self._spec_augment(out)) if augmenting else out

    @property
    def frame_rate(self) -> float:
        """Output frames per second."""
        return self.sample_rate / self.hop_length

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


def register_frontend(name: str):  # type: ignore[no-untyped-def]
    """Class decorator: register a :class:`Frontend` subclass under ``name``."""
    return frontends.decorator(name)
