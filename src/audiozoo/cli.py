"""The ``audiozoo`` command line (also ``python -m audiozoo``).

::

    audiozoo list [PATTERN] [--pretrained]      registered models, or tags with weights
    audiozoo info NAME [--json]                 architecture, size, MACs, rates, source
    audiozoo download NAME... [--verify]        fetch + convert into the cache (for offline use)
    audiozoo tag FILE|DIR... [--model mn10] [--top-k 5] [--threshold P] [--format json|csv]
                 [--output FILE] [--pretrained PATH]
    audiozoo tag FILE|DIR... --events [--model frame_mn10.as_strong] [--threshold 0.5]
                 [--median 0.36]
    audiozoo embed FILE|DIR|LIST... -o OUT [--model mn10] [--frames] [--layers all] [--format ...]
    audiozoo embed --merge -o OUT              check a (multi-process) run, join its shards
    audiozoo convert CHECKPOINT --name mn10.as --out DIR

The corpus logic of ``embed`` is in :mod:`audiozoo.corpus`.
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

    if not args.names and not args.verify:
        raise ValueError("name the models to download, or pass --verify to check the cache")
    for name in args.names:
        model = create(name, pretrained=True, cache_dir=args.cache_dir)
        labels = f", {len(model.labels)} labels" if model.labels else ""
        _out(f"{model.pretrained_cfg.name}: cached{labels}")
    if args.verify:
        from .download import verify_cache

        report = verify_cache(args.cache_dir)
        _out(str(report))
        return 0 if report.ok else 1
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


def _events_text(model: Any, paths: Sequence[str], args: argparse.Namespace, fmt: str) -> str:
    """``tag --events``: median-filtered, thresholded frame probabilities as timed events."""
    import torch

    from .events import Event, detect_events

    threshold = 0.5 if args.threshold is None else args.threshold
    window = _median_frames(args.median, model.frame_hop)
    results: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        wave = _read_audio(path, model.sample_rate)
        with torch.inference_mode():
            probs = torch.sigmoid(model(wave))  # (T', K)
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
        results[path] = [
            {
                "onset": round(e.onset, 3),
                "offset": round(e.offset, 3),
                "label": e.label if isinstance(e.label, str) else f"class_{e.label}",
                "score": round(e.score, 4),
            }
            for e in events
        ]
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "onset", "offset", "label", "score"])
        for path, rows in results.items():
            for row in rows:
                writer.writerow([path, row["onset"], row["offset"], row["label"], row["score"]])
        return buffer.getvalue()
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
    return "".join(line + "\n" for line in lines)


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
    from .corpus import LIST_SUFFIXES, find_inputs

    out: list[str] = []
    for path in paths:
        if os.path.isdir(path) or path.lower().endswith(LIST_SUFFIXES):
            out += [item.path for item in find_inputs([path])]
        else:
            out.append(path)
    return out


def _cmd_tag(args: argparse.Namespace) -> int:
    from . import create

    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must be a probability in [0, 1], got {args.threshold}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    fmt = "json" if args.json else args.format
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
        text = _events_text(model, _tag_files(args.files), args, fmt)
    else:
        text = _labels_text(model, _tag_files(args.files), args, fmt)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _labels_text(model: Any, paths: Sequence[str], args: argparse.Namespace, fmt: str) -> str:
    """``tag``: the top labels of each file as text, JSON or CSV."""
    labels = model.labels
    results: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        scores = _scores(model, _read_audio(path, model.sample_rate))
        results[path] = _tag_rows(scores, labels, args.top_k, args.threshold)
    if fmt == "json":
        return json.dumps(results, indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "rank", "index", "label", "probability"])
        for path, rows in results.items():
            for rank, row in enumerate(rows, start=1):
                writer.writerow([path, rank, row["index"], row["label"], row["probability"]])
        return buffer.getvalue()
    lines = []
    for path, rows in results.items():
        lines.append(path)
        lines += [f"  {row['probability']:.3f}  {row['label']}" for row in rows]
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------- embed
def _pretrained_arg(value: str | None) -> Any:
    if value is None or value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    return value


def _layers_arg(value: str | None) -> Any:
    if value is None or value == "all":
        return value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]


def _device_arg(value: str) -> str:
    import torch

    if value == "auto":
        value = "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cuda" and "LOCAL_RANK" in os.environ:  # torchrun: one GPU per local rank
        value = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return value


def _distributed() -> Any:
    """A gloo process group under torchrun (to wait for every rank before merging), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or "MASTER_ADDR" not in os.environ:
        return None
    import datetime

    import torch.distributed as dist

    if not dist.is_available():
        return None
    if not dist.is_initialized():  # ranks of a corpus run may finish hours apart
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    return dist


