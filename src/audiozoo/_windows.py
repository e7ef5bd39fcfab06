"""Any-length audio: padding short clips and cutting long ones into overlapping windows.

:class:`~audiozoo.AudioModel` plans every batch with :func:`plan_windows` from the frontend's
``hop_length`` / ``min_samples`` / :meth:`~audiozoo.frontends.Frontend.num_frames` and the
backbone's ``min_frames`` / ``max_frames`` / ``time_stride``:

- **short clips** (fewer samples than the frontend needs, or fewer spectrogram frames than the
  backbone needs) are zero-padded at the end to the shortest length that works, as upstream
  training pipelines pad with zeros;
- **long clips** on backbones with a fixed maximum input (PaSST, AST, MobileNets with time
  squeeze-excitation) are cut into windows of ``max_frames * hop_length`` samples (reduced until
  the frontend gives at most ``max_frames`` frames) that overlap by about 50 %: the window step is
  the largest multiple of the output frame hop that is at most half a window, so every window's
  output frames lie on one global time grid. The last window is zero-padded at the end. All
  windows of all clips go through frontend and backbone as one batch.

Heads that were trained on fixed windows (the PretrainedSED head, ``heads/sed.py``) declare them
instead, and :func:`plan_fixed_windows` plans those, for every backbone:

- **fixed windows** of exactly ``window_seconds`` (head attribute): every clip, however short, is
  zero-padded to whole windows, and long clips are cut into consecutive windows, the last one
  zero-padded; by default they do not overlap (``window_overlap`` 0), as upstream's
  ``inference.py`` cuts audio into 10 s chunks. The head runs on each window;
- with ``seq_len`` (head attribute) every window yields exactly that many output frames (the head
  resamples the backbone's frames), so the output frame hop is ``window / seq_len`` samples
  (10 s / 250 = 40 ms) for any backbone.

Window outputs are merged by :func:`average` (clip outputs: plain mean over a clip's windows) and
:func:`stitch` (frame outputs: each global frame ``t`` — ``t * frame_hop`` seconds — is taken from
the window in which it lies closest to the centre, so no frame comes from a window edge; a tie
goes to the earlier window; without overlap, that is plain concatenation). Frame outputs are cut
to ``ceil(num_samples / frame_hop)`` frames: a 23 s clip on 40 ms frames gives 575, a 3.3 s clip
(one padded 10 s window) 83.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ._errors import RegistryError
from .backbones.base import Backbone
from .frontends.base import Frontend

__all__ = [
    "WindowPlan",
    "average",
    "head_windows",
    "layer_plan",
    "plan_fixed_windows",
    "plan_for_head",
    "plan_windows",
    "split",
    "stitch",
    "stitch_frames",
]


@dataclass(frozen=True)
class WindowPlan:
    """How a batch of clips of ``num_samples`` samples runs through frontend and backbone.

    Attributes:
        num_samples: real samples per clip.
        length: samples per window (one window: the clip length after padding).
        step: samples between window starts (a multiple of ``frame_hop``).
        count: windows per clip (1 when the clip fits the backbone).
        frame_hop: samples between output frames (frontend hop × backbone time stride).
        window_frames: output frames of one window (backbone in eval mode).
        out_frames: output frames of the whole clip: ``ceil(num_samples / frame_hop)`` (at least 1),
            capped at what the windows cover.
    """

    num_samples: int
    length: int
    step: int
    count: int
    frame_hop: int
    window_frames: int
    out_frames: int

    @property
    def windowed(self) -> bool:
        return self.count > 1


def window_samples(frontend: Frontend, backbone: Backbone) -> int | None:
    """Samples per window for a backbone with ``max_frames`` (None if any length works).

    ``max_frames * hop_length`` (the trained length: 10.05 s for PaSST-S, 10.24 s for AST),
    shortened hop by hop until the frontend yields at most ``max_frames`` frames.
    """
    max_frames = backbone.max_frames
    if max_frames is None:
        return None
    hop = frontend.hop_length
    length = max_frames * hop
    while length > hop and frontend.num_frames(length) > max_frames:
        length -= hop
    return max(length, frontend.min_samples)


def min_samples(frontend: Frontend, backbone: Backbone) -> int:
    """Shortest clip that the frontend accepts and that gives the backbone ``min_frames`` frames."""
    n = max(frontend.min_samples, 1)
    if frontend.num_frames(n) >= backbone.min_frames:
        return n
    # Bisection: num_frames is non-decreasing in the sample count.
    lo, hi = n, max(2 * n, backbone.min_frames * frontend.hop_length)
    while frontend.num_frames(hi) < backbone.min_frames:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # invariant: num_frames(lo) < min_frames <= num_frames(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if frontend.num_frames(mid) >= backbone.min_frames else (mid, hi)
    return hi


def plan_windows(frontend: Frontend, backbone: Backbone, num_samples: int) -> WindowPlan:
    """Plan padding and windowing for clips of ``num_samples`` samples (see the module docstring)."""
    frame_hop = frontend.hop_length * backbone.time_stride
    wanted = max(1, math.ceil(num_samples / frame_hop))
    window = window_samples(frontend, backbone)
    if window is None or num_samples <= window:
        length = max(num_samples, min_samples(frontend, backbone))
        frames = backbone.num_output_frames(frontend.num_frames(length))
        return WindowPlan(num_samples, length, length, 1, frame_hop, frames, min(wanted, frames))
    frames = backbone.num_output_frames(frontend.num_frames(window))
    step = max(frame_hop, (window // 2) // frame_hop * frame_hop)
    step_frames = step // frame_hop
    # Enough windows to cover every sample, and every one of the ``wanted`` output frames (a
    # window's frames may cover a little less than its samples: patches need whole strides).
    count = 1 + max(
        math.ceil((num_samples - window) / step), math.ceil(max(wanted - frames, 0) / step_frames)
    )
    out_frames = min(wanted, (count - 1) * step_frames + frames)
    return WindowPlan(num_samples, window, step, count, frame_hop, frames, out_frames)


def plan_fixed_windows(
    frontend: Frontend,
    backbone: Backbone,
    num_samples: int,
    *,
    window: int,
    frames_per_window: int | None = None,
    overlap: float = 0.0,
) -> WindowPlan:
    """Plan fixed windows of ``window`` samples (see the module docstring).

    Args:
        frontend, backbone: the model's parts (the window must fit the backbone).
        num_samples: real samples per clip.
        window: samples per window; every clip is padded to whole windows.
        frames_per_window: output frames per window when the head resamples to a fixed count
            (``seq_len``); None: the backbone's frames, ``hop_length * time_stride`` apart.
        overlap: fraction of a window shared with the next one, in [0, 1); the step is rounded
            to whole output frames.

    Raises:
        RegistryError: when the window does not fit the backbone or does not divide into
            ``frames_per_window`` frames of whole samples.
    """
    if not 0.0 <= overlap < 1.0:
        raise RegistryError(f"window overlap must be in [0, 1), got {overlap}")
    shortest = min_samples(frontend, backbone)
    if window < shortest:
        raise RegistryError(
            f"fixed windows of {window} samples are shorter than the {shortest} samples the "
            "backbone needs"
        )
    spec_frames = frontend.num_frames(window)
    if backbone.max_frames is not None and spec_frames > backbone.max_frames:
        raise RegistryError(
            f"fixed windows of {window / frontend.sample_rate:g} s give {spec_frames} "
            f"spectrogram frames, but the backbone accepts at most {backbone.max_frames}; use a "
            "head with shorter windows (window_seconds)"
        )
    if frames_per_window is None:
        frame_hop = frontend.hop_length * backbone.time_stride
        frames = backbone.num_output_frames(spec_frames)
    else:
        if window % frames_per_window:
            raise RegistryError(
                f"a window of {window} samples does not divide into {frames_per_window} frames"
            )
        frame_hop, frames = window // frames_per_window, frames_per_window
    # Window starts on the output frame grid: without overlap the largest multiple of the frame
    # hop that fits (the window itself when it divides into frames), else the nearest one.
    if overlap:
        step = max(frame_hop, round(window * (1.0 - overlap) / frame_hop) * frame_hop)
    else:
        step = max(frame_hop, window // frame_hop * frame_hop)
    count = 1 + max(0, math.ceil((num_samples - window) / step))
    wanted = max(1, math.ceil(num_samples / frame_hop))
    out_frames = min(wanted, (count - 1) * (step // frame_hop) + frames)
    return WindowPlan(num_samples, window, step, count, frame_hop, frames, out_frames)


def layer_plan(plan: WindowPlan, ratio: int, window_frames: int) -> WindowPlan:
    """The plan of a layer with ``ratio`` frames per output frame (an early CNN stage) and
    ``window_frames`` frames per window: same windows, a ``ratio`` times finer frame grid."""
    if plan.frame_hop % ratio:
        raise ValueError(f"frame hop {plan.frame_hop} is not divisible by {ratio}")
    hop = plan.frame_hop // ratio
    wanted = max(1, math.ceil(plan.num_samples / hop))
    covered = (plan.count - 1) * (plan.step // hop) + window_frames
    return WindowPlan(
        plan.num_samples,
        plan.length,
        plan.step,
        plan.count,
        hop,
        window_frames,
        min(wanted, covered),
    )


def head_windows(head: Any, sample_rate: int) -> tuple[int, int | None, float] | None:
    """(window samples, frames per window or None, overlap) when ``head`` declares fixed
    windows (``window_seconds``, optionally ``seq_len`` and ``window_overlap``), else None."""
    seconds = getattr(head, "window_seconds", None)
    if seconds is None:
        return None
    frames = getattr(head, "seq_len", None)
    overlap = float(getattr(head, "window_overlap", 0.0))
    return round(seconds * sample_rate), frames, overlap


def plan_for_head(
    frontend: Frontend, backbone: Backbone, head: Any, num_samples: int
) -> WindowPlan:
    """:func:`plan_fixed_windows` for a head with fixed windows, else :func:`plan_windows`."""
    fixed = head_windows(head, frontend.sample_rate)
    if fixed is None:
        return plan_windows(frontend, backbone, num_samples)
    window, frames, overlap = fixed
    return plan_fixed_windows(
        frontend, backbone, num_samples, window=window, frames_per_window=frames, overlap=overlap
    )


def split(waveform: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """(B, N) → (B * count, length): zero-pad at the end and cut into the plan's windows."""
    total = (plan.count - 1) * plan.step + plan.length
    if waveform.shape[-1] < total:
        waveform = F.pad(waveform, (0, total - waveform.shape[-1]))
    if plan.count == 1:
        return waveform
    windows = waveform.unfold(-1, plan.length, plan.step)  # (B, count, length)
    return windows.reshape(-1, plan.length)


