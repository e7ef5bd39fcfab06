"""``create()``: the one build path.

Every way of naming weights resolves first to a :class:`PretrainedCfg` plus where its weights are
(:func:`resolve`); then :func:`create` builds frontend, backbone and head, loads the weights
strictly and freezes, in that order and only here::

    name ──parse_model_name──▶ ModelName ──resolve──▶ Resolved(cfg, weights) ──create──▶ AudioModel
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from . import format as audiozoo_format
from ._budget import AllocationBudget
from ._errors import AudiozooError, CheckpointError, PretrainedUnavailableError, RegistryError
from ._freeze import check_freeze
from ._preflight import Shapes, backbone_budget, check_part, format_weights
from ._registry import heads
from ._zoo import get_architecture, get_frontend_class
from .backbones.base import Backbone
from .checkpoints import key_mismatches, load_pretrained_state_dict, read_checkpoint
from .frontends.base import Frontend
from .heads.base import Head
from .model import AudioModel
from .names import ModelName, parse_model_name
from .pretrained import PretrainedCfg

__all__ = ["Resolved", "build_frontend", "create", "resolve"]

StateDict = dict[str, torch.Tensor]
Pretrained = bool | str | os.PathLike[str]
T = TypeVar("T")


@dataclass(frozen=True)
class Resolved:
    """A model name resolved to what to build and where its weights are.

    Attributes:
        name: the parsed name.
        cfg: what to build (frontend, backbone arguments, head) and its provenance.
        weights: ``"release"`` (the tag's published file, converted once and cached),
            ``"checkpoint"`` (the file or URL in :attr:`checkpoint`), ``"format"`` (the
            ``model.safetensors`` of an audiozoo-format model), or None (random init).
        checkpoint: path or URL of a user-given checkpoint.
        labels: class names of the configured head, when known.
    """

    name: ModelName
    cfg: PretrainedCfg
    weights: Literal["release", "checkpoint", "format"] | None
    checkpoint: str | None = None
    labels: tuple[str, ...] | None = None


def _check_pretrained(pretrained: Any) -> None:
    if isinstance(pretrained, bool):
        return
    if isinstance(pretrained, (str, os.PathLike)) and os.fspath(pretrained):
        return
    raise RegistryError(
        f"pretrained= must be True (the tag's weights), False (random init) or a checkpoint "
        f"path or URL, got {pretrained!r}"
    )


def _check_arguments(head: Any, num_classes: Any, frontend: Any, cache_dir: Any) -> None:
    """create()'s arguments, checked before anything is read or built."""
    if head is not None and not isinstance(head, (str, nn.Module)):
        raise RegistryError(f"head= must be a registered name or an nn.Module, got {head!r}")
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise RegistryError(f"num_classes must be a positive integer, got {num_classes!r}")
    if frontend is not None and not isinstance(frontend, (str, dict, Frontend)):
        raise RegistryError(
            f"frontend= must be a dict of arguments, a registered name or a Frontend, "
            f"got {type(frontend).__name__}"
        )
    if isinstance(frontend, dict) and not all(isinstance(k, str) for k in frontend):
        raise RegistryError(f"frontend= argument names must be strings, got {list(frontend)}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise RegistryError(f"cache_dir= must be a folder path, got {cache_dir!r}")


def resolve(
    name: str, *, pretrained: Pretrained = True, cache_dir: str | os.PathLike[str] | None = None
) -> Resolved:
    """Resolve any model name (see :mod:`audiozoo.names`) and ``pretrained=`` to a
    :class:`Resolved`. Reads ``config.json`` for ``hf-hub:``/``local-dir:`` names; downloads no
    weights."""
    _check_pretrained(pretrained)
    parsed = parse_model_name(name)
    if parsed.is_format:
        cfg, saved_labels = audiozoo_format.resolve_config(parsed, cache_dir)
        labels = tuple(saved_labels) if saved_labels is not None else None
    else:
        assert parsed.arch is not None
        cfg = get_architecture(parsed.arch).cfg(parsed.tag)
        labels = cfg.labels
    if pretrained is False:
        return Resolved(parsed, cfg, None, labels=labels)
    if pretrained is not True:
        return Resolved(parsed, cfg, "checkpoint", os.fspath(pretrained), labels=labels)
    if parsed.is_format:
        return Resolved(parsed, cfg, "format", labels=labels)
    if not cfg.has_weights:
        what = (
            f"{cfg.name!r} has no released weights"
            if cfg.tag
            else f"architecture {cfg.arch!r} has no released weights"
        )
        raise PretrainedUnavailableError(
            f"{what}; pass pretrained=False for a random init, or pretrained=PATH for your own "
            f"checkpoint. Weights: audiozoo.list_models('{cfg.arch}*', pretrained=True)"
        )
    return Resolved(parsed, cfg, "release", labels=labels)


def create(
    name: str,
    *,
    pretrained: Pretrained = True,
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
        freeze: ``True`` freezes frontend and backbone, an int the frontend and the first N
            backbone stages (see :meth:`~audiozoo.AudioModel.freeze`); anything else raises.
        frontend: override the checkpoint's frontend: a dict of changed arguments (e.g.
            ``{"freqm": 48, "augment": True}``), a registered name, or a Frontend instance.
        cache_dir: where downloaded and converted weights are cached (default: ``AUDIOZOO_CACHE``
            or ``~/.cache/audiozoo``).
        **backbone_kwargs: architecture arguments (e.g. ``s_patchout_t=0`` for PaSST).

    Returns:
        The :class:`~audiozoo.AudioModel`, in eval mode.
    """
    _check_arguments(head, num_classes, frontend, cache_dir)
    check_freeze(freeze)  # its type; the range is checked against the backbone's stages
    resolved = resolve(name, pretrained=pretrained, cache_dir=cache_dir)
    cfg = resolved.cfg
    kwargs = {**cfg.backbone_kwargs, **backbone_kwargs}
    state_dict: StateDict | None = None
    shapes: Shapes | None = None
    source = None
    if resolved.name.is_format:  # config.json can come from anyone: see audiozoo._preflight
        source = f"{resolved.name} config.json"
        state_dict, shapes = format_weights(
            resolved.name, resolved.weights, resolved.checkpoint, cfg.converter, cache_dir
        )
    exact = resolved.weights is not None  # weights that will be loaded must fit exactly
    fe = build_frontend(cfg.frontend, frontend, source=source)
    # with pretrained=False, backbone arguments of the caller are what the caller asked for
    budget = backbone_budget(shapes, resolved.name) if exact or not backbone_kwargs else None
    backbone = _build_backbone(cfg.arch, kwargs, source, budget)
    if shapes is not None:
        if exact:
            what = f"backbone_kwargs {kwargs}"
            check_part("backbone.", backbone.state_dict(), shapes, resolved.name, what, exact=True)
        with torch.device("meta"):  # no memory: only the shapes are compared
            own = _head_from_config(cfg.head_config(), backbone.num_features, source)
        if not (getattr(own, "needs_layers", False) and getattr(own, "layer_dims", 0) is None):
            what = f"the head {dict(cfg.head)}"
            check_part("head.", own.state_dict(), shapes, resolved.name, what, exact=exact)
    head_module, replaced = _build_head(cfg, head, num_classes, backbone.num_features, source)
    labels = None if replaced or resolved.labels is None else list(resolved.labels)
    outputs = getattr(head_module, "num_classes", None)
    if labels is not None and outputs is not None and len(labels) != outputs:
        raise RegistryError(
            f"{cfg.name!r} has {len(labels)} labels for a head of {outputs} classes; a label set "
            "must name every class, in output order"
        )
    model = AudioModel(
        fe, backbone, head_module, pretrained_cfg=cfg, backbone_kwargs=kwargs, labels=labels
    )
    if resolved.weights is not None:
        if state_dict is None:
            state_dict = _read_weights(resolved, model, replaced, cache_dir)
        source = resolved.checkpoint or str(resolved.name)
        _load_weights(model, state_dict, cfg=cfg, head_replaced=replaced, source=source)
    if freeze is not False and freeze != 0:
        model.freeze(freeze)
    return model.eval()


# ---------------------------------------------------------------------------------- parts
def _invalid(kind: str, name: str, source: str | None, exc: BaseException) -> RegistryError:
    where = f" (from {source})" if source else ""
    text = str(exc)
    for prefix in (f"{name}: ", f"{kind} {name!r}: "):  # the constructors' checks name the part
        text = text.removeprefix(prefix)
    return RegistryError(f"invalid arguments for {kind} {name!r}{where}: {text}")


# What a constructor raises for arguments it cannot build from (the argument checks' RegistryError,
# torch's errors for negative sizes or failed allocations).
_BUILD_ERRORS = (TypeError, ValueError, RuntimeError, OverflowError, MemoryError)


def _construct(kind: str, name: str, source: str | None, build: Callable[[], T]) -> T:
    """``build()``, with a failure for bad arguments as one RegistryError naming the part."""
    try:
        return build()
    except _BUILD_ERRORS as exc:
        if isinstance(exc, AudiozooError) and not isinstance(exc, RegistryError):
            raise  # the allocation budget's CheckpointError, an InvalidAudioError, ...
        raise _invalid(kind, name, source, exc) from None


def build_frontend(
    cfg: Any,
    override: str | dict[str, Any] | Frontend | None = None,
    *,
    source: str | None = None,
) -> Frontend:
    """Frontend from a ``{"name": ..., **kwargs}`` config, with an optional override; ``source``
    names where the config came from in error messages."""
    if isinstance(override, Frontend):
        return override
    if isinstance(override, str):
        cfg = {"name": override}
    elif isinstance(override, dict):
        cfg = {**cfg, **override}
    elif override is not None:
        raise RegistryError(
            f"frontend= must be a dict of arguments, a registered name or a Frontend, "
            f"got {type(override).__name__}"
        )
    kwargs = dict(cfg)
    try:
        name = kwargs.pop("name")
    except KeyError:
        raise RegistryError(f"frontend config without a 'name': {dict(cfg)}") from None
    cls = get_frontend_class(name)
    return _construct("frontend", name, source, lambda: cls(**kwargs))


def _build_backbone(
    arch: str, kwargs: dict[str, Any], source: str | None, budget: AllocationBudget | None
) -> Backbone:
    builder = get_architecture(arch).builder

    def build() -> Backbone:
        with budget if budget is not None else contextlib.nullcontext():
            return builder(**kwargs)

    return _construct("architecture", arch, source, build)


def _build_head(
    cfg: PretrainedCfg,
    head: str | nn.Module | None,
    num_classes: int | None,
    num_features: int,
    source: str | None = None,
) -> tuple[nn.Module, bool]:
    """The checkpoint's own head, or a replacement. Returns (head, replaced)."""
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
        return _head_from_config(cfg.head_config(), num_features, source), False
    if isinstance(head, nn.Module):
        return head, True
    cls: type[Head] = heads.get(head)
    if cls.needs_num_classes and num_classes is None:
        raise RegistryError(
            f"head={head!r} needs num_classes=: the number of outputs of the new head"
        )
    args = (num_features, num_classes) if cls.needs_num_classes else (num_features,)
    return _construct("head", head, None, lambda: cls(*args)), True


def _head_from_config(cfg: dict[str, Any], num_features: int, source: str | None = None) -> Head:
    kwargs = dict(cfg)
    name = kwargs.pop("name")
    cls: type[Head] = heads.get(name)
    return _construct("head", name, source, lambda: cls(num_features, **kwargs))


# ---------------------------------------------------------------------------------- weights
def _own_shapes(model: AudioModel, cfg: PretrainedCfg, head_replaced: bool) -> dict[str, Any]:
    """Native key → tensor (shape and dtype) of ``model`` with the checkpoint's own head (built
    on the meta device when the model's head was replaced: no memory, no computation)."""
    shapes = dict(model.state_dict())
    if not head_replaced:
        return shapes
    shapes = {k: v for k, v in shapes.items() if not k.startswith("head.")}
    if cfg.head:
        with torch.device("meta"):
            own = _head_from_config(cfg.head_config(), model.num_features)
        shapes.update({f"head.{k}": v for k, v in own.state_dict().items()})
    return shapes


def _read_weights(
    resolved: Resolved,
    model: AudioModel,
    head_replaced: bool,
    cache_dir: str | os.PathLike[str] | None,
) -> StateDict:
    cfg = resolved.cfg
    if resolved.weights == "release":
        expected = _own_shapes(model, cfg, head_replaced)
        return load_pretrained_state_dict(cfg, expected, cache_dir=cache_dir)
    if resolved.weights == "format":  # fetched (and its header checked) before the build
        return audiozoo_format.read_weights(resolved.name, cache_dir)
    assert resolved.checkpoint is not None
    return read_checkpoint(resolved.checkpoint, converter=cfg.converter, cache_dir=cache_dir)


def _load_weights(
    model: AudioModel,
    state_dict: StateDict,
    *,
    cfg: PretrainedCfg,
    head_replaced: bool,
    source: str = "checkpoint",
) -> None:
    """Strictly load native-key weights (``source``: the file or name, for messages). With a
    replaced head, exactly the checkpoint head's keys may go unused and exactly the new head's
    keys may stay unloaded; anything else raises."""
    expected = dict(model.state_dict())
    if head_replaced:
        ckpt_head = {k for k in state_dict if k.startswith("head.")}
        own_head = {k for k in _own_shapes(model, cfg, True) if k.startswith("head.")}
        if ckpt_head != own_head:
            raise CheckpointError(
                f"the head of {source} does not match {cfg.name!r}'s head: unexpected "
                f"{sorted(ckpt_head - own_head)}, missing {sorted(own_head - ckpt_head)}"
            )
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
        expected = {k: v for k, v in expected.items() if not k.startswith("head.")}
    problems = key_mismatches(expected, state_dict)
    if problems:
        raise CheckpointError(
            f"{source} does not fit {cfg.name!r} (is it a checkpoint of another architecture "
            f"or tag?); {problems}"
        )
    model.load_state_dict(state_dict, strict=False)
