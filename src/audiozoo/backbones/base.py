"""The backbone contract: spectrogram (B, 1, F, T) -> :class:`Features`.

Also the :class:`Architecture` record that the backbone registry holds: a builder, its weight
table (``tag -> PretrainedCfg``) and the default configuration for untagged use.
"""

from __future__ import annotations

import abc
import contextlib
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._errors import InvalidAudioError, RegistryError, UnknownNameError
from .._registry import backbones
from ..pretrained import FrozenDict, PretrainedCfg

__all__ = ["Architecture", "Backbone", "Features", "check_spectrogram", "register_backbone"]


@dataclass
class Features:
    """What a backbone returns and every head consumes.

    Attributes:
        grid: (B, C, F', T') feature map; time is the last axis, ``T'`` frames ``frame_hop`` apart.
        token: (B, C) summary embedding for transformers (mean of the summary tokens), else None.
        chunk_tokens: (B, K, C) summary embeddings of the K chunks a backbone ran on their own
            for a long input (CED), ``token`` being their mean; None otherwise. Clip heads that
            reproduce an upstream per-chunk average use them (``LinearHead(chunk_average=...)``).
        layers: features of intermediate layers, name -> :class:`Features` (same batch rows),
            filled by :class:`~audiozoo.AudioModel` only when they were asked for (heads with
            ``needs_layers``, ``embed(layers=...)``); None otherwise.
    """

    grid: torch.Tensor
    token: torch.Tensor | None = None
    chunk_tokens: torch.Tensor | None = None
    layers: dict[str, Features] | None = None

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
    #: True when :meth:`forward_lengths` runs a padded batch of spectrograms of different
    #: lengths exactly as each one alone (attention masks, or padding that cannot leak).
    supports_lengths: bool = False

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

    # ------------------------------------------------------------------ variable lengths
    def forward_lengths(self, spec: torch.Tensor, lengths: torch.Tensor) -> Features | None:
        """Features of spectrograms of different lengths, padded at the end to one batch.

        Args:
            spec: (B, 1, F, T) where clip ``i`` has ``lengths[i]`` real frames; the frames after
                them hold anything (they must not change the result).
            lengths: (B,) int64, real frames per clip, ``1 <= lengths[i] <= T``.

        Returns:
            Features with grid (B, C, F', num_output_frames(T)) whose first
            ``num_output_frames(lengths[i])`` frames of row ``i``, and whose token, equal (within
            float tolerance) ``forward(spec[i:i+1, ..., :lengths[i]])``; or None when this
            backbone cannot do it for this input (the default): :class:`~audiozoo.AudioModel`
            then runs clips of equal length together instead. Families that override it set
            :attr:`supports_lengths`.
        """
        return None

    # ------------------------------------------------------------------ layers
    def layer_names(self) -> list[str]:
        """Names of the layers ``AudioModel.embed(layers=...)`` offers: one per stage of
        :meth:`stages`, named after the stage's attribute path (``"blocks.3"``), a slice of a
        Sequential by its first and last index (``"features.2-3"``), and a stage without a
        forward of its own (the patch embedding of transformers) ``"embed"``."""
        modules = {id(m): name for name, m in self.named_modules() if name}
        names = []
        for i, stage in enumerate(self.stages()):
            if id(stage) in modules:
                names.append(modules[id(stage)])
            elif isinstance(stage, nn.Sequential) and len(stage) and id(stage[0]) in modules:
                first, last = modules[id(stage[0])], modules.get(id(stage[-1]), "")
                tail = last.rsplit(".", 1)[-1]
                names.append(first if len(stage) == 1 else f"{first}-{tail}")
            elif _has_no_forward(stage):
                names.append("embed" if i == 0 else f"stage{i}")
            else:
                names.append(f"stage{i}")
        return names

    def layer_time_strides(self) -> list[int]:
        """Spectrogram frames per frame of each layer's output (one entry per stage). The default,
        :attr:`time_stride` for every layer, is right for transformers, whose layers are all the
        same token sequence; families whose stages downsample in time (CNNs) override it."""
        return [self.time_stride] * len(self.stages())

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """Turn what stage ``index`` produced during a forward into :class:`Features`.

        Args:
            index: the stage (never the last one: its features are the backbone's output).
            hidden: what was captured, in call order (usually one entry): the stage's output,
                or for a stage without a forward of its own the input of the next stage.
            spec: the (B, 1, F, T) spectrogram the backbone was called with.

        The default takes a single (B, C, F', T') tensor as the grid (CNN stages), and a single
        (B, N, C) token sequence as a one-row grid (B, C, 1, N): its clip embedding is then the
        mean over all tokens, but its "frames" are tokens, so frame outputs of such a layer
        raise until the family overrides this hook to split its tokens into summary token and
        (B, C, F', T') grid (as PaSST and AST do).
        """
        if len(hidden) == 1 and isinstance(hidden[0], torch.Tensor):
            h = hidden[0]
            if h.ndim == 4:
                return Features(grid=h)
            if h.ndim == 3 and h.shape[0] == spec.shape[0]:
                return Features(grid=h.transpose(1, 2)[:, :, None, :])
        kinds = [tuple(h.shape) if isinstance(h, torch.Tensor) else type(h) for h in hidden]
        raise NotImplementedError(
            f"{type(self).__name__}.layer_features must turn the output of stage {index} "
            f"({kinds}) into Features; see docs/guides/adding-a-family.md"
        )

    @contextlib.contextmanager
    def record_layers(self, indices: Iterable[int]) -> Iterator[dict[int, list[Any]]]:
        """Capture the outputs of the stages ``indices`` (not the last) during forwards run
        inside the ``with`` block: forward hooks on each stage (on the last module of a
        Sequential slice), or a pre-hook on the next stage for a stage without a forward."""
        stages = self.stages()
        captured: dict[int, list[Any]] = {}
        handles = []
        try:
            for i in sorted(set(indices)):
                if not 0 <= i < len(stages) - 1:
                    raise IndexError(f"stage {i} has no hidden output to record")
                store = captured.setdefault(i, [])
                stage = stages[i]
                if _has_no_forward(stage):
                    nxt = _first_module(stages[i + 1])
                    handles.append(
                        nxt.register_forward_pre_hook(
                            lambda _m, args, store=store: store.append(args[0])
                        )
                    )
                else:
                    last = _last_module(stage)
                    handles.append(
                        last.register_forward_hook(
                            lambda _m, _args, out, store=store: store.append(out)
                        )
                    )
            yield captured
        finally:
            for h in handles:
                h.remove()


def check_spectrogram(
    spec: torch.Tensor, name: str, num_bins: int | None = None, what: str = "a spectrogram"
) -> None:
    """Raise :class:`~audiozoo.InvalidAudioError` unless ``spec`` is (B, 1, F, T), with
    ``F == num_bins`` when given; ``name`` (the backbone) and ``what`` word the message."""
    if spec.ndim != 4 or spec.shape[1] != 1 or (num_bins is not None and spec.shape[2] != num_bins):
        bins = "F" if num_bins is None else num_bins
        raise InvalidAudioError(f"{name} expects {what} (B, 1, {bins}, T), got {tuple(spec.shape)}")


def _has_no_forward(module: nn.Module) -> bool:
    return type(module).forward is nn.Module.forward  # type: ignore[comparison-overlap]


def _first_module(stage: nn.Module) -> nn.Module:
    return stage[0] if isinstance(stage, nn.Sequential) and len(stage) else stage


def _last_module(stage: nn.Module) -> nn.Module:
    return stage[-1] if isinstance(stage, nn.Sequential) and len(stage) else stage


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
