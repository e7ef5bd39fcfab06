"""Clips of different lengths in shared batches (``model(list_of_clips)``, ``lengths=``).

Clips of one length form a :class:`ClipGroup` (one window plan). Windows of equal length go
through the frontend together; spectrograms of equal length through the backbone together, or,
when the backbone :attr:`~audiozoo.Backbone.supports_lengths`, all of them padded into one batch
with :meth:`~audiozoo.Backbone.forward_lengths`. Every clip then gives what it gives alone
(within float tolerance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from . import _windows
from ._layers import run_backbone
from .backbones.base import Backbone, Features
from .frontends.base import Frontend

__all__ = [
    "ClipGroup",
    "backbone_input",
    "encode_clips",
    "groups_by",
    "scatter_list",
    "scatter_rows",
]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclasses.dataclass
class ClipGroup:
    """Clips of one length: their indices in the batch, window plan and features."""

    indices: list[int]
    plan: _windows.WindowPlan
    windows: torch.Tensor
    feats: Features = dataclasses.field(init=False)

    @property
    def rows(self) -> int:
        return self.windows.shape[0]


def groups_by(items: Sequence[T], key: Callable[[T], K]) -> dict[K, list[int]]:
    """Indices of ``items`` grouped by ``key``, groups in order of first appearance."""
    out: dict[K, list[int]] = {}
    for i, item in enumerate(items):
        out.setdefault(key(item), []).append(i)
    return out


def backbone_input(spec: torch.Tensor, backbone: Backbone) -> torch.Tensor:
    """The frontend's float32 spectrogram in the backbone's dtype: a model in float16 or bfloat16
    (``model.half()``) keeps its frontend in float32 (:meth:`audiozoo.Frontend._apply`)."""
    param = next(backbone.parameters(), None)
    if param is None or not param.is_floating_point() or param.dtype == spec.dtype:
        return spec
    return spec.to(param.dtype)


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


def scatter_rows(groups: list[ClipGroup], fn: Callable[[ClipGroup], torch.Tensor]) -> torch.Tensor:
    """(B, ...) tensor with row ``i`` from the group holding clip ``i``."""
    parts = [(g.indices, fn(g)) for g in groups]
    total = sum(len(idx) for idx, _ in parts)
    first = parts[0][1]
    out = first.new_empty((total, *first.shape[1:]))
    for idx, value in parts:
        out[torch.tensor(idx, device=out.device)] = value
    return out


def scatter_list(groups: list[ClipGroup], fn: Callable[[ClipGroup], list[Any]]) -> list[Any]:
    """List with entry ``i`` from the group holding clip ``i``."""
    out: list[Any] = [None] * sum(len(g.indices) for g in groups)
    for g in groups:
        for i, value in zip(g.indices, fn(g), strict=True):
            out[i] = value
    return out


def encode_clips(
    clips: list[torch.Tensor],
    layers: list[int],
    plan: Callable[[int], _windows.WindowPlan],
    frontend: Frontend,
    backbone: Backbone,
) -> list[ClipGroup]:
    """Group ``clips`` by length and run frontend and backbone on shared batches.

    Args:
        clips: 1-D clips at the model's sample rate.
        layers: hidden layers to record (see :func:`audiozoo._layers.run_backbone`).
        plan: the model's window plan for a clip of ``n`` samples.
        frontend, backbone: the model's parts.

    Returns:
        One :class:`ClipGroup` per distinct length, with its features.
    """
    groups: list[ClipGroup] = []
    for n, idx in groups_by(clips, lambda c: c.shape[-1]).items():
        p = plan(n)
        groups.append(ClipGroup(idx, p, _windows.split(torch.stack([clips[i] for i in idx]), p)))
    specs: list[torch.Tensor] = [torch.empty(0)] * len(groups)
    for members in groups_by(groups, lambda g: g.windows.shape[-1]).values():
        out = backbone_input(frontend(torch.cat([groups[g].windows for g in members])), backbone)
        parts = _split_rows(out, [groups[g].rows for g in members])
        for g, part in zip(members, parts, strict=True):
            specs[g] = part
    for group, f in zip(groups, _backbone_groups(specs, layers, backbone), strict=True):
        group.feats = f
        group.windows = torch.empty(0)
    return groups


def _backbone_groups(
    specs: list[torch.Tensor], layers: list[int], backbone: Backbone
) -> list[Features]:
    """Backbone features of each group's (rows, 1, F, T_g) spectrogram."""
    frames = [s.shape[-1] for s in specs]
    rows = [s.shape[0] for s in specs]
    if len(set(frames)) > 1 and backbone.supports_lengths:
        longest = max(frames)
        padded = torch.cat([F.pad(s, (0, longest - s.shape[-1])) for s in specs])
        lengths = torch.tensor(
            [t for t, r in zip(frames, rows, strict=True) for _ in range(r)],
            device=padded.device,
        )
        feats = run_backbone(backbone, padded, layers, lengths)
        if feats is not None:  # None: the backbone declined this input
            full = backbone.num_output_frames(longest)
            real = [backbone.num_output_frames(t) for t in frames]
            return _split_features(feats, rows, real, full)
    out: list[Features | None] = [None] * len(specs)
    for members in groups_by(specs, lambda s: s.shape[-1]).values():
        feats = run_backbone(backbone, torch.cat([specs[g] for g in members]), layers)
        assert feats is not None
        parts = _split_features(feats, [rows[g] for g in members])
        for g, part in zip(members, parts, strict=True):
            out[g] = part
    return out  # type: ignore[return-value]
