"""The backbone contract: spectrogram (B, 1, F, T) -> :class:`Features`.

Also the :class:`Architecture` record that the backbone registry holds: a builder, its weight
table (``tag -> PretrainedCfg``) and the default configuration for untagged use.
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._errors import RegistryError, UnknownNameError
from .._registry import backbones
from ..pretrained import FrozenDict, PretrainedCfg

__all__ = ["Architecture", "Backbone", "Features", "register_backbone"]


@dataclass
class Features:
    """What a backbone returns and every head consumes.

    Attributes:
        grid: (B, C, F', T') feature map; time is the last axis, ``T'`` frames ``frame_hop`` apart.
        token: (B, C) summary embedding for transformers (mean of the summary tokens), else None.
    """

    grid: torch.Tensor
    token: torch.Tensor | None = None

    @property
    def num_features(self) -> int:
        return self.grid.shape[1]

    def pooled(self) -> torch.Tensor:
        """(B, C) clip embedding: the summary token if there is one, else the grid mean."""
        return self.token if self.token is not None else self.grid.mean(dim=(2, 3))

    def frames(self) -> torch.Tensor:
        """(B, T', C) frame embeddings: the grid averaged over frequency."""
        return self.grid.mean(dim=2).transpose(1, 2)


class Backbone(nn.Module, metaclass=abc.ABCMeta):
    """Base class of all backbones.

    Attributes:
        num_features: channels ``C`` of :attr:`Features.grid` (= embedding size).
        time_stride: spectrogram frames per output frame (``frame_hop = time_stride * hop``).
        max_frames: the longest spectrogram (in frames) the backbone accepts, or None if any
            length works. Longer audio is processed in windows by :class:`~audiozoo.AudioModel`.
        min_frames: the shortest spectrogram the backbone accepts without padding.
    """

    num_features: int
    time_stride: int
    max_frames: int | None = None
    min_frames: int = 1

    @abc.abstractmethod
    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T). Returns: :class:`Features`."""

    @abc.abstractmethod
    def num_output_frames(self, num_frames: int) -> int:
        """``T'`` for an input of ``num_frames`` spectrogram frames."""

    def stages(self) -> list[nn.Module]:
        """The backbone split into stages from input to output (for layer-wise learning rates
        and partial freezing). The default is one stage: the whole backbone."""
        return [self]


@dataclass
class Architecture:
    """A registered architecture: how to build it and which weights exist for it.

    Attributes:
        name: the architecture name (``"mn10"``).
        builder: ``builder(**backbone_kwargs) -> Backbone``.
        weights: tag -> :class:`PretrainedCfg`, in table order.
        default_tag: the tag ``create(name)`` loads; None when no weights are released.
        default_cfg: configuration (frontend, head) used when no tag applies.
        family: the model family this architecture belongs to ("EfficientAT MobileNetV3"), as
            the docs group it.
        test_kwargs: builder arguments of a small configuration of this architecture (same
            structure, fewer or narrower layers) that the registry-wide tests run.
    """

    name: str
    builder: Callable[..., Backbone]
    weights: Mapping[str, PretrainedCfg] = field(default_factory=dict)
    default_tag: str | None = None
    default_cfg: PretrainedCfg | None = None
    family: str = ""
    test_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weights = FrozenDict(self.weights)
        self.test_kwargs = FrozenDict(self.test_kwargs)

    def cfg(self, tag: str | None) -> PretrainedCfg:
        """The configuration for ``tag`` (or the default tag, or the untagged default)."""
        tag = tag or self.default_tag
        if tag:
            if tag not in self.weights:
                close = difflib.get_close_matches(tag, list(self.weights), n=5, cutoff=0.4)
                hint = (
                    f" Did you mean: {', '.join(f'{self.name}.{t}' for t in close)}?"
                    if close
                    else ""
                )
                raise UnknownNameError(
                    f"unknown tag {tag!r} for architecture {self.name!r}.{hint} "
                    f"See audiozoo.list_models('{self.name}.*', pretrained=True)."
                )
            return self.weights[tag]
        assert self.default_cfg is not None
        return self.default_cfg


def register_backbone(
    name: str,
    *,
    weights: Iterable[PretrainedCfg] = (),
    default_tag: str | None = None,
    default_cfg: PretrainedCfg | None = None,
    family: str = "",
    test_kwargs: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    """Register an architecture builder and its weight table.

    ``default_tag`` defaults to the first weight in ``weights``. ``default_cfg`` (frontend and head
    for untagged, randomly initialised use) defaults to that tag's config. ``family`` names the
    model family for the docs (default: the builder's module); ``test_kwargs`` is the small configuration the registry-wide tests
    build (empty: the full architecture is small enough).
    """
    table: dict[str, PretrainedCfg] = {}
    for cfg in weights:
        if cfg.arch != name:
            raise RegistryError(f"weight {cfg.name!r} listed under architecture {name!r}")
        if cfg.tag in table:
            raise RegistryError(f"duplicate tag {cfg.name!r}")
        table[cfg.tag] = cfg
    if default_tag is None and table:
        default_tag = next(iter(table))
    if default_cfg is None:
        if default_tag is None:
            raise RegistryError(f"architecture {name!r} needs weights or a default_cfg")
        default_cfg = table[default_tag]

    def wrap(builder: Callable[..., Backbone]) -> Callable[..., Backbone]:
        title = family or builder.__module__
        arch = Architecture(
            name, builder, table, default_tag, default_cfg, title, dict(test_kwargs or {})
        )
        backbones.register(name, arch)
        return builder

    return wrap
