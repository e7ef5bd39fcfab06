"""``create()``: name → frontend + backbone + head → weights → freezing, in one place."""

from __future__ import annotations

import fnmatch
import os
from typing import Any

import torch
from torch import nn

from ._errors import CheckpointError, PretrainedUnavailableError, RegistryError, UnknownNameError
from ._registry import backbones, frontends, heads
from .backbones.base import Architecture
from .frontends.base import Frontend
from .heads.base import Head
from .model import AudioModel
from .pretrained import PretrainedCfg

__all__ = [
    "create",
    "list_backbones",
    "list_frontends",
    "list_heads",
    "list_models",
    "split_model_name",
]

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
StateDict = dict[str, torch.Tensor]


def split_model_name(name: str) -> tuple[str, str | None]:
    """``"mn10.as_hop_5"`` → ``("mn10", "as_hop_5")``; ``"mn10"`` → ``("mn10", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered architectures, or with ``pretrained=True`` every ``arch.tag`` with weights.

    ``pattern`` is an fnmatch pattern matched against both the architecture and ``arch.tag``:
    ``list_models("mn*")`` lists architectures, ``list_models("mn10*", pretrained=True)`` lists
    ``['mn10.as', 'mn10.as_fc', ...]``.
    """
    out: list[str] = []
    for arch_name in backbones.names():
        arch: Architecture = backbones.get(arch_name)
        if pretrained:
            for tag, cfg in arch.weights.items():
                full = f"{arch_name}.{tag}"
                if cfg.has_weights and (
                    fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(arch_name, pattern)
                ):
                    out.append(full)
        elif fnmatch.fnmatchcase(arch_name, pattern):
            out.append(arch_name)
    return out


def list_frontends(pattern: str | None = None) -> list[str]:
    """Registered frontend names."""
    return frontends.names(pattern)


def list_backbones(pattern: str | None = None) -> list[str]:
    """Registered architecture (backbone) names; same as ``list_models(pattern)``."""
    return backbones.names(pattern)


def list_heads(pattern: str | None = None) -> list[str]:
    """Registered head names."""
    return heads.names(pattern)


def create(
    name: str,
    *,
    pretrained: bool | str | os.PathLike[str] = True,
    head: str | nn.Module | None = None,
    num_classes: int | None = None,
    freeze: bool | int = False,
    frontend: str | dict[str, Any] | Frontend | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **backbone_kwargs: Any,
) -> AudioModel:
    """Build a model by name.

    Args:
        name: ``"arch"``, ``"arch.tag"``, ``"hf-hub:org/repo[@revision]"`` or ``"local-dir:PATH"``.
        pretrained: ``True`` loads the tag's weights (downloaded and cached), ``False`` leaves
            a random init and never touches the network, a path or URL loads that checkpoint
            (audiozoo format or the tag's upstream format).
        head: None keeps the checkpoint's own head; a registered head name or an ``nn.Module``
            (called with :class:`~audiozoo.backbones.Features`) replaces it.
        num_classes: outputs of a replaced head (required with ``head=``).
        freeze: ``True`` freezes frontend and backbone, an int the first N backbone stages.
        frontend: override the checkpoint's frontend: a dict of changed arguments (e.g.
            ``{"freqm": 48, "augment": True}``), a registered name, or a Frontend instance.
        cache_dir: where downloaded and converted weights are cached (default: ``AUDIOZOO_CACHE``
            or ``~/.cache/audiozoo``).
        **backbone_kwargs: architecture arguments (e.g. ``s_patchout_t=0`` for PaSST).

    Returns:
        The :class:`~audiozoo.AudioModel`, in eval mode.
    """
    if name.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)):
        from ._hub import load_audiozoo_model

        model = load_audiozoo_model(
            name,
            pretrained=pretrained,
            head=head,
            num_classes=num_classes,
            cache_dir=cache_dir,
            frontend=frontend,
            **backbone_kwargs,
        )
        return _finish(model, freeze)

    arch_name, tag = split_model_name(name)
    if arch_name not in backbones:
        raise UnknownNameError(backbones.unknown_message(arch_name).replace("backbone", "model", 1))
    arch: Architecture = backbones.get(arch_name)
    cfg = arch.cfg(tag)

    kwargs = {**cfg.backbone_kwargs, **backbone_kwargs}
    model, head_replaced = build_model(arch, cfg, kwargs, frontend, head, num_classes)

    if pretrained is not False:
        from ._hub import load_labels, load_pretrained_state_dict, read_checkpoint

        if pretrained is True:
            if not cfg.has_weights:
                what = (
                    f"{cfg.name!r} has no released weights"
                    if cfg.tag
                    else (f"architecture {arch_name!r} has no released weights")
                )
                raise PretrainedUnavailableError(
                    f"{what}; pass pretrained=False for a random init, or pretrained=PATH "
                    f"for your own checkpoint. Weights: audiozoo.list_models('{arch_name}*', "
                    "pretrained=True)"
                )
            state_dict = load_pretrained_state_dict(cfg, cache_dir=cache_dir)
        else:
            state_dict = read_checkpoint(pretrained, converter=cfg.converter, cache_dir=cache_dir)
        load_weights(model, state_dict, cfg=cfg, head_replaced=head_replaced)
        if not head_replaced and cfg.labels:
            model.labels = load_labels(cfg.labels, cache_dir=cache_dir, num_classes=cfg.num_classes)
    return _finish(model, freeze)