def average(x: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """(B * count, ...) → (B, ...): mean over each clip's windows."""
    if plan.count == 1:
        return x
    return x.reshape(-1, plan.count, *x.shape[1:]).mean(dim=1)


def stitch(grid: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """Merge per-window feature grids along time into one grid per clip, cut to the clip length.

    Args:
        grid: (B * count, C, F', T'w) features of every window.

    Returns:
        (B, C, F', out_frames): global frame ``t`` is frame ``t - k * step_frames`` of the window
        ``k`` in which it lies closest to that window's centre (a single window is only cut).
    """
    if plan.count == 1:
        return grid[..., : plan.out_frames] if grid.shape[-1] > plan.out_frames else grid
    per_window = grid.shape[-1]  # the real size (training-time patchout may shorten it)
    s = plan.step // plan.frame_hop
    out_frames = min(plan.out_frames, (plan.count - 1) * s + per_window)
    t = torch.arange(out_frames, device=grid.device)
    lo = torch.div(t - per_window + s, s, rounding_mode="floor").clamp(min=0)  # ceil((t-Tw+1)/s)
    hi = torch.div(t, s, rounding_mode="floor").clamp(max=plan.count - 1)
    # Nearest centre: minimise |2 (t - k s) - (Tw - 1)| over k, in integers; a tie goes to the
    # earlier window. The distance is convex in k, so clamping to the valid range stays optimal.
    k = torch.div(2 * t - (per_window - 1) + s - 1, 2 * s, rounding_mode="floor")
    k = torch.maximum(torch.minimum(k, hi), lo)
    index = k * per_window + (t - k * s)
    b = grid.shape[0] // plan.count
    c, f = grid.shape[1], grid.shape[2]
    flat = grid.reshape(b, plan.count, c, f, per_window).permute(0, 2, 3, 1, 4)
    return flat.reshape(b, c, f, plan.count * per_window).index_select(-1, index)


def stitch_frames(frames: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """:func:`stitch` for per-window frame outputs: (B * count, T'w, K) -> (B, out_frames, K)."""
    grid = frames.transpose(1, 2).unsqueeze(2)  # (B * count, K, 1, T'w)
    return stitch(grid, plan).squeeze(2).transpose(1, 2)
