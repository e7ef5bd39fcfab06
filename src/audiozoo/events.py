"""Sound event detection post-processing: frame probabilities -> (onset, offset, label) events.

The steps of PretrainedSED's ``inference.py`` (after DCASE's ``batched_decode_preds``), as plain
torch functions that work on the output of any frame head::

    import audiozoo
    from audiozoo.events import detect_events

    model = audiozoo.create("frame_mn10.as_strong")
    probs = model(wave).sigmoid()                           # (B, T, K), frames 0.04 s apart
    events = detect_events(probs[0], model.frame_hop, threshold=0.5, median_window=9,
                           labels=model.labels, duration=wave.shape[-1] / model.sample_rate)
    for e in events:
        print(f"{e.onset:6.2f} {e.offset:6.2f}  {e.label}  ({e.score:.2f})")

1. :func:`median_filter` smooths each class's probabilities along time (upstream: 9 frames), which
   removes one-frame blips and closes one-frame gaps;
2. :func:`binarize` compares them with a threshold (one for all classes, or one per class):
   a frame is active when its probability is *greater than* the threshold;
3. :func:`frames_to_events` turns every run of active frames into an :class:`Event`: frame ``t``
   covers ``[t * frame_hop, (t + 1) * frame_hop)``, so a run of frames ``s .. e - 1`` becomes
   ``(s * frame_hop, e * frame_hop)``, the offset clipped to the clip's duration.

:func:`detect_events` runs the three steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch

__all__ = ["Event", "binarize", "detect_events", "frames_to_events", "median_filter"]


class Event(NamedTuple):
    """One detected sound event.

    Attributes:
        onset: start in seconds.
        offset: end in seconds (exclusive).
        label: class name (or the class index when no names were given).
        score: mean (filtered) probability of the class over the event's frames.
    """

    onset: float
    offset: float
    label: str | int
    score: float


def median_filter(scores: torch.Tensor, window: int) -> torch.Tensor:
    """Median over ``window`` consecutive frames, per class, as ``scipy.ndimage.median_filter``
    with size ``(window, 1)`` and its default ``mode="reflect"`` (the edge frame is repeated in
    the mirror image: ``c b a | a b c | c b a``).

    Args:
        scores: (..., T, K) frame scores (any float dtype).
        window: odd number of frames (1 returns ``scores`` unchanged).

    Returns:
        (..., T, K) filtered scores.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"median window must be an odd number of frames >= 1, got {window}")
    if scores.ndim < 2:
        raise ValueError(f"scores must be (..., T, K), got shape {tuple(scores.shape)}")
    if window == 1 or scores.shape[-2] == 0:
        return scores
    t, half = scores.shape[-2], window // 2
    # Symmetric reflection of every padded position into [0, T) (period 2T, any window size).
    pos = torch.arange(-half, t + half, device=scores.device) % (2 * t)
    pos = torch.where(pos >= t, 2 * t - 1 - pos, pos)
    padded = scores.index_select(-2, pos)  # (..., T + 2 * half, K)
    windows = padded.unfold(-2, window, 1)  # (..., T, K, window)
    return windows.median(dim=-1).values


def binarize(
    scores: torch.Tensor,
    threshold: float | Sequence[float] | torch.Tensor | Mapping[str, float],
    labels: Sequence[str] | None = None,
) -> torch.Tensor:
    """Frame decisions ``scores > threshold``.

    Args:
        scores: (..., T, K) probabilities.
        threshold: one value for all classes; K values (sequence or tensor), one per class; or a
            mapping from class name to threshold (needs ``labels``; classes not in the mapping
            use 0.5).
        labels: the K class names, for a mapping ``threshold``.

    Returns:
        (..., T, K) bool.
    """
    k = scores.shape[-1]
    if isinstance(threshold, Mapping):
        if labels is None or len(labels) != k:
            raise ValueError("a per-class threshold mapping needs the K class names as labels")
        unknown = set(threshold) - set(labels)
        if unknown:
            raise ValueError(f"thresholds for unknown classes: {sorted(unknown)[:5]}")
        threshold = [float(threshold.get(name, 0.5)) for name in labels]
    thr = torch.as_tensor(threshold, dtype=scores.dtype, device=scores.device)
    if thr.ndim > 1 or (thr.ndim == 1 and thr.shape[0] != k):
        raise ValueError(f"threshold must be a scalar or have {k} values, got {tuple(thr.shape)}")
    return scores > thr


