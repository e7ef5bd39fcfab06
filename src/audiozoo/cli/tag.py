"""``audiozoo tag``: the top labels of audio files, or with ``--events`` their timed events.

Each file is read and run on its own; a file that cannot be read or run is reported on stderr
with its reason and the others go on (exit status 1 at the end).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, cast

from .common import each_file, read_audio

__all__ = ["cmd_tag"]


def _scores(model: Any, wave: Any) -> Any:
    import torch

    with torch.inference_mode():
        logits = model(wave)
    if logits.dim() == 2:  # frame head (T', K): a clip's score is its highest frame
        logits = logits.amax(dim=0)
    cfg = model.pretrained_cfg
    if cfg.label_set and not cfg.label_set_info.multilabel:  # classes exclude each other
        return torch.softmax(logits, dim=-1)
    return torch.sigmoid(logits)


def _check_labels(model: Any, outputs: int) -> None:
    """The labels name every output (a model edited by hand may not: say so, once)."""
    labels = model.labels
    if labels is not None and len(labels) != outputs:
        raise ValueError(
            f"the model has {len(labels)} labels for {outputs} outputs; set one label per class "
            "(model.labels) before saving it"
        )


def _median_frames(seconds: float, frame_hop: float) -> int:
    """The odd number of frames closest to a median filter of ``seconds`` (at least 1)."""
    frames = max(1, round(seconds / frame_hop))
    return frames if frames % 2 else frames + 1


def _events_text(
    model: Any, paths: Sequence[str], args: argparse.Namespace, fmt: str
) -> tuple[str, int]:
    """``tag --events``: median-filtered, thresholded frame probabilities as timed events; the
    text and the number of files that failed."""
    import torch

    from ..events import Event, detect_events

    threshold = 0.5 if args.threshold is None else args.threshold
    window = _median_frames(args.median, model.frame_hop)

    def run(path: str) -> list[dict[str, Any]]:
        wave = read_audio(path, model.sample_rate)
        with torch.inference_mode():
            probs = torch.sigmoid(model(wave))  # (T', K)
        _check_labels(model, probs.shape[-1])
        events = cast(
            "list[Event]",
            detect_events(
                probs,
                model.frame_hop,
                threshold=threshold,
                median_window=window,
                labels=model.labels,
                duration=wave.shape[-1] / model.sample_rate,
            ),
        )
        return [
            {
                "onset": round(e.onset, 3),
                "offset": round(e.offset, 3),
                "label": e.label if isinstance(e.label, str) else f"class_{e.label}",
                "score": round(e.score, 4),
            }
            for e in events
        ]

    results = each_file("tag", paths, run)
    failed = len(paths) - len(results)
    if fmt in ("json", "csv"):
        return _table(results, fmt, ["onset", "offset", "label", "score"]), failed
    lines = []
    for path, rows in results.items():
        lines.append(
            f"{path}: {len(rows)} events (threshold {threshold:g}, median filter "
            f"{window} frames of {model.frame_hop:g} s)"
        )
        lines += [
            f"  {row['onset']:8.3f} {row['offset']:8.3f}  {row['label']}  ({row['score']:.2f})"
            for row in rows
        ]
    return "".join(line + "\n" for line in lines), failed


def _table(results: dict[str, list[dict[str, Any]]], fmt: str, columns: list[str]) -> str:
    """``{file: [row, ...]}`` as JSON (the dict itself) or as CSV with ``file`` + ``columns``."""
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *columns])
    for path, rows in results.items():
        for row in rows:
            writer.writerow([path, *(row[c] for c in columns)])
    return buffer.getvalue()


def _tag_rows(scores: Any, labels: Any, top_k: int | None, threshold: float | None) -> list[Any]:
    """Labels of one file, most probable first: those >= ``threshold`` (if given), at most
    ``top_k`` (if given; 5 when neither is)."""
    if top_k is None and threshold is None:
        top_k = 5
    order = scores.argsort(descending=True)
    rows: list[dict[str, Any]] = []
    for i in order.tolist():
        p = float(scores[i])
        if (threshold is not None and p < threshold) or (top_k is not None and len(rows) >= top_k):
            break
        rows.append(
            {
                "index": int(i),
                "label": labels[int(i)] if labels else f"class_{int(i)}",
                "probability": round(p, 6),
            }
        )
    return rows


def _tag_files(paths: list[str]) -> list[str]:
    """The given files, with folders (and list files) expanded to the audio files in them."""
    from ..corpus import LIST_SUFFIXES, find_inputs

    out: list[str] = []
    for path in paths:
        if os.path.isdir(path) or path.lower().endswith(LIST_SUFFIXES):
            out += [item.path for item in find_inputs([path])]
        else:
            out.append(path)
    return out


def _labels_text(
    model: Any, paths: Sequence[str], args: argparse.Namespace, fmt: str
) -> tuple[str, int]:
    """``tag``: the top labels of each file as text, JSON or CSV; the text and the number of
    files that failed."""
    labels = model.labels

    def run(path: str) -> list[dict[str, Any]]:
        scores = _scores(model, read_audio(path, model.sample_rate))
        _check_labels(model, scores.shape[-1])
        return _tag_rows(scores, labels, args.top_k, args.threshold)

    results = each_file("tag", paths, run)
    failed = len(paths) - len(results)
    if fmt in ("json", "csv"):
        ranked = {
            p: [{"rank": r, **row} for r, row in enumerate(rows, 1)] for p, rows in results.items()
        }
        return _table(
            ranked if fmt == "csv" else results, fmt, ["rank", "index", "label", "probability"]
        ), failed
    lines = []
    for path, rows in results.items():
        lines.append(path)
        lines += [f"  {row['probability']:.3f}  {row['label']}" for row in rows]
    return "".join(line + "\n" for line in lines), failed


def cmd_tag(args: argparse.Namespace) -> int:
    from .. import create

    fmt = "json" if args.json else args.format
    pretrained: Any = args.pretrained if args.pretrained else True
    model = create(args.model, pretrained=pretrained, cache_dir=args.cache_dir)
    output = getattr(model.head, "output", "clip")
    if output == "embedding":
        raise ValueError(f"{args.model} has no classifier head; choose a tagged model")
    files = _tag_files(args.files)
    if args.events:
        if output != "frame":
            raise ValueError(
                f"--events needs a frame-level model, and {args.model} has a clip head; try "
                "--model frame_mn10.as_strong (sound event detection, 447 classes, 40 ms frames)"
            )
        text, failed = _events_text(model, files, args, fmt)
    else:
        text, failed = _labels_text(model, files, args, fmt)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if failed and len(files) > 1:
        sys.stderr.write(f"audiozoo tag: {failed} of {len(files)} files failed\n")
    return 1 if failed else 0