def _finish(model: AudioModel, freeze: bool | int) -> AudioModel:
    if freeze is not False and freeze != 0:
        model.freeze(freeze)
    return model.eval()


def build_model(
    arch: Architecture,
    cfg: PretrainedCfg,
    backbone_kwargs: dict[str, Any],
    frontend: str | dict[str, Any] | Frontend | None,
    head: str | nn.Module | None,
    num_classes: int | None,
    labels: list[str] | None = None,
) -> tuple[AudioModel, bool]:
    """Frontend + backbone + head for ``cfg``, with random weights. Returns (model, head_replaced);
    ``labels`` are kept only when the head is the configured one."""
    fe = build_frontend(cfg.frontend, frontend)
    try:
        backbone = arch.builder(**backbone_kwargs)
    except TypeError as exc:
        raise RegistryError(f"invalid arguments for architecture {arch.name!r}: {exc}") from None
    head_module, replaced = build_head(cfg, head, num_classes, backbone.num_features)
    model = AudioModel(
        fe,
        backbone,
        head_module,
        pretrained_cfg=cfg,
        backbone_kwargs=backbone_kwargs,
        labels=None if replaced else labels,
    )
    return model, replaced


def build_frontend(
    cfg: dict[str, Any], override: str | dict[str, Any] | Frontend | None = None
) -> Frontend:
    """Frontend from a ``{"name": ..., **kwargs}`` config, with an optional override."""
    if isinstance(override, Frontend):
        return override
    if isinstance(override, str):
        cfg = {"name": override}
    elif isinstance(override, dict):
        cfg = {**cfg, **override}
    elif override is not None:
        raise TypeError(
            f"frontend= must be a dict of arguments, a registered name or a Frontend, "
            f"got {type(override).__name__}"
        )
    kwargs = dict(cfg)
    try:
        name = kwargs.pop("name")
    except KeyError:
        raise RegistryError(f"frontend config without a 'name': {cfg}") from None
    cls = frontends.get(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RegistryError(f"invalid arguments for frontend {name!r}: {exc}") from None


def build_head(
    cfg: PretrainedCfg, head: str | nn.Module | None, num_classes: int | None, num_features: int
) -> tuple[nn.Module, bool]:
    """The head for ``create``: the checkpoint's own, or a replacement. Returns (head, replaced)."""
    if head is None:
        if num_classes is not None and num_classes != cfg.num_classes:
            raise RegistryError(
                f"num_classes={num_classes} differs from the {cfg.num_classes} classes of "
                f"{cfg.name!r}'s own head; to train a new head pass head= as well, e.g. "
                f"create({cfg.name!r}, head='linear', num_classes={num_classes})"
            )
        if not cfg.head:
            raise RegistryError(
                f"{cfg.name!r} has no head of its own; pass head= (one of "
                f"{', '.join(heads.names())}) and num_classes="
            )
        return head_from_config(cfg.head, num_features), False
    if isinstance(head, nn.Module):
        return head, True
    if not isinstance(head, str):
        raise TypeError(f"head= must be a registered name or an nn.Module, got {type(head)}")
    cls: type[Head] = heads.get(head)
    if cls.needs_num_classes and num_classes is None:
        raise RegistryError(
            f"head={head!r} needs num_classes=: the number of outputs of the new head"
        )
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise RegistryError(f"num_classes must be a positive integer, got {num_classes!r}")
    return cls(num_features, num_classes) if cls.needs_num_classes else cls(num_features), True


def head_from_config(cfg: dict[str, Any], num_features: int) -> Head:
    kwargs = dict(cfg)
    name = kwargs.pop("name")
    cls: type[Head] = heads.get(name)
    try:
        return cls(num_features, **kwargs)
    except TypeError as exc:
        raise RegistryError(f"invalid arguments for head {name!r}: {exc}") from None


def load_weights(
    model: AudioModel, state_dict: StateDict, *, cfg: PretrainedCfg, head_replaced: bool
) -> None:
    """Strictly load native-key weights. With a replaced head, exactly the checkpoint head's keys
    may go unused and exactly the new head's keys may stay unloaded; anything else raises."""
    expected = model.state_dict()
    if head_replaced:
        ckpt_head = {k for k in state_dict if k.startswith("head.")}
        with torch.device("meta"):
            own_head = (
                {f"head.{k}" for k in head_from_config(cfg.head, model.num_features).state_dict()}
                if cfg.head
                else set()
            )
        if ckpt_head != own_head:
            raise CheckpointError(
                f"the checkpoint's head does not match {cfg.name!r}'s head: unexpected "
                f"{sorted(ckpt_head - own_head)}, missing {sorted(own_head - ckpt_head)}"
            )
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
        expected = {k: v for k, v in expected.items() if not k.startswith("head.")}
    problems = key_mismatches({k: v.shape for k, v in expected.items()}, state_dict)
    if problems:
        raise CheckpointError(
            f"checkpoint does not fit {cfg.name!r} (is it a checkpoint of another architecture "
            f"or tag?); {problems}"
        )
    model.load_state_dict(state_dict, strict=False)


def key_mismatches(expected: dict[str, torch.Size], state_dict: StateDict) -> str:
    """Missing, unexpected and wrong-shape keys of ``state_dict`` against ``expected`` shapes,
    as one line for an error message; "" when it fits exactly."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k])}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k])
    )
    return "; ".join(
        f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        )
        if keys
    )