def frames_to_events(
    active: torch.Tensor,
    frame_hop: float,
    *,
    labels: Sequence[str] | None = None,
    scores: torch.Tensor | None = None,
    duration: float | None = None,
) -> list[Event]:
    """Runs of active frames -> events, sorted by onset (then class index).

    Args:
        active: (T, K) bool frame decisions.
        frame_hop: seconds between frames (``model.frame_hop``).
        labels: K class names; None labels events with class indices.
        scores: (T, K) probabilities for :attr:`Event.score` (None: score 1.0).
        duration: clip length in seconds; offsets are clipped to it.

    Returns:
        The events of all classes.
    """
    if active.ndim != 2:
        raise ValueError(f"active must be (T, K), got shape {tuple(active.shape)}")
    k = active.shape[1]
    if labels is not None and len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} classes")
    # Inactive frames around the clip give every run a rising and a falling edge.
    pad = torch.zeros(1, k, dtype=torch.int8, device=active.device)
    edges = torch.cat([pad, active.to(torch.int8), pad]).diff(dim=0)  # (T + 1, K)
    starts = (edges.T == 1).nonzero().tolist()  # [class, frame] in class-major order
    stops = (edges.T == -1).nonzero().tolist()
    cumulative = None
    if scores is not None:
        zero = torch.zeros(1, k, dtype=torch.float64, device=scores.device)
        cumulative = torch.cat([zero, scores.to(torch.float64).cumsum(dim=0)]).cpu()
    events = []
    for (c, s), (_, e) in zip(starts, stops, strict=True):
        onset, offset = s * frame_hop, e * frame_hop
        if duration is not None:
            onset, offset = min(onset, duration), min(offset, duration)
        score = 1.0 if cumulative is None else float(cumulative[e, c] - cumulative[s, c]) / (e - s)
        events.append(Event(onset, offset, labels[c] if labels is not None else c, score))
    order = sorted(range(len(events)), key=lambda i: (events[i].onset, starts[i][0]))
    return [events[i] for i in order]


def detect_events(
    probs: torch.Tensor,
    frame_hop: float,
    *,
    threshold: float | Sequence[float] | torch.Tensor | Mapping[str, float] = 0.5,
    median_window: int = 1,
    labels: Sequence[str] | None = None,
    duration: float | None = None,
) -> list[Event] | list[list[Event]]:
    """Median filter, threshold and decode frame probabilities into events.

    Args:
        probs: (T, K) or (B, T, K) probabilities (apply ``sigmoid`` to frame logits first).
        frame_hop: seconds between frames (``model.frame_hop``).
        threshold: see :func:`binarize`.
        median_window: odd median filter length in frames (PretrainedSED: 9 frames = 0.36 s;
            1 = no filter).
        labels: K class names (``model.labels``).
        duration: clip length in seconds (offsets are clipped to it).

    Returns:
        The events of the clip, or for (B, T, K) input one list per clip.
    """
    if probs.ndim not in (2, 3):
        raise ValueError(f"probs must be (T, K) or (B, T, K), got shape {tuple(probs.shape)}")
    probs = probs.detach()
    smooth = median_filter(probs, median_window)
    active = binarize(smooth, threshold, labels)
    if probs.ndim == 2:
        return frames_to_events(active, frame_hop, labels=labels, scores=smooth, duration=duration)
    return [
        frames_to_events(a, frame_hop, labels=labels, scores=s, duration=duration)
        for a, s in zip(active, smooth, strict=True)
    ]
