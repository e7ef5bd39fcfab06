"""Hidden layers of a backbone for ``AudioModel.embed(layers=...)`` and heads that read them.

A backbone names its stages (:meth:`~audiozoo.Backbone.layer_names`), declares the time stride of
each (:meth:`~audiozoo.Backbone.layer_time_strides`) and turns what a stage produced into
:class:`~audiozoo.backbones.Features` (:meth:`~audiozoo.Backbone.layer_features`). This module
picks layers by name or index, records them during a forward, and checks and plans their frames.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from . import _windows
from .backbones.base import Backbone, Features

__all__ = [
    "check_layer_frames",
    "fixed_window_plan",
    "layer_indices",
    "layer_ratio",
    "run_backbone",
]


def layer_indices(names: list[str], layers: Any, arch: str) -> list[int]:
    """Sorted, distinct indices into ``names`` for ``layers``: ``"all"``, a name, an index
    (negative counts from the end) or a list of them."""
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
                    f"layer index {item} out of range: {arch} has {len(names)} layers "
                    f"({names[0]} ... {names[-1]}); see model.layer_names"
                )
            out.append(item % len(names))
        elif item in names:
            out.append(names.index(item))
        else:
            raise ValueError(
                f"unknown layer {item!r} for {arch}; its layers are {names} "
                "(or pass 'all' or indices)"
            )
    return sorted(set(out))


def layer_ratio(backbone: Backbone, index: int) -> int:
    """Frames of layer ``index`` per output frame of the backbone (1 for the last layer and
    for transformers, 16 for the first stage of a MobileNet)."""
    strides = backbone.layer_time_strides()
    ratio, rest = divmod(backbone.time_stride, strides[index])
    if rest:
        raise ValueError(
            f"layer {backbone.layer_names()[index]!r} has time stride {strides[index]}, which "
            f"does not divide the backbone's {backbone.time_stride}"
        )
    return ratio


def check_layer_frames(
    backbone: Backbone, index: int, layer: Features, out: Features, ratio: int
) -> None:
    """A layer's frames per window must fit its declared time stride (a family whose stages
    downsample in time and that does not override ``layer_time_strides`` fails here)."""
    have, final = layer.grid.shape[-1], out.grid.shape[-1]
    # same rate: the same frames exactly; finer: conv rounding at the edges
    if (have != final) if ratio == 1 else abs(have - ratio * final) > ratio + 1:
        raise NotImplementedError(
            f"layer {backbone.layer_names()[index]!r} of {type(backbone).__name__} has {have} "
            f"frames where its time stride {backbone.layer_time_strides()[index]} predicts about "
            f"{ratio * final}: the backbone must override layer_time_strides(), or "
            "layer_features() for a layer of tokens (see docs/guides/adding-a-family.md)"
        )


def fixed_window_plan(
    plan: _windows.WindowPlan, hop: int, per_window: int, windows: str
) -> _windows.WindowPlan:
    """The plan of a layer with frames ``hop`` samples apart (``per_window`` per window) over
    the fixed ``windows`` of ``plan`` (a head's 10 s windows): same windows, the layer's grid."""
    if plan.step % hop:
        raise NotImplementedError(
            f"{windows} start {plan.step} samples apart, off the {hop}-sample frame grid of "
            "this layer; use no window overlap, or create the model with head='identity' to "
            "read the layer"
        )
    wanted = max(1, -(-plan.num_samples // hop))
    covered = (plan.count - 1) * (plan.step // hop) + per_window
    return dataclasses.replace(
        plan, frame_hop=hop, window_frames=per_window, out_frames=min(wanted, covered)
    )


def run_backbone(
    backbone: Backbone, spec: torch.Tensor, layers: list[int], lengths: torch.Tensor | None = None
) -> Features | None:
    """The backbone on ``spec`` (with ``lengths``: :meth:`Backbone.forward_lengths`, which may
    return None), recording the hidden ``layers`` into :attr:`Features.layers`."""
    call: Any = backbone if lengths is None else backbone.forward_lengths
    args = (spec,) if lengths is None else (spec, lengths)
    if not layers:
        return call(*args)  # type: ignore[no-any-return]
    names = backbone.layer_names()
    with backbone.record_layers(layers) as captured:
        feats = call(*args)
    if feats is None:
        return None
    hidden = {names[i]: backbone.layer_features(i, captured[i], spec) for i in sorted(layers)}
    return dataclasses.replace(feats, layers=hidden)
