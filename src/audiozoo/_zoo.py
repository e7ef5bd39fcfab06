"""The public, read-only view of the zoo: what is registered and what each tag is.

The CLI, the docs hooks, the benchmarks and the examples read the zoo through these functions
only (all re-exported by :mod:`audiozoo`); none of them imports a private module.
"""

from __future__ import annotations

import fnmatch

from ._errors import UnknownNameError
from ._registry import backbones, converters, frontends, heads
from .backbones.base import Architecture
from .converters.base import Converter
from .frontends.base import Frontend
from .heads.base import Head
from .labels import list_label_sets
from .names import parse_model_name
from .pretrained import PretrainedCfg

__all__ = [
    "get_architecture",
    "get_converter",
    "get_frontend_class",
    "get_head_class",
    "get_pretrained_cfg",
    "list_backbones",
    "list_frontends",
    "list_heads",
    "list_label_sets",
    "list_models",
]


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


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``: builder, weight table (``.weights``, tag →
    :class:`PretrainedCfg`), ``.default_tag``, ``.family`` and the small ``.test_kwargs``."""
    if name not in backbones:
        raise UnknownNameError(backbones.unknown_message(name).replace("backbone", "model", 1))
    arch: Architecture = backbones.get(name)
    return arch


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The read-only :class:`PretrainedCfg` of ``"arch.tag"`` (``"arch"``: its default tag, or
    its untagged configuration when it has no released weights).

    ``cfg.labels`` gives the class names (None when the tag has no label set), ``cfg.num_classes``
    the head's outputs, ``cfg.source``/``license``/``citation`` the provenance and ``cfg.frontend``
    the preprocessing.
    """
    parsed = parse_model_name(name)
    if parsed.is_format:
        raise UnknownNameError(
            f"{name!r} is a model in audiozoo format, not a registered tag; its configuration "
            f"is in its config.json (audiozoo.create({name!r}, pretrained=False).pretrained_cfg)"
        )
    assert parsed.arch is not None
    return get_architecture(parsed.arch).cfg(parsed.tag)


def get_frontend_class(name: str) -> type[Frontend]:
    """The registered frontend class ``name`` (``cls(**kwargs)`` builds it)."""
    cls: type[Frontend] = frontends.get(name)
    return cls


def get_head_class(name: str) -> type[Head]:
    """The registered head class ``name`` (``cls(num_features, num_classes, **kwargs)``)."""
    cls: type[Head] = heads.get(name)
    return cls


def get_converter(name: str) -> Converter:
    """The registered checkpoint converter ``name`` (``converter(checkpoint) -> state dict``)."""
    converter: Converter = converters.get(name)
    return converter
