"""``audiozoo list | info | download | convert``: the zoo, one model's facts, the cache, and
upstream checkpoints to the audiozoo format."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import out as _out

__all__ = ["cmd_convert", "cmd_download", "cmd_info", "cmd_list", "model_info"]


# ---------------------------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    from .. import list_models

    for name in list_models(args.pattern or "*", pretrained=args.pretrained):
        _out(name)
    return 0


# ---------------------------------------------------------------------------------- info
def model_info(name: str, seconds: float = 10.0) -> dict[str, Any]:
    """What ``audiozoo info NAME`` prints, as a dict (built with ``pretrained=False``)."""
    from .. import create
    from ..stats import count_macs, count_parameters, receptive_field, receptive_field_seconds

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


def cmd_info(args: argparse.Namespace) -> int:
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
def cmd_download(args: argparse.Namespace) -> int:
    from .. import create
    from ..download import cache_root

    if not args.names and not args.verify:
        raise ValueError("name the models to download, or pass --verify to check the cache")
    for name in args.names:
        model = create(name, pretrained=True, cache_dir=args.cache_dir)
        labels = f", {len(model.labels)} labels" if model.labels else ""
        _out(f"{model.pretrained_cfg.name}: cached{labels}")
    if args.verify:
        from ..download import verify_cache

        report = verify_cache(args.cache_dir)
        _out(str(report))
        return 0 if report.ok else 1
    _out(f"cache: {cache_root(args.cache_dir)}")
    return 0


# ---------------------------------------------------------------------------------- convert
def cmd_convert(args: argparse.Namespace) -> int:
    from .. import create

    model = create(args.name, pretrained=args.checkpoint, cache_dir=args.cache_dir)
    folder = model.save_pretrained(args.out)
    _out(f"wrote {folder} (load with audiozoo.create('local-dir:{folder}'))")
    return 0
