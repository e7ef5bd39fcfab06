"""AudioModel: frontend + backbone + head, with freezing, embeddings and the audiozoo format."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from . import _layers, _windows
from ._audio import as_clip_list, as_waveform, is_clip_list
from ._clips import ClipGroup, encode_clips, groups_by, scatter_list, scatter_outputs, scatter_rows
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
        if getattr(head, "needs_layers", False) and getattr(head, "layer_dims", 0) is None:
            head.bind(self._probe_layer_dims())  # type: ignore[operator]

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
    def forward(
        self,
        waveform: Any,
        sample_rate: int | None = None,
        *,
        lengths: Any = None,
    ) -> Any:
        """Run the model on audio of any length.

        Without ``sample_rate`` the input is assumed to be at :attr:`sample_rate` (it is not
        checked: audio at another rate gives wrong outputs silently); with it, the input is
        resampled to :attr:`sample_rate` first. Short clips are zero-padded to the shortest length
        the model accepts; on backbones with a maximum input length (PaSST, AST) longer clips run
        in overlapping windows (see ``docs/guides/long-and-short-audio.md``): clip heads run on
        every window and their outputs are averaged, frame heads run once on the stitched frames.
        A head with fixed windows (``sed``) runs on each window; its frames are concatenated.

        Clips of different lengths: pass a list of 1-D clips (tensors or numpy arrays; a 2-D item
        is (channels, N) and is mixed to mono), or a padded (B, N) batch with ``lengths=`` (real
        samples per clip). Every clip then gives what it gives alone (within float tolerance):
        clip outputs pool only over its own frames, frame outputs come back as a **list** of
        (T'_i, K) tensors cut to each clip's duration (see ``docs/guides/variable-length.md``).

        Args:
            waveform: (B, N), (N,) or (B, C, N) audio (tensor, numpy array or list; validated by
                :func:`~audiozoo._audio.as_waveform`, moved to the model's device), or a list of
                clips of any lengths.
            sample_rate: the input's sample rate in Hz; None means :attr:`sample_rate`.
            lengths: (B,) real samples of each row of a padded (B, N) ``waveform``
                (at ``sample_rate``), or None.

        Returns:
            (B, K) clip logits, (B, T', K) frame logits (``T' ≈ ceil(N / frame_hop)``, frames
            :attr:`frame_hop` seconds apart) or (B, C) embeddings, depending on the head; without
            the batch axis for a single (N,) clip. For a list of clips or ``lengths=``: clip
            outputs (B, K), frame outputs a list of B tensors (T'_i, K).
        """
        wanted = self._head_layers()
        if lengths is not None or is_clip_list(waveform):
            groups = self._encode_clips(self._prepare_clips(waveform, lengths, sample_rate), wanted)
            if getattr(self.head, "output", "clip") == "frame":
                return scatter_list(groups, lambda g: list(self._frame_logits(g.feats, g.plan)))
            return scatter_rows(groups, lambda g: _windows.average(self.head(g.feats), g.plan))
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave, wanted)
        if getattr(self.head, "output", "clip") == "frame":
            out = self._frame_logits(feats, plan)
        else:  # clip heads, embedding heads and plain modules: per window, then the mean
            out = _windows.average(self.head(feats), plan)
        return out[0] if unbatched else out

    def clip_logits(
        self, waveform: Any, sample_rate: int | None = None, lengths: Any = None
    ) -> torch.Tensor:
        """Clip-level logits (B, K) of audio of any length (same input handling as
        :meth:`forward`, lists of clips and ``lengths=`` included).

        For heads with a clip output next to their frame output (the ``sed`` head: PretrainedSED's
        weak head on the time mean of each window) this is that output, averaged over the windows;
        for clip heads it equals :meth:`forward`.

        Raises:
            TypeError: for frame heads without a clip output (``frame``, ``rnn``).
        """
        wanted = self._head_layers()
        if lengths is not None or is_clip_list(waveform):
            groups = self._encode_clips(self._prepare_clips(waveform, lengths, sample_rate), wanted)
            return scatter_rows(groups, lambda g: self._clip(g.feats, g.plan))
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave, wanted)
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
        feats, plan = self._encode(wave, self._head_layers())
        clip = self._clip(feats, plan)
        frames = self._frame_logits(feats, plan)
        return FrameClipLogits(frames[0], clip[0]) if unbatched else FrameClipLogits(frames, clip)

    def _frame_logits(self, feats: Features, plan: _windows.WindowPlan) -> torch.Tensor:
        """A frame head's (B, T', K) output: per fixed window then concatenated (``sed``), or
        once on the stitched frames."""
        if self._fixed_windows() is not None:
            return _windows.stitch_frames(self.head(feats), plan)
        return self.head(self._merge(feats, plan))  # type: ignore[no-any-return]

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
        self,
        waveform: Any,
        *,
        frames: bool | str = False,
        sample_rate: int | None = None,
        lengths: Any = None,
        layers: Any = None,
    ) -> Any:
        """Backbone embeddings of audio of any length (same input handling as :meth:`forward`).

        Args:
            waveform: as in :meth:`forward`: a batch, one clip, or a list of clips.
            sample_rate: as in :meth:`forward`.
            lengths: as in :meth:`forward`.
            frames: frame embeddings instead of clip embeddings; ``"both"``: the pair
                ``(clip, frames)`` from one forward.
            layers: None (the backbone's output), ``"all"``, or a layer name or index, or a list
                of them, from :attr:`layer_names` (negative indices count from the end; the last
                layer is the backbone's output).

        Returns:
            (B, C) clip embedding (the mean of the window embeddings for windowed audio), or with
            ``frames=True`` (B, T', C) frame embeddings :attr:`frame_hop` seconds apart (for a
            head with fixed windows: the frames the head reads, e.g. the ``sed`` head's sequence
            resampled to 250 frames per 10 s); without
            the batch axis for a single (N,) clip; for a list of clips or ``lengths=`` the frame
            embeddings are a list of (T'_i, C). With ``layers``: a dict ``name -> embedding`` of
            the chosen layers, in network order, each as above (a layer's frames are
            ``layer_frame_hops[name]`` seconds apart; its width is the layer's own).
        """
        if frames not in (True, False, "both"):
            raise ValueError(f"frames= must be True, False or 'both', got {frames!r}")
        names = self.layer_names
        chosen = None if layers is None else _layers.layer_indices(names, layers, self.arch)
        wanted = [i for i in chosen if i != len(names) - 1] if chosen is not None else []

        def outputs(feats: Features, plan: _windows.WindowPlan) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for i in chosen if chosen is not None else [len(names) - 1]:
                name = names[i]
                layer = feats if i == len(names) - 1 else (feats.layers or {})[name]
                clip = None if frames is True else _windows.average(layer.pooled(), plan)
                seq = None
                if frames:
                    ratio = _layers.layer_ratio(self.backbone, i)
                    _layers.check_layer_frames(self.backbone, i, layer, feats, ratio)
                    if i != len(names) - 1 and self._fixed_windows() is not None:
                        seq = self._stitch_fixed_layer(i, layer, plan).frames()
                    else:
                        seq = self._stitch_layer(layer, plan, ratio).frames()
                out[name] = clip if seq is None else seq if clip is None else (clip, seq)
            return out

        if lengths is not None or is_clip_list(waveform):
            groups = self._encode_clips(self._prepare_clips(waveform, lengths, sample_rate), wanted)
            per_layer = scatter_outputs(
                groups, {id(g): outputs(g.feats, g.plan) for g in groups}, frames
            )
            return per_layer if chosen is not None else per_layer[names[-1]]
        wave, unbatched = self._prepare(waveform, sample_rate)
        feats, plan = self._encode(wave, wanted)
        result = outputs(feats, plan)
        if unbatched:
            result = {
                k: (v[0][0], v[1][0]) if isinstance(v, tuple) else v[0] for k, v in result.items()
            }
        return result if chosen is not None else result[names[-1]]

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
        return _windows.head_windows(self.head, self.frontend.sample_rate)

    def _plan(self, num_samples: int) -> _windows.WindowPlan:
        return _windows.plan_for_head(self.frontend, self.backbone, self.head, num_samples)

    # ------------------------------------------------------------------ layers
    @property
    def layer_names(self) -> list[str]:
        """Names of the backbone's layers, input to output (``embed(layers=...)``); the last is
        the backbone's output. See ``docs/guides/layers.md`` for each family's names and shapes."""
        return self.backbone.layer_names()

    @property
    def layer_frame_hops(self) -> dict[str, float]:
        """Seconds between the frames of each layer (``embed(frames=True, layers=...)``)."""
        hop = self.frontend.hop_length / self.frontend.sample_rate
        strides = self.backbone.layer_time_strides()
        return {n: hop * s for n, s in zip(self.layer_names, strides, strict=True)}

    def _stitch_fixed_layer(
        self, index: int, layer: Features, plan: _windows.WindowPlan
    ) -> Features:
        """A hidden layer's frames from the fixed windows of a head such as ``sed``: the
        windows' own frames on the layer's grid (not the head's resampled one), joined in time."""
        hop = self.frontend.hop_length * self.backbone.layer_time_strides()[index]
        grid_plan = _layers.fixed_window_plan(
            plan, hop, layer.grid.shape[-1], f"the {type(self.head).__name__} head's windows"
        )
        token = None if layer.token is None else _windows.average(layer.token, plan)
        return Features(grid=_windows.stitch(layer.grid, grid_plan), token=token)

    def _stitch_layer(self, layer: Features, plan: _windows.WindowPlan, ratio: int) -> Features:
        if ratio == 1:
            return self._merge(layer, plan)
        return self._merge(layer, _windows.layer_plan(plan, ratio, layer.grid.shape[-1]))

    def _probe_layer_dims(self) -> list[int]:
        """Width of every layer, from one dry run on silence of the shortest accepted length."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                n = _windows.min_samples(self.frontend, self.backbone)
                out = self.embed(torch.zeros(1, n, device=self.device), layers="all")
        finally:
            self.train(was_training)
        return [int(v.shape[-1]) for v in out.values()]

    def _head_layers(self) -> list[int]:
        """Stages whose features the head consumes (heads with ``needs_layers``), else []."""
        if not getattr(self.head, "needs_layers", False):
            return []
        return list(range(len(self.layer_names) - 1))

    # ------------------------------------------------------------------ encoding
    def _encode(
        self, wave: torch.Tensor, layers: list[int] | None = None
    ) -> tuple[Features, _windows.WindowPlan]:
        """Pad or cut (B, N) into windows and run frontend + backbone on all windows at once."""
        plan = self._plan(wave.shape[-1])
        with self._no_grad_if_frozen():
            spec = self.frontend(_windows.split(wave, plan))
            feats = _layers.run_backbone(self.backbone, spec, layers or [])
        assert feats is not None  # only forward_lengths may decline
        return feats, plan

    def _encode_clips(self, clips: list[torch.Tensor], layers: list[int]) -> list[ClipGroup]:
        """Clips of different lengths, each exactly as it runs alone (:mod:`audiozoo._clips`)."""
        with self._no_grad_if_frozen():
            return encode_clips(clips, layers, self._plan, self.frontend, self.backbone)

    def _prepare_clips(self, waveform: Any, lengths: Any, sample_rate: int | None) -> list[Any]:
        clips = as_clip_list(waveform, lengths, device=self.device)
        if sample_rate is not None and sample_rate != self.sample_rate:
            from .resample import resample

            out: list[torch.Tensor | None] = [None] * len(clips)
            for idx in groups_by(clips, lambda c: c.shape[-1]).values():
                batch = resample(
                    torch.stack([clips[i] for i in idx]), int(sample_rate), self.sample_rate
                )
                for row, i in enumerate(idx):
                    out[i] = batch[row]
            clips = out  # type: ignore[assignment]
        return clips

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
