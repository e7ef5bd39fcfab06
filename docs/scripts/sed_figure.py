"""The sound event detection guide's figure: frame probabilities, and the events decoded from them.

Nothing here needs a network or pretrained weights. A tiny frame classifier is trained when the
figure is rendered (a few seconds on a CPU): log-mel frames of ``frame_mn10.as_strong``'s own
frontend (16 kHz), averaged onto the 40 ms output grid of the PretrainedSED models, with
0.08 s of context on each side, and one logistic regression per class, fitted on synthetic
clips of :class:`audiozoo.data.SyntheticEvents`. Its probabilities on a held-out synthetic clip
go through :func:`audiozoo.events.detect_events` (median filter of 9 frames, threshold 0.5, as
``audiozoo tag --events``); the figure draws the raw and filtered probabilities of each class,
the detected events and the clip's reference events.

The docs build renders it (``docs/hooks/figures.py``); to write the PNG yourself::

    python docs/scripts/sed_figure.py sed.png
"""

from __future__ import annotations

import io
import sys
from typing import cast

import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.data import SyntheticEvents
from audiozoo.events import Event, detect_events, median_filter

TAG = "frame_mn10.as_strong"  # its frontend; frames every 40 ms like every PretrainedSED tag
CLASSES = ("tone", "chirp_up", "click_train", "am_fast")
SECONDS = 10.0  # one PretrainedSED window
FRAME_HOP = 0.04
CONTEXT = 2  # frames on each side of the classified one
BANDS = 32  # mel bins averaged down to this many bands
THRESHOLD = 0.5
MEDIAN = 9  # frames: 0.36 s, PretrainedSED's inference.py
NUM_TRAIN, TRAIN_SEED, TEST_SEED, TEST_INDEX = 32, 1, 2, 11
STEPS = 200


def frame_features(frontend: torch.nn.Module, waves: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B, T, D): log-mel bands on the 40 ms grid, with ``CONTEXT`` frames each side."""
    with torch.no_grad():
        spec = frontend(waves)[:, 0]  # (B, F, T_spec), 10 ms frames
    frames = round(SECONDS / FRAME_HOP)
    per_frame = round(FRAME_HOP * frontend.sample_rate / frontend.hop_length)
    spec = spec[..., : frames * per_frame]
    spec = spec.reshape(spec.shape[0], BANDS, -1, frames, per_frame).mean(dim=(2, 4))
    padded = F.pad(spec, (CONTEXT, CONTEXT), mode="replicate")
    stacked = torch.cat([padded[..., i : i + frames] for i in range(2 * CONTEXT + 1)], dim=1)
    return stacked.transpose(1, 2)


def predictions() -> tuple[SyntheticEvents, torch.Tensor, list[Event]]:
    """The test clip's data set, its (T, K) frame probabilities and the detected events."""
    cfg = audiozoo.get_pretrained_cfg(TAG)
    frontend = audiozoo.build_frontend(cfg.frontend).eval()
    kw = {
        "sample_rate": frontend.sample_rate,
        "duration": SECONDS,
        "frame_hop": FRAME_HOP,
        "classes": CLASSES,
        "max_events": 4,
    }
    train = SyntheticEvents(NUM_TRAIN, seed=TRAIN_SEED, **kw)
    items = [train[i] for i in range(len(train))]
    x = frame_features(frontend, torch.stack([w for w, _ in items]))
    y = torch.stack([t for _, t in items])
    mean, std = x.mean(dim=(0, 1)), x.std(dim=(0, 1)) + 1e-5
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[-1], len(CLASSES))
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(STEPS):
        loss = F.binary_cross_entropy_with_logits(head((x - mean) / std), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    test = SyntheticEvents(TEST_INDEX + 1, seed=TEST_SEED, **kw)
    wave, _ = test[TEST_INDEX]
    with torch.no_grad():
        probs = torch.sigmoid(head((frame_features(frontend, wave[None]) - mean) / std))[0]
    events = cast(
        "list[Event]",
        detect_events(
            probs,
            FRAME_HOP,
            threshold=THRESHOLD,
            median_window=MEDIAN,
            labels=CLASSES,
            duration=SECONDS,
        ),
    )
    return test, probs, events


def render() -> bytes:
    """The figure as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.set_num_threads(min(2, torch.get_num_threads()))
    test, probs, events = predictions()
    references = test.events(TEST_INDEX)
    smooth = median_filter(probs, MEDIAN)
    # frame t covers [t * hop, (t + 1) * hop): draw each probability as a step over its frame
    edges = torch.arange(probs.shape[0] + 1) * FRAME_HOP

    fig, axes = plt.subplots(
        len(CLASSES), 1, figsize=(9, 1.55 * len(CLASSES) + 0.6), sharex=True, layout="constrained"
    )
    for k, (ax, name) in enumerate(zip(axes, CLASSES, strict=True)):
        raw = torch.cat([probs[:, k], probs[-1:, k]]).numpy()
        filt = torch.cat([smooth[:, k], smooth[-1:, k]]).numpy()
        ax.step(
            edges,
            raw,
            where="post",
            color="tab:blue",
            alpha=0.35,
            linewidth=0.8,
            label="frame probability",
        )
        ax.step(
            edges,
            filt,
            where="post",
            color="tab:blue",
            linewidth=1.5,
            label=f"median filtered ({MEDIAN} frames)",
        )
        ax.axhline(THRESHOLD, color="grey", linestyle="--", linewidth=0.8, label="threshold")
        for onset, offset, c in references:
            if c == k:
                ax.broken_barh([(onset, offset - onset)], (1.06, 0.12), color="0.55")
        for e in events:
            if e.label == name:
                ax.broken_barh([(e.onset, e.offset - e.onset)], (1.22, 0.12), color="tab:orange")
        ax.set_ylim(-0.05, 1.4)
        ax.set_yticks([0.0, 0.5, 1.0])
        ax.set_ylabel(name, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.supylabel("probability of each class", fontsize=9)
    axes[-1].set_xlim(0.0, SECONDS)
    axes[-1].set_xlabel(
        f"time (s); frame t covers [t · {FRAME_HOP:g} s, (t + 1) · {FRAME_HOP:g} s)"
    )
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [
        plt.Rectangle((0, 0), 1, 1, color="0.55"),
        plt.Rectangle((0, 0), 1, 1, color="tab:orange"),
    ]
    labels += ["reference event", "detected event"]
    fig.legend(handles, labels, loc="outside upper center", ncols=5, fontsize=8, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "sed.png"
    with open(path, "wb") as f:
        f.write(render())
