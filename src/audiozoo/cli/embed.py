"""``audiozoo embed``: embeddings of a corpus into files or shards (the work is
:mod:`audiozoo.corpus`'s; this module reads the options and runs it, under torchrun too)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import out

__all__ = ["cmd_embed"]


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


def cmd_embed(args: argparse.Namespace) -> int:
    from .. import corpus, create, optimize_for_inference

    output = args.output
    if args.merge:
        expected = [i.key for i in corpus.find_inputs(args.inputs)] if args.inputs else None
        report = corpus.merge_shards(output, inputs=expected)
        out(report.text())
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
        output,
        frames=args.frames,
        layers=_layers_arg(args.layers),
        batch_size=args.batch_size,
        workers=args.workers,
        threads=args.threads,
        format=args.format,
        shard=args.shard,
        progress=False if args.no_progress else None,
    )
    out(summary.text())
    status = 0
    if dist is not None:
        dist.barrier()
        if dist.get_rank() == 0:
            report = corpus.merge_shards(output)
            out(report.text())
            status = 0 if report.ok else 1
        dist.destroy_process_group()
    elif summary.shard[1] == 1:
        report = corpus.merge_shards(output)
        out(report.text())
        status = 0 if report.ok else 1
    return status
