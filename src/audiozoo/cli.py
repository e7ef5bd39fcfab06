"""The ``audiozoo`` command line (also ``python -m audiozoo``).

::

    audiozoo list [PATTERN] [--pretrained]      registered models, or tags with weights
    audiozoo info NAME [--json]                 architecture, size, MACs, rates, source
    audiozoo download NAME...                   fetch + convert into the cache (for offline use)
    audiozoo tag FILE... [--model mn10] [--top 5] [--json] [--pretrained PATH]
    audiozoo tag FILE... --events [--model frame_mn10.as_strong] [--threshold 0.5] [--median 0.36]
    audiozoo convert CHECKPOINT --name mn10.as --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------------------------- list
def _cmd_list(args: argparse.Namespace) -> int:
    from . import list_models

    for name in list_models(args.pattern or "*", pretrained=args.pretrained):
        _out(name)
    return 0


# ---------------------------------------------------------------------------------- info
def model_info(name: str, seconds: float = 10.0) -> dict[str, Any]:
    """What ``audiozoo info NAME`` prints, as a dict (built with ``pretrained=False``)."""
    from . import create
    from .stats import count_macs, count_parameters, receptive_field, receptive_field_seconds

    model = create(name, pretrained=False)
    cfg = model.pretrained_cfg
    num_samples = round(seconds * model.sample_rate)
    frames = model.frontend.num_frames(num_samples)
    rf = receptive_field(model.backbone)
    return {
        "name": name,
        "architecture": model.arch,
        "tag": cfg.tag or None,
        "parameters": count_parameters(model),
        f"macs_{seconds:g}s": count_macs(model, seconds),
        "sample_rate": model.sample_rate,
        "hop_length": model.frontend.hop_length,
        "frame_hop_seconds": model.frame_hop,
        f"input_frames_{seconds:g}s": frames,
        "n_mels": model.frontend.n_mels,
        "embedding_size": model.num_features,
        "head": cfg.head.get("name"),
        "num_classes": cfg.num_classes,
        "receptive_field_frames": rf,
        "receptive_field_seconds": (
            round(receptive_field_seconds(rf, model.frontend), 4) if rf is not None else None
        ),
        "source": cfg.source,
        "license": cfg.license,
        "metrics": dict(cfg.metrics),
        "label_set": cfg.label_set,
        "notes": cfg.notes,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    info = model_info(args.name)
    if args.json:
        _out(json.dumps(info, indent=2))
        return 0
    rf = info["receptive_field_frames"]
    rows = [
        ("architecture", info["architecture"]),
        ("tag", info["tag"] or "(none: random init only)"),
        ("parameters", f"{info['parameters']:,}"),
        ("MACs (10 s)", f"{info['macs_10s']:,} ({info['macs_10s'] / 1e9:.3f} G)"),
        ("sample rate", f"{info['sample_rate']} Hz"),
        (
            "frame hop",
            f"{info['hop_length']} samples "
            f"({1000 * info['hop_length'] / info['sample_rate']:g} ms)",
        ),
        ("output frame hop", f"{info['frame_hop_seconds']:g} s"),
        ("input frames (10 s)", f"{info['input_frames_10s']} x {info['n_mels']} mel bins"),
        ("embedding size", info["embedding_size"]),
        ("head", f"{info['head']} ({info['num_classes']} classes)"),
        (
            "receptive field",
            f"{rf} frames ({info['receptive_field_seconds']:g} s)"
            if rf is not None
            else "whole input (attention)",
        ),
        ("source", info["source"] or "no released weights"),
        ("license", info["license"] or "-"),
        ("reported metric", ", ".join(f"{k} {v}" for k, v in info["metrics"].items()) or "-"),
    ]
    if info["notes"]:
        rows.append(("notes", info["notes"]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        _out(f"{key:<{width}}  {value}")
    return 0


# ---------------------------------------------------------------------------------- download
def _cmd_download(args: argparse.Namespace) -> int:
    from . import create
    from .download import cache_root

    for name in args.names:
        model = create(name, pretrained=True, cache_dir=args.cache_dir)
        labels = f", {len(model.labels)} labels" if model.labels else ""
        _out(f"{model.pretrained_cfg.name}: cached{labels}")
    _out(f"cache: {cache_root(args.cache_dir)}")
    return 0


# ---------------------------------------------------------------------------------- tag
def _read_audio(path: str, sample_rate: int) -> Any:
    """Any soundfile-readable file → mono float32 tensor (N,) at ``sample_rate``."""
    import soundfile
    import torch

    from .resample import resample

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise OSError(f"cannot read {path}: {exc}") from None
    wave = torch.from_numpy(data).mean(dim=1)
    if rate != sample_rate:
        wave = resample(wave, int(rate), sample_rate)
    return wave


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


def _median_frames(seconds: float, frame_hop: float) -> int:
    """The odd number of frames closest to a median filter of ``seconds`` (at least 1)."""
    frames = max(1, round(seconds / frame_hop))
    return frames if frames % 2 else frames + 1


def _events(model: Any, paths: Sequence[str], args: argparse.Namespace) -> int:
    """``tag --events``: median-filtered, thresholded frame probabilities as timed events."""
    import torch

    from .events import detect_events

    window = _median_frames(args.median, model.frame_hop)
    results: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        wave = _read_audio(path, model.sample_rate)
        with torch.inference_mode():
            probs = torch.sigmoid(model(wave))  # (T', K)
        events = detect_events(
            probs,
            model.frame_hop,
            threshold=args.threshold,
            median_window=window,
            labels=model.labels,
            duration=wave.shape[-1] / model.sample_rate,
        )
        results[path] = [
            {
                "onset": round(e.onset, 3),
                "offset": round(e.offset, 3),
                "label": e.label if isinstance(e.label, str) else f"class_{e.label}",
                "score": round(e.score, 4),
            }
            for e in events
        ]
    if args.json:
        _out(json.dumps(results, indent=2))
        return 0
    for path, rows in results.items():
        _out(
            f"{path}: {len(rows)} events (threshold {args.threshold:g}, median filter "
            f"{window} frames of {model.frame_hop:g} s)"
        )
        for row in rows:
            _out(
                f"  {row['onset']:8.3f} {row['offset']:8.3f}  {row['label']}  ({row['score']:.2f})"
            )
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    from . import create

    pretrained: Any = args.pretrained if args.pretrained else True
    model = create(args.model, pretrained=pretrained, cache_dir=args.cache_dir)
    output = getattr(model.head, "output", "clip")
    if output == "embedding":
        raise ValueError(f"{args.model} has no classifier head; choose a tagged model")
    if args.events:
        if output != "frame":
            raise ValueError(
                f"--events needs a frame-level model, and {args.model} has a clip head; try "
                "--model frame_mn10.as_strong (sound event detection, 447 classes, 40 ms frames)"
            )
        return _events(model, args.files, args)
    labels = model.labels
    results: dict[str, list[dict[str, Any]]] = {}
    for path in args.files:
        scores = _scores(model, _read_audio(path, model.sample_rate))
        top = scores.topk(min(args.top, scores.numel()))
        results[path] = [
            {
                "index": int(i),
                "label": labels[int(i)] if labels else f"class_{int(i)}",
                "probability": round(float(p), 6),
            }
            for p, i in zip(top.values, top.indices, strict=True)
        ]
    if args.json:
        _out(json.dumps(results, indent=2))
        return 0
    for path, rows in results.items():
        _out(path)
        for row in rows:
            _out(f"  {row['probability']:.3f}  {row['label']}")
    return 0


# ---------------------------------------------------------------------------------- convert
def _cmd_convert(args: argparse.Namespace) -> int:
    from . import create

    model = create(args.name, pretrained=args.checkpoint, cache_dir=args.cache_dir)
    folder = model.save_pretrained(args.out)
    _out(f"wrote {folder} (load with audiozoo.create('local-dir:{folder}'))")
    return 0


# ---------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="audiozoo", description="Pretrained audio models: list, inspect, fetch, tag."
    )
    parser.add_argument("--version", action="version", version=f"audiozoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list architectures, or tags with weights")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'mn*'")
    p.add_argument("--pretrained", action="store_true", help="list arch.tag names with weights")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("info", help="size, MACs, rates, receptive field, source of a model")
    p.add_argument("name", help="arch or arch.tag")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("download", help="fetch and convert weights into the cache")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.set_defaults(run=_cmd_download)

    p = sub.add_parser("tag", help="print the top labels of audio files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", default="mn10", help="model name (default: mn10)")
    p.add_argument("--top", type=int, default=5, help="labels per file (default: 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--pretrained", metavar="PATH", help="weights from this checkpoint file")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.add_argument(
        "--events",
        action="store_true",
        help="print timed events (onset, offset, label) instead of the top labels; needs a "
        "frame-level model such as frame_mn10.as_strong",
    )
    p.add_argument(
        "--threshold", type=float, default=0.5, help="--events: frame probability threshold"
    )
    p.add_argument(
        "--median",
        type=float,
        default=0.36,
        metavar="SECONDS",
        help="--events: median filter length (default 0.36 s = 9 frames of 40 ms, as "
        "PretrainedSED's inference.py)",
    )
    p.set_defaults(run=_cmd_tag)

    p = sub.add_parser("convert", help="upstream checkpoint -> audiozoo format folder")
    p.add_argument("checkpoint", help="upstream checkpoint file or URL")
    p.add_argument("--name", required=True, help="arch.tag the checkpoint belongs to")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.set_defaults(run=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors: 1, with one message on stderr)."""
    from . import AudiozooError

    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (AudiozooError, OSError, ValueError) as exc:
        sys.stderr.write(f"audiozoo {args.command}: error: {exc}\n")
        return 1
    return status