def _cmd_embed(args: argparse.Namespace) -> int:
    from . import corpus, create, optimize_for_inference

    out = args.output
    if args.merge:
        expected = [i.key for i in corpus.find_inputs(args.inputs)] if args.inputs else None
        report = corpus.merge_shards(out, inputs=expected)
        _out(report.text())
        return 0 if report.ok else 1
    if not args.inputs:
        raise ValueError("name the audio files, folders or list files to embed")
    dist = _distributed() if args.shard is None else None
    device = _device_arg(args.device)
    model = create(
        args.model, pretrained=_pretrained_arg(args.pretrained), cache_dir=args.cache_dir
    )
    model = model.to(device).eval()
    if not args.no_optimize:
        model = optimize_for_inference(model)
    summary = corpus.embed_corpus(
        model,
        args.inputs,
        out,
        frames=args.frames,
        layers=_layers_arg(args.layers),
        batch_size=args.batch_size,
        workers=args.workers,
        threads=args.threads,
        format=args.format,
        shard=args.shard,
        progress=False if args.no_progress else None,
    )
    _out(summary.text())
    status = 0
    if dist is not None:
        dist.barrier()
        if dist.get_rank() == 0:
            report = corpus.merge_shards(out)
            _out(report.text())
            status = 0 if report.ok else 1
        dist.destroy_process_group()
    elif summary.shard[1] == 1:
        report = corpus.merge_shards(out)
        _out(report.text())
        status = 0 if report.ok else 1
    return status


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
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-check the sha256 of every cached file; exit status 1 when one is corrupt",
    )
    p.set_defaults(run=_cmd_download)

    p = sub.add_parser("tag", help="print the top labels of audio files")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files or folders")
    p.add_argument("--model", default="mn10", help="model name (default: mn10)")
    p.add_argument(
        "--top-k",
        "--top",
        dest="top_k",
        type=int,
        help="at most K labels per file (default: 5, or all above --threshold)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="only labels with probability >= P; with --events the frame threshold (default 0.5)",
    )
    p.add_argument(
        "--format", choices=("text", "json", "csv"), default="text", help="output format"
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--pretrained", metavar="PATH", help="weights from this checkpoint file")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.add_argument(
        "--events",
        action="store_true",
        help="print timed events (onset, offset, label) instead of the top labels; needs a "
        "frame-level model such as frame_mn10.as_strong",
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

    p = sub.add_parser(
        "embed",
        help="embeddings of audio files into .npz/.npy files or shards (resumable)",
        description="Embed files, folders and list files (see docs/cli.md). Under torchrun "
        "every rank takes its share; --merge checks that every input is present once.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, folders, list files")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--model", default="mn10", help="model name (default: mn10)")
    p.add_argument(
        "--pretrained",
        metavar="true|false|PATH",
        help="the tag's weights (true, default), random init (false) or a checkpoint",
    )
    p.add_argument("--frames", action="store_true", help="also frame embeddings + timestamps")
    p.add_argument("--layers", help="'all' or comma-separated layer names/indices")
    p.add_argument("--batch-size", type=int, default=16, help="clips per model call (16)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--workers", type=int, help="decoding workers (default: fitted to the cores)")
    p.add_argument("--threads", type=int, help="model threads (default: fitted to the cores)")
    p.add_argument(
        "--format",
        choices=("npz", "npy", "shard", "parquet"),
        default="npz",
        help="npz/npy per file (default npz), or one NPZ/Parquet shard per process",
    )
    p.add_argument("--shard", metavar="I/N", help="take share I of N (default: RANK/WORLD_SIZE)")
    p.add_argument("--merge", action="store_true", help="check and join the output of a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-optimize", action="store_true", help="skip optimize_for_inference")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.set_defaults(run=_cmd_embed)

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
    except (AudiozooError, OSError, ValueError, ImportError) as exc:
        sys.stderr.write(f"audiozoo {args.command}: error: {exc}\n")
        return 1
    return status
