"""Fine-tuning helpers: optimizer parameter groups with layer-wise learning-rate decay.

A model's backbone is split into stages by :meth:`~audiozoo.backbones.Backbone.stages` (the one
stage definition per backbone that freezing uses too). :func:`param_groups` gives the head the
base learning rate and every earlier stage another factor of ``layer_decay``::

    model = audiozoo.create("mn10", head="linear", num_classes=10)
    optimizer = torch.optim.AdamW(audiozoo.finetune.param_groups(model, lr=1e-3,
                                                                 layer_decay=0.75,
                                                                 weight_decay=1e-2))

Short training runs from scratch (and EfficientAT's BatchNorm momentum of 0.01) leave the
BatchNorm running statistics far behind the weights; :func:`recalibrate_batchnorm` recomputes
them from a few training batches before evaluation.

To freeze the first N stages instead (no gradients, BatchNorm statistics kept), build the model
with ``audiozoo.create(..., freeze=N)`` or call ``model.freeze(N)``; :func:`param_groups` skips
frozen parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import torch
from torch import nn

__all__ = ["DEFAULT_NO_DECAY", "param_groups", "recalibrate_batchnorm", "stage_lr_scales"]

# Parameter-name substrings that never get weight decay (besides every 0-/1-d parameter, i.e.
# biases and normalisation weights): the transformers' positional embeddings and summary tokens.
DEFAULT_NO_DECAY: tuple[str, ...] = ("pos_embed", "cls_token", "dist_token")


def stage_lr_scales(num_stages: int, layer_decay: float) -> list[float]:
    """Learning-rate factors of ``[frontend, stage 0, ..., stage S-1, head]``.

    The head gets 1, stage ``i`` of ``S`` gets ``layer_decay ** (S - i)``, the frontend (if it
    has parameters) ``layer_decay ** (S + 1)``.
    """
    return [layer_decay ** (num_stages + 1 - k) for k in range(num_stages + 2)]


def param_groups(
    model: nn.Module,
    lr: float,
    *,
    layer_decay: float = 0.75,
    weight_decay: float = 0.0,
    no_decay: Sequence[str] | Callable[[str, nn.Parameter], bool] = DEFAULT_NO_DECAY,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise learning-rate decay.

    Args:
        model: an :class:`~audiozoo.AudioModel` (anything with ``frontend``, ``backbone`` and
            ``head`` attributes; parameters outside frontend and backbone count as head).
        lr: base learning rate (the head's).
        layer_decay: factor per stage going from the head towards the input; 1.0 gives every
            parameter ``lr``.
        weight_decay: weight decay of the parameters that get decay.
        no_decay: parameters without weight decay: name substrings (besides all 0-/1-d
            parameters: biases, norm scales) or a predicate ``(name, param) -> bool``.

    Returns:
        A list of dicts for ``torch.optim`` with keys ``params``, ``lr``, ``weight_decay`` and
        (ignored by optimizers, handy for logging and schedulers) ``name`` (``"head"``,
        ``"backbone.stage3"``, ``"frontend"``, with a ``".no_decay"`` suffix) and ``lr_scale``.
        Frozen parameters (``requires_grad=False``) and empty groups are left out; every other
        parameter is in exactly one group.

    Raises:
        ValueError: if a backbone parameter belongs to no stage or to two stages (a bug in the
            backbone's ``stages()``).
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    frontend: nn.Module = model.frontend  # type: ignore[assignment]
    backbone: nn.Module = model.backbone  # type: ignore[assignment]
    stages: list[nn.Module] = backbone.stages()  # type: ignore[operator]
    scales = stage_lr_scales(len(stages), layer_decay)
    names = ["frontend", *(f"backbone.stage{i}" for i in range(len(stages))), "head"]

    # Slot of every parameter: 0 frontend, 1 + i stage i, S + 1 head (and anything else).
    slot: dict[int, int] = {id(p): 0 for p in frontend.parameters()}
    for i, stage in enumerate(stages):
        for p in stage.parameters():
            if id(p) in slot and slot[id(p)] != i + 1:
                raise ValueError(f"a parameter of {type(backbone).__name__} is in two stages")
            slot[id(p)] = i + 1
    orphans = [n for n, p in backbone.named_parameters() if id(p) not in slot]
    if orphans:
        raise ValueError(
            f"{type(backbone).__name__}.stages() misses parameters {orphans[:8]}; every backbone "
            "parameter must belong to exactly one stage"
        )

    def decays(name: str, p: nn.Parameter) -> bool:
        if p.ndim <= 1:
            return False
        if callable(no_decay):
            return not no_decay(name, p)
        return not any(key in name for key in no_decay)

    buckets: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        k = slot.get(id(p), len(stages) + 1)
        buckets.setdefault((k, decays(name, p)), []).append(p)

    groups = []
    for (k, decay), params in sorted(buckets.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        groups.append(
            {
                "params": params,
                "lr": lr * scales[k],
                "weight_decay": weight_decay if decay else 0.0,
                "name": names[k] + ("" if decay else ".no_decay"),
                "lr_scale": scales[k],
            }
        )
    return groups


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[Any], *, max_batches: int | None = None
) -> int:
    """Recompute the running statistics of the trainable BatchNorm layers ("precise BN").

    The statistics become the plain average over ``batches`` of the per-batch mean and variance
    for the current weights, instead of an exponential average over past weights. BatchNorm
    layers that stay in eval mode under ``model.train()`` (frozen stages of an
    :class:`~audiozoo.AudioModel`) keep theirs. The model's mode and the layers' momentum are
    restored afterwards.

    Args:
        model: the model; called as ``model(inputs)``.
        batches: inputs, or ``(inputs, ...)`` tuples/lists whose first element is the input
            (a training DataLoader), on the model's device.
        max_batches: use at most this many batches.

    Returns:
        The number of batches used (0 leaves the statistics unchanged).
    """
    was_training = model.training
    model.train()
    layers = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    # track_running_stats is True for every layer here, so the statistics are tensors
    saved = [
        (
            m.momentum,
            cast(torch.Tensor, m.running_mean).clone(),
            cast(torch.Tensor, m.running_var).clone(),
            cast(torch.Tensor, m.num_batches_tracked).clone(),
        )
        for m in layers
    ]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    used = 0
    try:
        for batch in batches:
            if max_batches is not None and used >= max_batches:
                break
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
            used += 1
    finally:
        for m, (momentum, mean, var, count) in zip(layers, saved, strict=True):
            m.momentum = momentum
            if used == 0:
                m.running_mean.copy_(mean)  # type: ignore[union-attr]
                m.running_var.copy_(var)  # type: ignore[union-attr]
                m.num_batches_tracked.copy_(count)  # type: ignore[union-attr]
        model.train(was_training)
    return used
