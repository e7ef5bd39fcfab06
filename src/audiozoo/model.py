"""AudioModel: frontend + backbone + head, with freezing, embeddings and the audiozoo format.

Input checks and resampling live in :mod:`audiozoo._inputs`, windows in :mod:`audiozoo._windows`,
outputs from per-window features in :mod:`audiozoo._outputs`, variable-length batches in
:mod:`audiozoo._clips`, layers in :mod:`audiozoo._layers`, the freezing rules in
:mod:`audiozoo._freeze`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from . import _freeze, _inputs, _layers, _outputs, _windows
from ._audio import is_clip_list
from ._clips import ClipGroup, backbone_input, encode_clips, scatter_list, scatter_rows
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
        self._frozen_stages = 0  # 0: nothing frozen; len(stages): frontend and backbone
        self._frozen_by_freeze: set[str] = set()  # parameters freeze() switched off
        if getattr(head, "needs_layers", False) and getattr(head, "layer_dims", 0) is None:
            head.bind(_outputs.layer_dims(self))  # type: ignore[operator]

    # ------------------------------------------------------------------ properties
    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) the model expects; other rates need ``sample_rate=`` in calls."""
        return self.frontend.sample_rate

    @property
    def frame_hop(self) -> float:
        """Seconds between consecutive output frames of frame heads and ``embed(frames=True)``
        (a head with fixed windows of ``seq_len`` frames: ``window_seconds / seq_len``)."""
        fixed = _windows.head_windows(self.head, self.frontend.sample_rate)
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
        checked: audio at another rate gives wrong outputs silently); with it (a positive integer
        number of Hz, at least 1000), the input is resampled to :attr:`sample_rate` first. Short
        clips are zero-padded to the shortest length the model accepts (a clip shorter than one
        analysis window of the frontend also gets a warning); on backbones with a maximum input
        length (PaSST, AST) longer clips run in overlapping windows (see
        ``docs/guides/long-and-short-audio.md``): clip heads run on every window and their
        outputs are averaged, frame heads run once on the stitched frames. A head with fixed
        windows (``sed``) runs on each window; its frames are concatenated.

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
            :attr:`frame_hop` seconds apart; see the guide for a clip within one window) or (B, C) embeddings, depending
            on the head; without the batch axis for a single (N,) clip. For a list of clips or
            ``lengths=``: clip outputs (B, K), frame outputs a list of B tensors (T'_i, K).
        """
        frame = getattr(self.head, "output", "clip") == "frame"
        # clip heads, embedding heads and plain modules: per window, then the mean
        fn = _outputs.frame_logits if frame else _outputs.window_mean
        return self._each(waveform, sample_rate, lengths, fn, frames=int(frame))[0]

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
        return self._each(waveform, sample_rate, lengths, _outputs.clip_logits)[0]  # type: ignore[no-any-return]

    def frame_and_clip_logits(
        self, waveform: Any, sample_rate: int | None = None, lengths: Any = None
    ) -> FrameClipLogits:
        """:meth:`forward`'s frame logits (B, T', K) and :meth:`clip_logits` (B, K) from one
        pass through frontend and backbone (heads with a clip output: ``sed``). Same input
        handling as :meth:`forward`: for a list of clips or ``lengths=`` the frames are a list
        of (T'_i, K) tensors."""
        if getattr(self.head, "output", "clip") != "frame":
            raise TypeError(
                f"frame_and_clip_logits needs a frame head with a clip output (such as 'sed'), "
                f"not {type(self.head).__name__}; use model(wave) or model.clip_logits(wave)"
            )
        fns = (_outputs.frame_logits, _outputs.clip_logits)
        return FrameClipLogits(*self._each(waveform, sample_rate, lengths, *fns, frames=1))

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
        last = len(names) - 1
        chosen = [last] if layers is None else _layers.layer_indices(names, layers, self.arch)
        seq = [partial(_outputs.layer_frames, index=i) for i in chosen] if frames else []
        pooled = [] if frames is True else [partial(_outputs.layer_clip, index=i) for i in chosen]
        hidden = [i for i in chosen if i != last]
        out = self._each(
            waveform, sample_rate, lengths, *seq, *pooled, frames=len(seq), layers=hidden
        )
        k = len(chosen)
        values = [(out[k + j], out[j]) if frames == "both" else out[j] for j in range(k)]
        if layers is None:
            return values[0]
        return dict(zip([names[i] for i in chosen], values, strict=True))

    def _each(
        self,
        waveform: Any,
        sample_rate: Any,
        lengths: Any,
        *fns: Callable[..., torch.Tensor],
        frames: int = 0,
        layers: list[int] | None = None,
    ) -> tuple[Any, ...]:
        """``fn(model, features, plan)`` for each of ``fns`` on a batch, one clip or a list of clips
        (or ``lengths=``); the first ``frames`` of them give frame outputs (a list per clip for a
        list input), the others (B, ...) rows. ``layers``:
        hidden layers to record (default: those the head reads)."""
        wanted = self._head_layers() if layers is None else layers
        if lengths is not None or is_clip_list(waveform):
            clips = _inputs.prepare_clips(
                self.frontend, waveform, lengths, sample_rate, self.device
            )
            groups = self._encode_clips(clips, wanted)
            return tuple(
                scatter_list(groups, lambda g, fn=fn: list(fn(self, g.feats, g.plan)))  # type: ignore[misc]
                if i < frames
                else scatter_rows(groups, lambda g, fn=fn: fn(self, g.feats, g.plan))  # type: ignore[misc]
                for i, fn in enumerate(fns)
            )
        wave, unbatched = _inputs.prepare(self.frontend, waveform, sample_rate, self.device)
        feats, plan = self._encode(wave, wanted)
        return tuple(fn(self, feats, plan)[0] if unbatched else fn(self, feats, plan) for fn in fns)

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
        return _outputs.merge(self, *self._encode(waveform))

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

    def _head_layers(self) -> list[int]:
        """Stages whose features the head consumes (heads with ``needs_layers``), else []."""
        if not getattr(self.head, "needs_layers", False):
            return []
        return list(range(len(self.layer_names) - 1))

    # ------------------------------------------------------------------ encoding
    def _plan(self, num_samples: int) -> _windows.WindowPlan:
        return _windows.plan_for_head(self.frontend, self.backbone, self.head, num_samples)

    def _encode(
        self, wave: torch.Tensor, layers: list[int] | None = None
    ) -> tuple[Features, _windows.WindowPlan]:
        """Pad or cut (B, N) into windows and run frontend + backbone on all windows at once."""
        plan = self._plan(wave.shape[-1])
        with self._no_grad_if_frozen():
            spec = backbone_input(self.frontend(_windows.split(wave, plan)), self.backbone)
            feats = _layers.run_backbone(self.backbone, spec, layers or [])
        assert feats is not None  # only forward_lengths may decline
        return feats, plan

    def _encode_clips(self, clips: list[torch.Tensor], layers: list[int]) -> list[ClipGroup]:
        """Clips of different lengths, each exactly as it runs alone (:mod:`audiozoo._clips`)."""
        with self._no_grad_if_frozen():
            return encode_clips(clips, layers, self._plan, self.frontend, self.backbone)

    # ------------------------------------------------------------------ freezing
    def freeze(self, stages: bool | int = True) -> AudioModel:
        """Freeze exactly the frontend and the first ``stages`` backbone stages (``True``: the
        whole backbone; ``False`` or 0: nothing) and unfreeze the rest.

        Frozen parts get ``requires_grad=False`` *and* stay in eval mode after ``model.train()``,
        so their BatchNorm statistics and dropout do not change. When the whole backbone is frozen,
        its forward runs under ``torch.no_grad()`` (no autograd graph, less memory). Parts that
        are no longer frozen get ``requires_grad=True`` back for the parameters ``freeze`` had
        switched off (one you set to ``False`` yourself before stays ``False``) and follow
        ``train()``/``eval()`` again.

        Raises:
            RegistryError: for anything but a bool or an integer from 0 to the number of stages.
        """
        n = _freeze.frozen_stages(stages, len(self.backbone.stages()))
        self._frozen_by_freeze = _freeze.set_frozen(self, n, self._frozen_by_freeze)
        self._frozen_stages = n
        return self.train(self.training)

    @property
    def frozen(self) -> bool:
        """True when frontend and the whole backbone are frozen."""
        return self._frozen_stages == len(self.backbone.stages())

    def train(self, mode: bool = True) -> AudioModel:
        super().train(mode)
        _freeze.eval_frozen(self, self._frozen_stages)
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
