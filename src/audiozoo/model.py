"""AudioModel: frontend + backbone + head, with freezing, embeddings and the audiozoo format."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

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

__all__ = ["AudioModel"]


class AudioModel(nn.Module):
    """A waveform-in model: ``frontend`` → ``backbone`` → ``head``.

    Build it with :func:`audiozoo.create`. ``model(waveform)`` returns one tensor: (B, K) clip
    logits for clip heads, (B, T', K) frame logits for frame heads, (B, C) embeddings for the
    identity head. A single clip (N,) gives outputs without the batch axis.

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
        """Seconds between consecutive output frames of frame heads and ``embed(frames=True)``."""
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
        if getattr(self.head, "output", "clip") == "frame":
            out = self.head(self._merge(feats, plan))
        else:  # clip heads, embedding heads and plain modules: per window, then the mean
            out = _windows.average(self.head(feats), plan)
        return out[0] if unbatched else out

    def embed(
        self, waveform: Any, *, frames: bool = False, sample_rate: int | None = None
    ) -> torch.Tensor:
        """Backbone embeddings of audio of any length (same input handling as :meth:`forward`).

        Returns:
            (B, C) clip embedding (the mean of the window embeddings for windowed audio), or with
            ``frames=True`` (B, T', C) frame embeddings :attr:`frame_hop` seconds apart.
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
        """
        return self._merge(*self._encode(waveform))

    def _encode(self, wave: torch.Tensor) -> tuple[Features, _windows.WindowPlan]:
        """Pad or cut (B, N) into windows and run frontend + backbone on all windows at once."""
        plan = _windows.plan_windows(self.frontend, self.backbone, wave.shape[-1])
        with self._no_grad_if_frozen():
            spec = self.frontend(_windows.split(wave, plan))
            feats = self.backbone(spec)
        return feats, plan

    @staticmethod
    def _merge(feats: Features, plan: _windows.WindowPlan) -> Features:
        token = None if feats.token is None else _windows.average(feats.token, plan)
        return Features(grid=_windows.stitch(feats.grid, plan), token=token)

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
