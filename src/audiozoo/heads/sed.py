"""PretrainedSED's sound event detection head: strong (per-frame) and weak (clip) logits.

Upstream: ``models/prediction_wrapper.py`` ``PredictionsWrapper`` with ``head_type="linear"`` and
no sequence model (the released AudioSet-Strong students) in fschmid56/PretrainedSED (MIT).
The wrapper is trained on 10 s clips and always emits 250 frames (40 ms) per clip:

1. the backbone's frame sequence (B, L, C) of one 10 s window is resampled to ``seq_len`` = 250
   frames: adaptive average pooling when ``L > 250``, linear interpolation
   (``align_corners=False``) when ``L < 250``, unchanged when equal (frame_mn, fPaSST and
   ATST-Frame give 250, BEATs 496);
2. **strong**: a Linear layer per frame -> (B, 250, K);
3. **weak**: a Linear layer on the time mean of the resampled sequence -> (B, K).

How :class:`~audiozoo.AudioModel` runs it (the window attributes below): audio is cut into
``window_seconds`` windows, the last one (or a shorter clip) zero-padded, as upstream's
``inference.py`` does; the head runs on each window; frame outputs are concatenated on one time
grid (``frame_hop = window_seconds / seq_len``, 0.04 s) and cut to the real length, clip outputs
are averaged over the windows. ``model(wave)`` gives the strong logits (B, T, K),
``model.clip_logits(wave)`` the weak ones (B, K), ``model.frame_and_clip_logits(wave)`` both
from one pass, and ``model.embed(wave, frames=True)`` the resampled sequence (B, T, C).

State-dict keys: ``strong.{weight,bias}`` (K, C) and ``weak.{weight,bias}`` (K_weak, C); upstream
``strong_head.*`` / ``weak_head.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_optional_int, check_real
from .._errors import RegistryError
from ..backbones.base import Features
from .base import Head, register_head

__all__ = ["SEDHead", "resample_frames"]


def resample_frames(seq: torch.Tensor, length: int) -> torch.Tensor:
    """Resample a frame sequence along time as PretrainedSED's ``PredictionsWrapper`` does.

    Args:
        seq: (B, L, C) frames.
        length: target number of frames.

    Returns:
        (B, length, C): adaptive average pooling when ``L > length``, linear interpolation with
        ``align_corners=False`` when ``L < length``, ``seq`` itself when ``L == length``.
    """
    frames = seq.shape[1]
    if frames == length:
        return seq
    x = seq.transpose(1, 2)  # (B, C, L)
    if frames > length:
        x = F.adaptive_avg_pool1d(x, length)
    else:
        x = F.interpolate(x, size=length, mode="linear", align_corners=False)
    return x.transpose(1, 2)


@register_head("sed")
class SEDHead(Head):
    """Strong per-frame and weak clip-level linear heads on fixed windows (PretrainedSED).

    Args:
        num_features: backbone embedding size ``C``.
        num_classes: strong (frame) classes ``K`` (447 for AudioSet-Strong).
        num_weak_classes: weak (clip) classes; None means ``num_classes``.
        seq_len: frames per window after resampling (250); None keeps the backbone's frames.
        window_seconds: window length the model cuts audio into before the backbone (10 s,
            the training length); None runs the head on the model's ordinary input (whole
            clips, or the backbone's own windows) without resampling.
        window_overlap: fraction of a window shared by consecutive windows (0: upstream's
            non-overlapping chunks). With overlap every output frame is taken from the window
            in which it lies closest to the centre, and clip outputs average all windows.

    Shapes (per window, as :class:`~audiozoo.AudioModel` calls it):
        :meth:`forward`: Features (B, C, F', L) -> strong logits (B, seq_len, K);
        :meth:`clip`: -> weak logits (B, K_weak); :meth:`sequence`: -> (B, seq_len, C).
    """

    output = "frame"

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        num_weak_classes: int | None = None,
        seq_len: int | None = 250,
        window_seconds: float | None = 10.0,
        window_overlap: float = 0.0,
    ) -> None:
        super().__init__(num_features, num_classes)
        where = self._where()
        num_weak_classes = check_optional_int(num_weak_classes, "num_weak_classes", where)
        seq_len = check_optional_int(seq_len, "seq_len", where)
        window_seconds = check_real(
            window_seconds, "window_seconds", where, low=0.0, strict_low=True, optional=True
        )
        if seq_len is not None and window_seconds is None:
            seq_len = None  # resampling is per window: without windows there is nothing to fix
        window_overlap = check_real(window_overlap, "window_overlap", where, low=0.0)
        if not window_overlap < 1.0:
            raise RegistryError(f"{where}: window_overlap must be in [0, 1), got {window_overlap}")
        self.num_weak_classes = num_weak_classes
        self.seq_len = seq_len
        self.window_seconds = window_seconds
        self.window_overlap = window_overlap
        self.strong = nn.Linear(num_features, num_classes)
        self.weak = nn.Linear(
            num_features, num_classes if num_weak_classes is None else num_weak_classes
        )

    def sequence(self, features: Features) -> torch.Tensor:
        """(B, seq_len, C): the frames both heads read (frequency averaged, then resampled)."""
        seq = features.frames()  # (B, L, C)
        return seq if self.seq_len is None else resample_frames(seq, self.seq_len)

    def forward(self, features: Features) -> torch.Tensor:
        """Strong logits (B, seq_len, K), frames ``window_seconds / seq_len`` seconds apart."""
        return self.strong(self.sequence(features))

    def clip(self, features: Features) -> torch.Tensor:
        """Weak logits (B, K_weak) from the time mean of :meth:`sequence`."""
        return self.weak(self.sequence(features).mean(dim=1))

    def frames_and_clip(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Strong (B, seq_len, K) and weak (B, K_weak) logits from one resampling."""
        seq = self.sequence(features)
        return self.strong(seq), self.weak(seq.mean(dim=1))
