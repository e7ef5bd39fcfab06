"""Fine-tune an audiozoo model with PyTorch Lightning, optionally logging to Weights & Biases.

The same options, data and model as ``finetune.py`` (whose helpers it imports; keep the two
files together), with Lightning's training loop::

    pip install "audiozoo[lightning]"
    python examples/finetune_lightning.py --model mn04 --data synthetic --pretrained false
    python examples/finetune_lightning.py --wandb            # W&B, offline (sync later)
    WANDB_MODE=online python examples/finetune_lightning.py --wandb --wandb-project my-project

Logs go to ``OUT/csv`` (always) and ``OUT/wandb`` (with ``--wandb``). The W&B run is written
offline unless ``WANDB_MODE=online``: ``wandb sync OUT/wandb/offline-run-*`` uploads it later.
The best model (held-out accuracy, or mAP for multi-label data) is saved with
``model.save_pretrained(OUT / "best")`` and ``OUT/run.json`` records configuration, versions,
git commit and metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers in finetune.py

import lightning as L
from finetune import (
    augment_batch,
    build,
    build_parser,
    clip_loss,
    metrics,
    run_record,
)
from lightning.pytorch.loggers import CSVLogger, Logger

import audiozoo
from audiozoo.finetune import param_groups, recalibrate_batchnorm


class AudioClassifier(L.LightningModule):
    """Wraps an :class:`audiozoo.AudioModel`: clip loss, held-out metrics, best-model saving."""

    def __init__(self, model: audiozoo.AudioModel, args: argparse.Namespace, num_classes: int,
                 multi_label: bool, layer_decay: float, record: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.args = args
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.layer_decay = layer_decay
        self.record = record
        self.metric = "mAP" if multi_label else "accuracy"
        self.best = -1.0
        self.generator = torch.Generator().manual_seed(args.seed)
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        wave, target = augment_batch(self.args, *batch, self.num_classes, self.generator)
        loss = clip_loss(self.model(wave), target, self.multi_label)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def on_validation_model_eval(self) -> None:
        if self.args.precise_bn and not self.trainer.sanity_checking:
            # Recompute BatchNorm statistics for the current weights (see finetune.py).
            batches = ((wave.to(self.device),) for wave, _ in self.trainer.train_dataloader)
            recalibrate_batchnorm(self.model, batches, max_batches=self.args.precise_bn)
        super().on_validation_model_eval()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        wave, target = batch
        self._outputs.append((self.model(wave).float().cpu(), target.cpu()))

    def on_validation_epoch_end(self) -> None:
        logits = torch.cat([o for o, _ in self._outputs])
        target = torch.cat([t for _, t in self._outputs])
        self._outputs.clear()
        if self.trainer.sanity_checking:
            return
        result = metrics(logits, target, self.multi_label)
        self.log_dict({f"val/{k}": v for k, v in result.items()}, prog_bar=True)
        if result[self.metric] > self.best:
            self.best = result[self.metric]
            self.model.save_pretrained(self.args.out / "best")
        self.record["history"].append({"epoch": self.current_epoch + 1, **result})
        self.record[f"best_{self.metric}"] = self.best
        (self.args.out / "run.json").write_text(json.dumps(self.record, indent=2) + "\n")

    def configure_optimizers(self) -> dict[str, Any]:
        groups = param_groups(self.model, self.args.lr, layer_decay=self.layer_decay,
                              weight_decay=self.args.weight_decay)
        optimizer = torch.optim.AdamW(groups)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups],
            total_steps=max(1, int(self.trainer.estimated_stepping_batches)), pct_start=0.15)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def loggers(args: argparse.Namespace, config: dict[str, Any]) -> list[Logger]:
    """CSV logs always; W&B with ``--wandb``, offline unless WANDB_MODE=online."""
    out: list[Logger] = [CSVLogger(args.out, name="csv")]
    if args.wandb:
        from lightning.pytorch.loggers import WandbLogger

        offline = os.environ.get("WANDB_MODE", "offline") != "online"
        out.append(WandbLogger(project=args.wandb_project, save_dir=str(args.out),
                               offline=offline, config=config))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser(__doc__)
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases")
    parser.add_argument("--wandb-project", default="audiozoo-finetune")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(args.seed, workers=True)

    model, train_set, test_set, classes, multi_label, layer_decay = build(args)
    model.frontend.generator = torch.Generator().manual_seed(args.seed)  # type: ignore[assignment]
    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, generator=g,
                              num_workers=args.workers, drop_last=len(train_set) > args.batch_size)
    test_loader = DataLoader(test_set, batch_size=2 * args.batch_size, num_workers=args.workers)

    args.out.mkdir(parents=True, exist_ok=True)
    groups = param_groups(model, args.lr, layer_decay=layer_decay,
                          weight_decay=args.weight_decay)
    record = run_record(args, layer_decay, classes, groups, len(train_set), len(test_set))
    record["versions"]["lightning"] = L.__version__
    module = AudioClassifier(model, args, len(classes), multi_label, layer_decay, record)
    # create() returns an eval-mode model; Lightning keeps the modes it finds at the start.
    module.train()
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=1,
        logger=loggers(args, {k: record[k] for k in ("config", "versions", "git")}),
        enable_checkpointing=False,  # the best model is saved with save_pretrained instead
        enable_progress_bar=not args.no_progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=args.out,
    )
    trainer.fit(module, train_loader, test_loader)
    metric = module.metric
    print(f"best held-out {metric}: {module.best:.3f}; model in {args.out / 'best'}, "
          f"log in {args.out / 'run.json'}")
    return record


if __name__ == "__main__":
    main()
