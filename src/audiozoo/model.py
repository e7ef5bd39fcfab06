"""AudioModel: frontend + backbone + head, with freezing, embeddings and the audiozoo format."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from . import _windows
from ._audio import as_clip_list, as_waveform, is_clip_list
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
                return _scatter_list(groups, lambda g: list(self._frame_logits(g.feats, g.plan)))
            return _scatter_rows(groups, lambda g: _windows.average(self.head(g.feats), g.plan))
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
            return _scatter_rows(groups, lambda g: self._clip(g.feats, g.plan))
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
        chosen = None if layers is None else self._layer_indices(layers)
        wanted = [i for i in chosen if i != len(names) - 1] if chosen is not None else []

        def outputs(feats: Features, plan: _windows.WindowPlan) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for i in chosen if chosen is not None else [len(names) - 1]:
                name = names[i]
                layer = feats if i == len(names) - 1 else (feats.layers or {})[name]
                clip = None if frames is True else _windows.average(layer.pooled(), plan)
                seq = None
                if frames:
                    ratio = self._layer_ratio(i)
                    self._check_layer_frames(i, layer, feats, ratio)
                    if i != len(names) - 1 and self._fixed_windows() is not None:
                        seq = self._stitch_fixed_layer(i, layer, plan).frames()
                    else:
                        seq = self._stitch_layer(layer, plan, ratio).frames()
                out[name] = clip if seq is None else seq if clip is None else (clip, seq)
            return out

        if lengths is not None or is_clip_list(waveform):
            groups = self._encode_clips(self._prepare_clips(waveform, lengths, sample_rate), wanted)
            per_group = {id(g): outputs(g.feats, g.plan) for g in groups}

            def gather(key: str, part: int | None) -> Any:
                def pick(g: _Group) -> Any:
                    value = per_group[id(g)][key]
                    return value if part is None else value[part]

                if frames is True or part == 1:
                    return _scatter_list(groups, lambda g: list(pick(g)))
                return _scatter_rows(groups, pick)

            per_layer = {
                key: (gather(key, 0), gather(key, 1)) if frames == "both" else gather(key, None)
                for key in next(iter(per_group.values()))
            }
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

    def _layer_indices(self, layers: Any) -> list[int]:
        names = self.layer_names
        if isinstance(layers, str) and layers == "all":
            return list(range(len(names)))
        items = [layers] if isinstance(layers, (str, int)) else list(layers)
        if not items:
            raise ValueError("layers= is empty; pass 'all', a layer name or index, or a list")
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise TypeError(f"layers= takes names or indices, got {item!r}")
            if isinstance(item, int):
                if not -len(names) <= item < len(names):
                    raise IndexError(
                        f"layer index {item} out of range: {self.arch} has {len(names)} layers "
                        f"({names[0]} ... {names[-1]}); see model.layer_names"
                    )
                out.append(item % len(names))
            elif item in names:
                out.append(names.index(item))
            else:
                raise ValueError(
                    f"unknown layer {item!r} for {self.arch}; its layers are {names} "
                    "(or pass 'all' or indices)"
                )
        return sorted(set(out))

    def _layer_ratio(self, index: int) -> int:
        """Frames of layer ``index`` per output frame of the backbone (1 for the last layer and
        for transformers, 16 for the first stage of a MobileNet)."""
        strides = self.backbone.layer_time_strides()
        ratio, rest = divmod(self.backbone.time_stride, strides[index])
        if rest:
            raise ValueError(
                f"layer {self.layer_names[index]!r} has time stride {strides[index]}, which does "
                f"not divide the backbone's {self.backbone.time_stride}"
            )
        return ratio

    def _check_layer_frames(self, index: int, layer: Features, out: Features, ratio: int) -> None:
        """A layer's frames per window must fit its declared time stride (a family whose stages
        downsample in time and that does not override ``layer_time_strides`` fails here)."""
        have, final = layer.grid.shape[-1], out.grid.shape[-1]
        # same rate: the same frames exactly; finer: conv rounding at the edges
        if (have != final) if ratio == 1 else abs(have - ratio * final) > ratio + 1:
            raise NotImplementedError(
                f"layer {self.layer_names[index]!r} of {type(self.backbone).__name__} has {have} "
                f"frames where its time stride {self.backbone.layer_time_strides()[index]} "
                f"predicts about {ratio * final}: the backbone must override "
                "layer_time_strides(), or layer_features() for a layer of tokens (see "
                "docs/guides/adding-a-family.md)"
            )

    def _stitch_fixed_layer(
        self, index: int, layer: Features, plan: _windows.WindowPlan
    ) -> Features:
        """A hidden layer's frames from the fixed windows of a head such as ``sed``: the
        windows' own frames on the layer's grid (not the head's resampled one), joined in time."""
        hop = self.frontend.hop_length * self.backbone.layer_time_strides()[index]
        if plan.step % hop:
            raise NotImplementedError(
                f"the {type(self.head).__name__} head's windows start {plan.step} samples apart, "
                f"off the {hop}-sample frame grid of layer {self.layer_names[index]!r}; use no "
                "window overlap, or create the model with head='identity' to read this layer"
            )
        per_window = layer.grid.shape[-1]
        wanted = max(1, -(-plan.num_samples // hop))
        covered = (plan.count - 1) * (plan.step // hop) + per_window
        grid_plan = dataclasses.replace(
            plan, frame_hop=hop, window_frames=per_window, out_frames=min(wanted, covered)
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
            feats = self._run_backbone(spec, layers or [])
        assert feats is not None  # only forward_lengths may decline
        return feats, plan

    def _run_backbone(
        self, spec: torch.Tensor, layers: list[int], lengths: torch.Tensor | None = None
    ) -> Features | None:
        """The backbone on ``spec`` (with ``lengths``: :meth:`Backbone.forward_lengths`, which
        may return None), recording the hidden ``layers`` into :attr:`Features.layers`."""
        call: Any = self.backbone if lengths is None else self.backbone.forward_lengths
        args = (spec,) if lengths is None else (spec, lengths)
        if not layers:
            return call(*args)  # type: ignore[no-any-return]
        names = self.layer_names
        with self.backbone.record_layers(layers) as captured:
            feats = call(*args)
        if feats is None:
            return None
        hidden = {
            names[i]: self.backbone.layer_features(i, captured[i], spec) for i in sorted(layers)
        }
        return dataclasses.replace(feats, layers=hidden)

    def _prepare_clips(self, waveform: Any, lengths: Any, sample_rate: int | None) -> list[Any]:
        clips = as_clip_list(waveform, lengths, device=self.device)
        if sample_rate is not None and sample_rate != self.sample_rate:
            from .resample import resample

            out: list[torch.Tensor | None] = [None] * len(clips)
            for idx in _groups_by(clips, lambda c: c.shape[-1]).values():
                batch = resample(
                    torch.stack([clips[i] for i in idx]), int(sample_rate), self.sample_rate
                )
                for row, i in enumerate(idx):
                    out[i] = batch[row]
            clips = out  # type: ignore[assignment]
        return clips

    def _encode_clips(self, clips: list[torch.Tensor], layers: list[int]) -> list[_Group]:
        """Clips of different lengths, each exactly as it runs alone, in shared batches.

        Clips of one length form a group (one window plan). Windows of equal length go through
        the frontend together; spectrograms of equal length through the backbone together, or,
        when the backbone :attr:`~audiozoo.Backbone.supports_lengths`, all of them padded into
        one batch with :meth:`~audiozoo.Backbone.forward_lengths`.
        """
        groups: list[_Group] = []
        for n, idx in _groups_by(clips, lambda c: c.shape[-1]).items():
            plan = self._plan(n)
            windows = _windows.split(torch.stack([clips[i] for i in idx]), plan)
            groups.append(_Group(idx, plan, windows))
        with self._no_grad_if_frozen():
            specs: list[torch.Tensor] = [torch.empty(0)] * len(groups)
            for members in _groups_by(groups, lambda g: g.windows.shape[-1]).values():
                out = self.frontend(torch.cat([groups[g].windows for g in members]))
                for g, part in zip(
                    members, _split_rows(out, [groups[g].rows for g in members]), strict=True
                ):
                    specs[g] = part
            feats = self._backbone_groups(specs, layers)
        for group, f in zip(groups, feats, strict=True):
            group.feats = f
            group.windows = torch.empty(0)
        return groups

    def _backbone_groups(self, specs: list[torch.Tensor], layers: list[int]) -> list[Features]:
        """Backbone features of each group's (rows, 1, F, T_g) spectrogram."""
        frames = [s.shape[-1] for s in specs]
        rows = [s.shape[0] for s in specs]
        if len(set(frames)) > 1 and self.backbone.supports_lengths:
            longest = max(frames)
            padded = torch.cat([F.pad(s, (0, longest - s.shape[-1])) for s in specs])
            lengths = torch.tensor(
                [t for t, r in zip(frames, rows, strict=True) for _ in range(r)],
                device=padded.device,
            )
            feats = self._run_backbone(padded, layers, lengths)
            if feats is not None:
                full = self.backbone.num_output_frames(longest)
                real = [self.backbone.num_output_frames(t) for t in frames]
                return _split_features(feats, rows, real, full)
        out: list[Features | None] = [None] * len(specs)
        for members in _groups_by(specs, lambda s: s.shape[-1]).values():
            feats = self._run_backbone(torch.cat([specs[g] for g in members]), layers)
            assert feats is not None
            for g, part in zip(
                members, _split_features(feats, [rows[g] for g in members]), strict=True
            ):
                out[g] = part
        return out  # type: ignore[return-value]

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


# ---------------------------------------------------------------------------------- clips
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclasses.dataclass
class _Group:
    """Clips of one length: their indices in the batch, window plan and features."""

    indices: list[int]
    plan: _windows.WindowPlan
    windows: torch.Tensor
    feats: Features = dataclasses.field(init=False)

    @property
    def rows(self) -> int:
        return self.windows.shape[0]


def _groups_by(items: Sequence[T], key: Callable[[T], K]) -> dict[K, list[int]]:
    """Indices of ``items`` grouped by ``key``, groups in order of first appearance."""
    out: dict[K, list[int]] = {}
    for i, item in enumerate(items):
        out.setdefault(key(item), []).append(i)
    return out


def _split_rows(x: torch.Tensor, rows: list[int]) -> list[torch.Tensor]:
    return list(x.split(rows)) if len(rows) > 1 else [x]


def _split_features(
    feats: Features, rows: list[int], frames: list[int] | None = None, full: int | None = None
) -> list[Features]:
    """Cut a batch of features into consecutive row blocks; with ``frames``, cut each block's
    grid (and every layer grid) of ``full`` frames to its real frames."""
    out = []
    start = 0
    for k, r in enumerate(rows):
        t = None if frames is None else frames[k]
        out.append(_rows_of(feats, start, start + r, t, full))
        start += r
    return out


def _rows_of(
    feats: Features, start: int, stop: int, frames: int | None, full: int | None
) -> Features:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(feats):
        v = getattr(feats, f.name)
        if f.name == "layers" and v is not None:
            v = {k: _rows_of(lf, start, stop, frames, full) for k, lf in v.items()}
        elif isinstance(v, torch.Tensor):
            v = v[start:stop]
            # cut to the clip's frames; a grid of another size (training-time patchout dropped
            # columns at random) is left whole
            if f.name == "grid" and frames is not None and v.shape[-1] == full:
                v = v[..., :frames]
        values[f.name] = v
    return Features(**values) if type(feats) is Features else type(feats)(**values)


def _scatter_rows(groups: list[_Group], fn: Callable[[_Group], torch.Tensor]) -> torch.Tensor:
    """(B, ...) tensor with row ``i`` from the group holding clip ``i``."""
    parts = [(g.indices, fn(g)) for g in groups]
    total = sum(len(idx) for idx, _ in parts)
    first = parts[0][1]
    out = first.new_empty((total, *first.shape[1:]))
    for idx, value in parts:
        out[torch.tensor(idx, device=out.device)] = value
    return out


def _scatter_list(groups: list[_Group], fn: Callable[[_Group], list[Any]]) -> list[Any]:
    """List with entry ``i`` from the group holding clip ``i``."""
    out: list[Any] = [None] * sum(len(g.indices) for g in groups)
    for g in groups:
        for i, value in zip(g.indices, fn(g), strict=True):
            out[i] = value
    return out
