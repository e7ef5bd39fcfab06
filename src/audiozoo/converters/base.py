"""Declarative checkpoint conversion: ordered regex rules from upstream keys to audiozoo keys.

A converter is a list of :class:`Rule`. Each upstream key is matched against the rules in order;
the first match wins. A rule either renames (``re.sub`` with its replacement), drops the key on
purpose (``replacement=None``), or splits/merges tensors through an optional ``transform``.
A key that no rule matches is an error, so a silent mismatch cannot happen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

from .._errors import CheckpointError
from .._registry import converters

__all__ = ["BN_PARAMS", "VIT_BLOCK", "Converter", "Rule", "fuse_qkv", "register_converter"]

StateDict = dict[str, torch.Tensor]

# Rule building blocks for the layouts several formats share:
#: the parameters and statistics of a BatchNorm (captured as group 1)
BN_PARAMS = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
#: a parameter of timm's pre-norm ViT block ``blocks.N`` (:class:`~audiozoo.backbones.layers.Block`)
VIT_BLOCK = r"blocks\.\d+\.(?:norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(?:weight|bias)"


@dataclass(frozen=True)
class Rule:
    """One key-mapping rule.

    Attributes:
        pattern: regular expression matched against the whole upstream key (``re.fullmatch``).
        replacement: ``re`` replacement template giving the audiozoo key; None drops the key.
        transform: optional ``(key, tensor) -> {new_key: tensor}`` for keys that split or reshape;
            it receives the renamed key (or the upstream key when ``replacement`` is None).
    """

    pattern: str
    replacement: str | None
    transform: Callable[[str, torch.Tensor], StateDict] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    def apply(self, key: str, value: torch.Tensor) -> StateDict | None:
        """None if the rule does not match; ``{}`` if it drops the key; else the new entries."""
        m = self._regex.fullmatch(key)  # type: ignore[attr-defined]
        if m is None:
            return None
        if self.replacement is None and self.transform is None:
            return {}
        new_key = m.expand(self.replacement) if self.replacement is not None else key
        if self.transform is not None:
            return self.transform(new_key, value)
        return {new_key: value}


@dataclass(frozen=True)
class Converter:
    """An ordered list of rules plus an optional detector for its checkpoint format.

    Attributes:
        name: registered name (used in :class:`~audiozoo.PretrainedCfg`).
        rules: the rules, tried in order.
        unwrap: keys under which upstream files nest their state dict (``"model"``, ...).
        prepare: optional step on the whole unwrapped state dict before the rules, for what no
            single-key rule can do (folding weight norm, tensors saved once per layer, ...).
    """

    name: str
    rules: tuple[Rule, ...]
    unwrap: tuple[str, ...] = ("state_dict", "model")
    prepare: Callable[[StateDict], StateDict] | None = None

    def __call__(self, checkpoint: Mapping[str, object]) -> StateDict:
        """Convert an upstream checkpoint (a state dict, possibly nested) to audiozoo keys."""
        sd = _unwrap(checkpoint, self.unwrap)
        if self.prepare is not None:
            sd = self.prepare(sd)
        out: StateDict = {}
        unknown: list[str] = []
        for key, value in sd.items():
            for rule in self.rules:
                new = rule.apply(key, value)
                if new is not None:
                    for k, v in new.items():
                        if k in out:
                            raise CheckpointError(f"{self.name}: two upstream keys map to {k!r}")
                        out[k] = v
                    break
            else:
                unknown.append(key)
        if unknown:
            raise CheckpointError(
                f"{self.name}: {len(unknown)} checkpoint key(s) match no conversion rule, so this "
                f"is not a checkpoint in the format this converter reads: "
                f"{', '.join(sorted(unknown)[:10])}{' ...' if len(unknown) > 10 else ''}"
            )
        return out


def _unwrap(checkpoint: Mapping[str, object], wrappers: Iterable[str]) -> StateDict:
    for w in wrappers:
        inner = checkpoint.get(w)
        if isinstance(inner, Mapping) and not isinstance(inner, torch.Tensor):
            return _unwrap(inner, wrappers)
    bad = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint entries that are not tensors: {', '.join(map(str, bad[:5]))}; "
            "expected a state dict"
        )
    return dict(checkpoint)  # type: ignore[arg-type]


def fuse_qkv(name: str, parts: Mapping[str, Mapping[str, torch.Tensor]]) -> StateDict:
    """Fused attention projections: each key's ``q``, ``k`` and ``v`` tensors concatenated along
    dim 0 (rows ``q | k | v``, the layout of audiozoo's ``qkv``). A key with only some of the
    three parts is an error naming converter ``name``."""
    out: StateDict = {}
    for key, qkv in parts.items():
        if set(qkv) != {"q", "k", "v"}:
            raise CheckpointError(
                f"{name}: {key} needs query, key and value; the checkpoint has only "
                f"{', '.join(sorted(qkv))}"
            )
        out[key] = torch.cat((qkv["q"], qkv["k"], qkv["v"]), dim=0)
    return out


def register_converter(converter: Converter) -> Converter:
    """Register ``converter`` under ``converter.name``."""
    return converters.register(converter.name, converter)


# Audiozoo's own keys need no conversion.
NATIVE = register_converter(Converter("native", (Rule(r"(.*)", r"\1"),)))
