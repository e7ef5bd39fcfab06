"""From per-window backbone features to what :class:`~audiozoo.AudioModel` returns.

The model runs frontend and backbone on every window of every clip at once (the windows are
planned by :mod:`audiozoo._windows`); these functions turn the per-window features into outputs:

- :func:`merge`: one :class:`~audiozoo.backbones.Features` per clip: the grid stitched over the
  windows, the token averaged (under a head's fixed windows: the frames the head reads, joined);
- :func:`frame_logits` / :func:`clip_logits` / :func:`window_mean`: a head's frame output (per
  fixed window and joined, or once on the merged frames), its clip output (per window and
  averaged, or a frame head's own ``clip`` on the merged frames), any head averaged over windows;
- :func:`layer_clip` / :func:`layer_frames`: clip and frame embeddings of one backbone layer
  (``embed(layers=...)``); :func:`layer_dims`: every layer's width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import _layers, _windows
from ._inputs import analysis_window
from .backbones.base import Features

if TYPE_CHECKING:
    from .model import AudioModel

__all__ = [
    "clip_logits",
    "frame_logits",
    "layer_clip",
    "layer_dims",
    "layer_frames",
    "merge",
    "window_mean",
]


def _fixed(model: AudioModel) -> bool:
    return _windows.head_windows(model.head, model.frontend.sample_rate) is not None


def merge(model: AudioModel, feats: Features, plan: _windows.WindowPlan) -> Features:
    """Per-window features -> one Features per clip (stitched grid, averaged token)."""
    token = None if feats.token is None else _windows.average(feats.token, plan)
    if _fixed(model):
        sequence = getattr(model.head, "sequence", None)
        frames = sequence(feats) if callable(sequence) else feats.frames()  # (B*n, T'w, C)
        grid = _windows.stitch_frames(frames, plan).transpose(1, 2).unsqueeze(2)
        return Features(grid=grid, token=token)
    # a backbone's own chunks (CED) only exist when AudioModel did not window the clip
    chunks = feats.chunk_tokens if plan.count == 1 else None
    return Features(grid=_windows.stitch(feats.grid, plan), token=token, chunk_tokens=chunks)


def frame_logits(model: AudioModel, feats: Features, plan: _windows.WindowPlan) -> torch.Tensor:
    """A frame head's (B, T', K) output: per fixed window then joined (``sed``), or once on
    the stitched frames."""
    if _fixed(model):
        return _windows.stitch_frames(model.head(feats), plan)
    return model.head(merge(model, feats, plan))  # type: ignore[no-any-return]


def window_mean(model: AudioModel, feats: Features, plan: _windows.WindowPlan) -> torch.Tensor:
    """The head on each window, averaged over a clip's windows (clip and embedding heads)."""
    return _windows.average(model.head(feats), plan)


def clip_logits(model: AudioModel, feats: Features, plan: _windows.WindowPlan) -> torch.Tensor:
    """A head's (B, K) clip output; TypeError for frame heads without one."""
    head = model.head
    clip = getattr(head, "clip", None)
    if callable(clip):
        if _fixed(model):
            return _windows.average(clip(feats), plan)
        return clip(merge(model, feats, plan))  # type: ignore[no-any-return]
    if getattr(head, "output", "clip") == "clip":
        return _windows.average(head(feats), plan)
    raise TypeError(
        f"{type(head).__name__} has no clip output ({getattr(head, 'output', '?')} head); "
        "clip_logits needs a clip head or a frame head with one (such as 'sed')"
    )


def _layer(model: AudioModel, index: int, feats: Features) -> Features:
    names = model.layer_names
    return feats if index == len(names) - 1 else (feats.layers or {})[names[index]]


def layer_clip(
    model: AudioModel, feats: Features, plan: _windows.WindowPlan, index: int
) -> torch.Tensor:
    """(B, C) clip embedding of layer ``index``: pooled per window, averaged over windows."""
    return _windows.average(_layer(model, index, feats).pooled(), plan)


def layer_frames(
    model: AudioModel, feats: Features, plan: _windows.WindowPlan, index: int
) -> torch.Tensor:
    """(B, T', C) frames of layer ``index``, stitched over the windows. Under a head's fixed
    windows (``sed``) a hidden layer gives the windows' own frames on its grid (not the head's
    resampled one), joined in time."""
    backbone = model.backbone
    layer = _layer(model, index, feats)
    ratio = _layers.layer_ratio(backbone, index)
    _layers.check_layer_frames(backbone, index, layer, feats, ratio)
    if index != len(model.layer_names) - 1 and _fixed(model):
        hop = model.frontend.hop_length * backbone.layer_time_strides()[index]
        windows = f"the {type(model.head).__name__} head's windows"
        grid_plan = _layers.fixed_window_plan(plan, hop, layer.grid.shape[-1], windows)
        return Features(grid=_windows.stitch(layer.grid, grid_plan)).frames()
    if ratio != 1:
        plan = _windows.layer_plan(plan, ratio, layer.grid.shape[-1])
    return merge(model, layer, plan).frames()


def layer_dims(model: AudioModel) -> list[int]:
    """Width of every layer, from one dry run on silence of the shortest accepted length (at
    least one analysis window: no short-clip warning)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            n = max(
                _windows.min_samples(model.frontend, model.backbone),
                analysis_window(model.frontend),
            )
            out = model.embed(torch.zeros(1, n, device=model.device), layers="all")
    finally:
        model.train(was_training)
    return [int(v.shape[-1]) for v in out.values()]
