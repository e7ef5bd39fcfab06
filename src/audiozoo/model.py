"""AudioModel: frontend + backbone + head, with freezing, embeddings and the audiozoo format."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from . import _windows
from ._audio import as_waveform
from ._registry import frontends
from ._version import __version__
from .backbones.base import Backbone, Features
from .frontends.base import Frontend
from .heads.base import Head
from .pretrained import PretrainedCfg

__all__ = ["AudioModel", "FrameClipLogits"]


class FrameClipLogits(NamedTuple):
    """Frame and clip outputs of one pass (:meth:`AudioModel.frame_and_clip_logits`).

    Attributes:
        frames: (B, T', K) frame logits, :attr:`AudioModel.frame_hop` seconds apart.
        clip: (B, K_clip) clip logits (PretrainedSED's weak head).
    """

    frames: torch.Tensor
    clip: torch.Tensor


class AudioModel(nn.Module):
    """A waveform-in model: ``frontend`` → ``backbone`` → ``head``.

    Build it with :func:`audiozoo.create`. ``model(waveform)`` returns one tensor: (B, K) clip
    logits for clip heads, (B, T', K) frame logits for frame heads, (B, C) embeddings for the
    identity head. A single clip (N,) gives outputs without the batch axis. Heads with a clip
    output next to their frames (the ``sed`` head's weak logits) give it through
    :meth:`clip_logits`, both at once through :meth:`frame_and_clip_logits`.

    A head can declare the fixed windows it was trained on (``window_seconds``, optionally
    ``seq_len`` frames per window and ``window_overlap``; the ``sed`` head: 10 s, 250 frames, no
    overlap). The model then cuts every clip into such windows, zero-padding the last one, runs
    the head on each window and concatenates the frame outputs (``_windows.plan_fixed_windows``).

    Attributes:
        frontend: waveform (B, N) → spectrogram (B, 1, F, T).
        backbone: spectrogram → :class:`~audiozoo.backbones.Features`.
        head: features → task output.
        pretrained_cfg: the configuration the model was built from.
        labels: class names of the head's outputs, when known.
        arch: registered architecture name.
        backbone_kwargs: the arguments the backbone was built with.
    """

    def __init__(
        self,
        frontend: Frontend,
        backbone: Backbone,
        head: Head | nn.Module,
        *,
        pretrained_cfg: PretrainedCfg,
        backbone_kwargs: dict[str, Any] | None = None,
        labels: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.backbone = backbone
        self.head = head
        self.pretrained_cfg = pretrained_cfg
        self.arch = pretrained_cfg.arch
        self.backbone_kwargs = dict(backbone_kwargs or {})
        self.labels = labels
        self._frozen_stages = 0  # 0: nothing frozen; len(stages) + 1: frontend and backbone

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) the model expects; other rates need ``sample_rate=`` in calls."""
        return self.frontend.sample_rate

    @property
    def frame_hop(self) -> float:
        """Seconds between consecutive output frames of frame heads and ``embed(frames=True)``
        (a head with fixed windows of ``seq_len`` frames: ``window_seconds / seq_len``)."""
        fixed = self._fixed_windows()
        if fixed is not None and fixed[1] is not None:
            return fixed[0] / fixed[1] / self.frontend.sample_rate
        return self.frontend.hop_length * self.backbone.time_stride / self.frontend.sample_rate

    @property
    def num_features(self) -> int:
        """Embedding size ``C``."""
        return self.backbone.num_features

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ forward
    def forward(self, waveform: Any, sample_rate: int | None = None) -> torch.Tensor:
        """Run the model on audio of any length.

        Without ``sample_rate`` the input is assumed to be at :attr:`sample_rate` (it is not
        checked: audio at another rate gives wrong outputs silently); with it, the input is
        resampled to :attr:`sample_rate` first. Short clips are zero-padded to the shortest length
        the model accepts; on backbones with a maximum input length (PaSST, AST) longer clips run
        in overlapping windows (see ``docs/guides/long-and-short-audio.md``): clip heads run on
        every window and their outputs are averaged, frame heads run once on the stitched frames.
        A head with fixed windows (``sed``) runs on each window; its frames are concatenated.

        Args:
            waveform: (B, N), (N,) or (B, C, N) audio (tensor, numpy array or list; validated by
                :func:`~audiozoo._audio.as_waveform`, moved to the model's device).
            sample_rate: the input's sample rate in Hz; None means :attr:`sample_rate`.

        Returns:
            (B, K) clip logits, (B, T', K) frame logits (``T' ≈ ceil(N / frame_hop)``, frames
            :attr:`frame_hop` seconds apart) or (B, C) embeddings, depending on the head; without
            the batch axis for a single (N,) clip.
        """
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave)
        frame_head = getattr(self.head, "output", "clip") == "frame"
        if frame_head and self._fixed_windows() is not None:  # per window, then concatenated
            out = _windows.stitch_frames(self.head(feats), plan)
        elif frame_head:
            out = self.head(self._merge(feats, plan))
        else:  # clip heads, embedding heads and plain modules: per window, then the mean
            out = _windows.average(self.head(feats), plan)
        return out[0] if unbatched else out

    def clip_logits(self, waveform: Any, sample_rate: int | None = None) -> torch.Tensor:
        """Clip-level logits (B, K) of audio of any length (same input handling as
        :meth:`forward`).

        For heads with a clip output next to their frame output (the ``sed`` head: PretrainedSED's
        weak head on the time mean of each window) this is that output, averaged over the windows;
        for clip heads it equals :meth:`forward`.

        Raises:
            TypeError: for frame heads without a clip output (``frame``, ``rnn``).
        """
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave)
        out = self._clip(feats, plan)
        return out[0] if unbatched else out

    def frame_and_clip_logits(
        self, waveform: Any, sample_rate: int | None = None
    ) -> FrameClipLogits:
        """:meth:`forward`'s frame logits (B, T', K) and :meth:`clip_logits` (B, K) from one
        pass through frontend and backbone (heads with a clip output: ``sed``)."""
        if getattr(self.head, "output", "clip") != "frame":
            raise TypeError(
                f"frame_and_clip_logits needs a frame head with a clip output (such as 'sed'), "
                f"not {type(self.head).__name__}; use model(wave) or model.clip_logits(wave)"
            )
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave)
        clip = self._clip(feats, plan)
        if self._fixed_windows() is not None:
            frames = _windows.stitch_frames(self.head(feats), plan)
        else:
            frames = self.head(self._merge(feats, plan))
        return FrameClipLogits(frames[0], clip[0]) if unbatched else FrameClipLogits(frames, clip)

    def _clip(self, feats: Features, plan: _windows.WindowPlan) -> torch.Tensor:
        head = self.head
        clip = getattr(head, "clip", None)
        if callable(clip):
            if self._fixed_windows() is not None:
                return _windows.average(clip(feats), plan)
            return clip(self._merge(feats, plan))
        if getattr(head, "output", "clip") == "clip":
            return _windows.average(head(feats), plan)
        raise TypeError(
            f"{type(head).__name__} has no clip output ({getattr(head, 'output', '?')} head); "
            "clip_logits needs a clip head or a frame head with one (such as 'sed')"
        )

    def embed(
        self, waveform: Any, *, frames: bool = False, sample_rate: int | None = None
    ) -> torch.Tensor:
        """Backbone embeddings of audio of any length (same input handling as :meth:`forward`).

        Returns:
            (B, C) clip embedding (the mean of the window embeddings for windowed audio), or with
            ``frames=True`` (B, T', C) frame embeddings :attr:`frame_hop` seconds apart (for a
            head with fixed windows: the frames the head reads, e.g. the ``sed`` head's sequence
            resampled to 250 frames per 10 s).
        """
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave)
        if frames:
            out = self._merge(feats, plan).frames()
        else:
            out = _windows.average(feats.pooled(), plan)
        return out[0] if unbatched else out

    def features(self, waveform: torch.Tensor) -> Features:
        """Backbone features of a validated (B, N) float32 waveform at :attr:`sample_rate`.

        Returns:
            :class:`~audiozoo.backbones.Features` of the whole clip: the grid has the clip's
            frames (stitched over windows for long audio, cut to the real duration for padded
            short clips), the token (transformers) is the mean over windows. This is what frame
            heads see; clip heads in :meth:`forward` see each window's own features instead.
            For a head with fixed windows the grid is (B, C, 1, T'): the frames the head reads
            (its ``sequence()``, e.g. resampled to ``seq_len`` per window), concatenated.
        """
        return self._merge(*self._encode(waveform))

    def _fixed_windows(self) -> tuple[int, int | None, float] | None:
        """(window samples, frames per window or None, overlap) when the head declares fixed
        windows (``window_seconds``), else None."""
        seconds = getattr(self.head, "window_seconds", None)
        if seconds is None:
            return None
        frames = getattr(self.head, "seq_len", None)
        overlap = float(getattr(self.head, "window_overlap", 0.0))
        return round(seconds * self.frontend.sample_rate), frames, overlap

    def _plan(self, num_samples: int) -> _windows.WindowPlan:
        fixed = self._fixed_windows()
        if fixed is None:
            return _windows.plan_windows(self.frontend, self.backbone, num_samples)
        window, frames, overlap = fixed
        return _windows.plan_fixed_windows(
            self.frontend,
            self.backbone,
            num_samples,
            window=window,
            frames_per_window=frames,
            overlap=overlap,
        )

    def _encode(self, wave: torch.Tensor) -> tuple[Features, _windows.WindowPlan]:
        """Pad or cut (B, N) into windows and run frontend + backbone on all windows at once."""
        plan = self._plan(wave.shape[-1])
        with self._no_grad_if_frozen():
            spec = self.frontend(_windows.split(wave, plan))
            feats = self.backbone(spec)
        return feats, plan

    def _merge(self, feats: Features, plan: _windows.WindowPlan) -> Features:
        """Per-window features -> one Features per clip (stitched grid, averaged token)."""
        token = None if feats.token is None else _windows.average(feats.token, plan)
        if self._fixed_windows() is not None:
            sequence = getattr(self.head, "sequence", None)
            frames = sequence(feats) if callable(sequence) else feats.frames()  # (B*n, T'w, C)
            grid = _windows.stitch_frames(frames, plan).transpose(1, 2).unsqueeze(2)
            return Features(grid=grid, token=token)
        # a backbone's own chunks (CED) only exist when AudioModel did not window the clip
        chunks = feats.chunk_tokens if plan.count == 1 else None
        return Features(grid=_windows.stitch(feats.grid, plan), token=token, chunk_tokens=chunks)

    def _prepare(self, waveform: Any, sample_rate: int | None) -> tuple[torch.Tensor, bool]:
        wave, unbatched = as_waveform(waveform, device=self.device)
        if sample_rate is not None and sample_rate != self.sample_rate:
            from .resample import resample

            wave = resample(wave, int(sample_rate), self.sample_rate)
        return wave, unbatched

    # ------------------------------------------------------------------ freezing
    def freeze(self, stages: bool | int = True) -> AudioModel:
        """Freeze the frontend and backbone (``True``) or the first ``stages`` backbone stages.

        Frozen parts get ``requires_grad=False`` *and* stay in eval mode after ``model.train()``,
        so their BatchNorm statistics and dropout do not change. When the whole backbone is frozen,
        its forward runs under ``torch.no_grad()`` (no autograd graph, less memory).
        """
        all_stages = self.backbone.stages()
        n = len(all_stages) if stages is True else int(stages)
        if not 0 <= n <= len(all_stages):
            raise ValueError(
                f"freeze={stages!r}: the backbone has {len(all_stages)} stages; pass True, False "
                f"or a number of stages from 0 to {len(all_stages)}"
            )
        modules: list[nn.Module] = [self.frontend, *all_stages[:n]] if n else []
        for m in modules:
            for p in m.parameters():
                p.requires_grad_(False)
        self._frozen_stages = n
        self.train(self.training)
        return self

    @property
    def frozen(self) -> bool:
        """True when frontend and the whole backbone are frozen."""
        return self._frozen_stages == len(self.backbone.stages())

    def train(self, mode: bool = True) -> AudioModel:
        super().train(mode)
        if self._frozen_stages:
            self.frontend.eval()
            if self.frozen:
                self.backbone.eval()
            for stage in self.backbone.stages()[: self._frozen_stages]:
                stage.eval()
        return self

    def _no_grad_if_frozen(self) -> contextlib.AbstractContextManager[Any]:
        return torch.no_grad() if self.frozen else contextlib.nullcontext()

    # ------------------------------------------------------------------ format
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model from registered parts (the audiozoo format)."""
        head_cfg = self.head.config() if isinstance(self.head, Head) else None
        return {
            "audiozoo_version": __version__,
            "architecture": self.arch,
            "pretrained_name": self.pretrained_cfg.name,
            "backbone_kwargs": self.backbone_kwargs,
            "frontend": {"name": frontends.name_of(type(self.frontend)), **self.frontend.config()},
            "head": head_cfg,
            "labels": self.labels,
        }

    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write the audiozoo format (``config.json`` + ``model.safetensors``) into ``path``;
        ``audiozoo.create(f"local-dir:{path}")`` rebuilds the model."""
        from .format import save_pretrained

        return save_pretrained(self, path)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload the audiozoo format and a model card to the Hub repository ``repo_id``;
        ``audiozoo.create(f"hf-hub:{repo_id}")`` loads it. See :func:`audiozoo.format.push_to_hub`."""
        from .format import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, sample_rate={self.sample_rate}, frame_hop={self.frame_hop:g}"
