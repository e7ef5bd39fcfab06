"""Fine-tune (or train from scratch) an audiozoo model for clip classification, in plain PyTorch.

Runs offline out of the box on synthetic data::

    python examples/finetune.py --model mn04 --data synthetic --pretrained false

Your own data: a folder of audio files with a ``labels.csv`` (columns ``filename,label`` and an
optional ``split`` column with ``train``/``test``; without it a random ``--val-fraction`` is held
out; several labels separated by ``;`` make the task multi-label)::

    python examples/finetune.py --model mn10 --pretrained true --data path/to/folder --freeze

What it does: seeds every random generator, writes the configuration, library versions, git
commit and per-epoch metrics to ``OUT/run.json``, shows a progress bar (tqdm if installed),
evaluates on the held-out split after every epoch and saves the best model with
``model.save_pretrained(OUT / "best")`` (load it with ``audiozoo.create("local-dir:OUT/best")``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

import audiozoo
from audiozoo import augment
from audiozoo.data import FolderDataset, SyntheticAudio
from audiozoo.finetune import param_groups, recalibrate_batchnorm


def build_parser(description: str | None = __doc__) -> argparse.ArgumentParser:
    """The command-line options (shared with ``finetune_lightning.py``)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="mn04", help="architecture or arch.tag (default: mn04)")
    p.add_argument("--head", default="linear", help="head to train (default: linear)")
    p.add_argument("--freeze", action=argparse.BooleanOptionalAction, default=False,
                   help="freeze frontend and backbone, train the head only")
    p.add_argument("--freeze-stages", type=int, default=None,
                   help="freeze only the first N backbone stages")
    p.add_argument("--pretrained", default="false",
                   help="'true' (the tag's weights), 'false' (random init) or a checkpoint path")
    p.add_argument("--data", default="synthetic", help="'synthetic' or a folder with labels.csv")
    p.add_argument("--num-train", type=int, default=640, help="synthetic training clips")
    p.add_argument("--num-test", type=int, default=200, help="synthetic held-out clips")
    p.add_argument("--duration", type=float, default=1.0, help="clip length in seconds")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="held-out fraction of a folder without a split column")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of the head")
    p.add_argument("--layer-decay", type=float, default=None,
                   help="learning-rate factor per backbone stage (default: 0.75 when pretrained, "
                        "1.0 from scratch)")
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--precise-bn", type=int, default=10,
                   help="training batches to recompute BatchNorm statistics from before each "
                        "evaluation (0: off)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: as fast for these small models on a "
                        "few cores, and no slowdown when other processes share them; 0: "
                        "torch's choice)")
    p.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0: off)")
    p.add_argument("--gain-db", type=float, default=0.0, help="random gain range +-dB (0: off)")
    p.add_argument("--freqm", type=int, default=0, help="frontend frequency mask width (0: off)")
    p.add_argument("--timem", type=int, default=0, help="frontend time mask width (0: off)")
    p.add_argument("--out", type=Path, default=Path("runs/finetune"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


# ---------------------------------------------------------------------------------------------
# Reproducibility and provenance


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def git_commit() -> dict[str, Any]:
    """The commit of the repository this script lives in, and whether it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "audiozoo": audiozoo.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def progress(iterable: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterator[Any]:
    """tqdm when it is installed, else a one-line counter on stderr."""
    if not enabled:
        yield from iterable
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        for i, item in enumerate(iterable, 1):
            print(f"\r{desc} {i}/{total}", end="", file=sys.stderr, flush=True)
            yield item
        print(file=sys.stderr)
        return
    yield from tqdm(iterable, total=total, desc=desc, leave=False)


# ---------------------------------------------------------------------------------------------
# Data


def load_data(args: argparse.Namespace, sample_rate: int) -> tuple[Dataset, Dataset, list[str], bool]:
    """(train, test, class names, multi_label)."""
    if args.data == "synthetic":
        def materialise(ds: SyntheticAudio) -> TensorDataset:
            # The clips are deterministic; generating them once keeps epochs fast.
            waves = torch.stack([ds[i][0] for i in range(len(ds))]) if len(ds) else torch.empty(0)
            return TensorDataset(waves, torch.tensor(ds.labels, dtype=torch.long))

        kw = {"sample_rate": sample_rate, "duration": args.duration}
        train = SyntheticAudio(args.num_train, seed=args.seed, **kw)
        test = SyntheticAudio(args.num_test, seed=args.seed + 10_000, **kw)
        return materialise(train), materialise(test), list(train.classes), False

    root = Path(args.data)
    kw = {"sample_rate": sample_rate, "duration": args.duration}
    with open(root / "labels.csv", encoding="utf-8") as f:
        has_split = "split" in f.readline().split(",")
    if has_split:
        train = FolderDataset(root, split="train", **kw)
        test = FolderDataset(root, split="test", classes=train.classes,
                             multi_label=train.multi_label, **kw)
        return train, test, list(train.classes), train.multi_label
    full = FolderDataset(root, **kw)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(args.seed)).tolist()
    n_test = max(1, round(args.val_fraction * len(full)))
    return (Subset(full, order[n_test:]), Subset(full, order[:n_test]), list(full.classes),
            full.multi_label)


# ---------------------------------------------------------------------------------------------
# Training


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over classes (with at least one positive) of the average precision."""
    aps = []
    for k in range(targets.shape[1]):
        t = targets[scores[:, k].argsort(descending=True), k]
        if t.sum() == 0:
            continue
        hits = t.cumsum(0)
        precision = hits / torch.arange(1, len(t) + 1)
        aps.append(float((precision * t).sum() / t.sum()))
    return float(np.mean(aps)) if aps else float("nan")


def augment_batch(args: argparse.Namespace, wave: torch.Tensor, target: torch.Tensor,
                  num_classes: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveform augmentations from audiozoo.augment (each a no-op when switched off)."""
    if args.gain_db:
        wave = augment.random_gain(wave, -args.gain_db, args.gain_db, generator=g)
    if args.mixup:
        wave, target = augment.mixup(wave, target, alpha=args.mixup, num_classes=num_classes,
                                     generator=g)
    return wave, target


def clip_loss(logits: torch.Tensor, target: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Binary cross-entropy for multi-label targets, else cross-entropy (class indices or, after
    mixup, class probabilities)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.cross_entropy(logits, target)


@torch.inference_mode()
def evaluate(model: audiozoo.AudioModel, loader: DataLoader, multi_label: bool,
             device: str) -> dict[str, float]:
    model.eval()
    outputs, targets = [], []
    for wave, target in loader:
        outputs.append(model(wave.to(device)).float().cpu())
        targets.append(target)
    logits, target = torch.cat(outputs), torch.cat(targets)
    return metrics(logits, target, multi_label)


def metrics(logits: torch.Tensor, target: torch.Tensor, multi_label: bool) -> dict[str, float]:
    """Held-out loss and accuracy (single-label) or mAP (multi-label)."""
    loss = clip_loss(logits, target, multi_label).item()
    if multi_label:
        return {"loss": loss, "mAP": average_precision(logits, target)}
    return {"loss": loss, "accuracy": (logits.argmax(1) == target).float().mean().item()}


def build(args: argparse.Namespace) -> tuple[audiozoo.AudioModel, Dataset, Dataset, list[str], bool,
                                           float]:
    """Model and data from the options: (model, train, test, classes, multi_label, layer_decay)."""
    pretrained: bool | str = {"true": True, "false": False}.get(args.pretrained.lower(),
                                                                args.pretrained)
    freeze: bool | int = args.freeze_stages if args.freeze_stages is not None else args.freeze
    layer_decay = args.layer_decay if args.layer_decay is not None else (
        0.75 if pretrained is not False else 1.0)
    # The data needs the model's sample rate; the model needs the data's number of classes.
    sample_rate = audiozoo.create(args.model, pretrained=False, head="identity").sample_rate
    train_set, test_set, classes, multi_label = load_data(args, sample_rate)
    # The frontend's own SpecAugment (train mode only), switched on through create().
    frontend = {"augment": True, "freqm": args.freqm, "timem": args.timem} if (
        args.freqm or args.timem) else None
    model = audiozoo.create(args.model, pretrained=pretrained, head=args.head,
                            num_classes=len(classes), freeze=freeze, frontend=frontend)
    model.labels = classes
    return model, train_set, test_set, classes, multi_label, layer_decay


def run_record(args: argparse.Namespace, layer_decay: float, classes: list[str],
               groups: list[dict[str, Any]], num_train: int, num_test: int) -> dict[str, Any]:
    """What run.json records besides the per-epoch history."""
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "layer_decay": layer_decay,
        "versions": versions(),
        "git": git_commit(),
        "classes": classes,
        "num_train": num_train,
        "num_test": num_test,
        "param_groups": [{"name": gr["name"], "lr": gr["lr"], "params": len(gr["params"])}
                         for gr in groups],
        "history": [],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    g = seed_everything(args.seed)
    started = time.time()
    model, train_set, test_set, classes, multi_label, layer_decay = build(args)
    model.frontend.generator = g  # type: ignore[assignment]
    model.to(args.device)

    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=g,
                              num_workers=args.workers, drop_last=len(train_set) > args.batch_size)
    test_loader = DataLoader(test_set, batch_size=2 * args.batch_size, num_workers=args.workers)
    groups = param_groups(model, args.lr, layer_decay=layer_decay,
                          weight_decay=args.weight_decay)
    optimizer = torch.optim.AdamW(groups)
    steps = max(1, args.epochs * len(train_loader))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["lr"] for group in groups], total_steps=steps, pct_start=0.15)

    args.out.mkdir(parents=True, exist_ok=True)
    record = run_record(args, layer_decay, classes, groups, len(train_set), len(test_set))
    metric = "mAP" if multi_label else "accuracy"
    best = -1.0
    print(f"{args.model} + {args.head}: {len(train_set)} training / {len(test_set)} held-out "
          f"clips, {len(classes)} classes, {sum(p.numel() for gr in groups for p in gr['params'])} "
          f"trainable parameters on {args.device}")
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        bar = progress(train_loader, len(train_loader), f"epoch {epoch}/{args.epochs}",
                       not args.no_progress)
        for wave, target in bar:
            wave, target = wave.to(args.device), target.to(args.device)
            wave, target = augment_batch(args, wave, target, len(classes), g)
            loss = clip_loss(model(wave), target, multi_label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        if args.precise_bn:
            # EfficientAT's BatchNorm momentum (0.01) suits long runs; after a short one the
            # running statistics lag far behind the weights, so recompute them.
            recalibrate_batchnorm(model, ((w.to(args.device),) for w, _ in train_loader),
                                  max_batches=args.precise_bn)
        result = evaluate(model, test_loader, multi_label, args.device)
        result = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                  **result, "elapsed_s": round(time.time() - started, 1)}
        record["history"].append(result)
        improved = result[metric] > best
        if improved:
            best = result[metric]
            model.save_pretrained(args.out / "best")
        print(f"epoch {epoch}: train loss {result['train_loss']:.3f}, held-out loss "
              f"{result['loss']:.3f}, {metric} {result[metric]:.3f}"
              f"{' (best, saved)' if improved else ''}, {result['elapsed_s']:.0f} s")
        record.update({f"best_{metric}": best, "elapsed_s": result["elapsed_s"]})
        (args.out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"best held-out {metric}: {best:.3f} in {time.time() - started:.0f} s; model in "
          f"{args.out / 'best'}, log in {args.out / 'run.json'}")
    return record


if __name__ == "__main__":
    main()
