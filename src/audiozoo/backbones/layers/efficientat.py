"""What EfficientAT's MobileNets share around their blocks (:mod:`.mobilenet`): MobileNetV3
(:mod:`~audiozoo.backbones.mobilenet`), DyMN (:mod:`~audiozoo.backbones.dymn`) and
PretrainedSED's frame_mn (:mod:`~audiozoo.backbones.pretrainedsed`) are a 3x3 stem with stride 2,
15 blocks of :func:`~.mobilenet.block_configs` and a 1x1 conv to ``6 * C_last`` channels, with
upstream's weight initialisation; their output lengths, stages and per-stage time strides follow
from the geometry of the size-changing convs (the stem and the depthwise convs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, cast

import torch
from torch import nn

from ..._errors import InvalidAudioError, RegistryError
from ..base import Backbone, Features, check_spectrogram
from .mobilenet import BlockCfg, ConvNormAct, InvertedResidual, conv_out_size

__all__ = [
    "BLOCK_STAGES",
    "EfficientATBackbone",
    "SEMobileNet",
    "check_se_dims",
    "conv_geometry",
    "geometry_strides",
    "out_size",
]

# Block index ranges of the stages between the stem and the last conv: a new stage at each
# stride slot of the table (rows 1, 3, 6 and 12).
BLOCK_STAGES: tuple[tuple[int, int], ...] = ((0, 1), (1, 3), (3, 6), (6, 12), (12, 15))
# (kernel, stride, padding, dilation) of a conv along one axis
Geometry = tuple[int, int, int, int]


def conv_geometry(cfgs: Sequence[BlockCfg], axis: int) -> list[Geometry]:
    """(kernel, stride, padding, dilation) along ``axis`` (0: frequency, 1: time) of the convs
    that change (F, T): the stem and each block's depthwise conv (all 1x1 convs keep the size)."""
    return [(3, 2, 1, 1)] + [
        (
            c.kernel,
            c.stride[axis] if isinstance(c.stride, tuple) else c.stride,
            (c.kernel - 1) // 2 * c.dilation,
            c.dilation,
        )
        for c in cfgs
    ]


def out_size(size: int, geometry: Sequence[Geometry]) -> int:
    """Length along one axis after the convs of ``geometry``."""
    for kernel, stride, padding, dilation in geometry:
        size = conv_out_size(size, kernel, stride, padding, dilation)
    return size


def geometry_strides(geometry: Sequence[tuple[int, ...]], stage_ends: Sequence[int]) -> list[int]:
    """Cumulative stride (``geometry[k][1]``: the stride of size-changing conv ``k``) after the
    convs ``0..stage_ends[i]`` of each stage ``i``."""
    return [math.prod(g[1] for g in geometry[: end + 1]) for end in stage_ends]


def check_se_dims(se_dims: str) -> str:
    """``se_dims`` validated, with "none" as ""."""
    se_dims = "" if se_dims == "none" else se_dims
    if any(d not in "cft" for d in se_dims) or len(set(se_dims)) != len(se_dims):
        raise RegistryError(f"se_dims must be distinct letters of 'cft' or 'none', got {se_dims!r}")
    return se_dims


class EfficientATBackbone(Backbone):
    """Base of the EfficientAT MobileNets: spectrogram (B, 1, F, T) -> grid (B, 6·C_last, F', T').

    Subclasses build their modules, then call :meth:`_set_geometry` with their block
    configurations and :meth:`_init_weights`.

    Attributes:
        se_dims: the squeeze-excitation axes ("" without SE); frequency/time SE fix the input
            size to (``input_dim_f``, ``input_dim_t``).
    """

    display_name: ClassVar[str]  # in error messages
    se_dims: str = ""
    input_dim_f: int = 0
    input_dim_t: int = 0
    _geometry_f: list[Geometry]
    _geometry_t: list[Geometry]

    def _set_geometry(self, cfgs: Sequence[BlockCfg]) -> None:
        """Record the size-changing convs of the 15 blocks ``cfgs`` (plus the stem)."""
        self._geometry_f = conv_geometry(cfgs, 0)
        self._geometry_t = conv_geometry(cfgs, 1)
        self.num_features = 6 * cfgs[-1].out_channels
        self.time_stride = math.prod(g[1] for g in self._geometry_t)

    def _init_weights(self) -> None:
        # Upstream's initialisation (matters only for training from scratch), in module order.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def _check_input(self, spec: torch.Tensor) -> None:
        check_spectrogram(spec, self.display_name)
        for axis, letter, size, what in (
            (2, "f", self.input_dim_f, "frequency bins"),
            (3, "t", self.input_dim_t, "frames"),
        ):
            if letter in self.se_dims and spec.shape[axis] != size:
                raise InvalidAudioError(
                    f"squeeze-excitation over axis {letter!r} was built for {size} {what}, got "
                    f"{spec.shape[axis]}; build the backbone with input_dim_{letter}="
                    f"{spec.shape[axis]}"
                )

    def _stages(self, stem: nn.Module, blocks: nn.Module, last: nn.Module) -> list[nn.Module]:
        """Stem, the blocks (a Sequential) grouped by :data:`BLOCK_STAGES`, last conv."""
        seq = cast(nn.Sequential, blocks)
        # a list comprehension, not ``*(generator)``: torch 2.4's dynamo fails on the latter
        # (LIST_EXTEND of an immutable list) when torch.compile traces model.frozen
        return [stem] + [seq[a:b] for a, b in BLOCK_STAGES] + [last]

    def num_output_frames(self, num_frames: int) -> int:
        """``T'`` after the stem and the depthwise convs (1x1 convs keep the size)."""
        return out_size(num_frames, self._geometry_t)

    def layer_time_strides(self) -> list[int]:
        """Time stride after each stage: the product of the strides of its size-changing convs
        (stage ends: the stem, the last block of each group, the last conv)."""
        ends = [0] + [b for _, b in BLOCK_STAGES] + [len(self._geometry_t) - 1]
        return geometry_strides(self._geometry_t, ends)


class SEMobileNet(EfficientATBackbone):
    """The MobileNetV3 of EfficientAT with squeeze-excitation blocks, in one ``features``
    Sequential (upstream's nesting): stem, the 15 :class:`~.mobilenet.InvertedResidual` blocks of
    ``cfgs`` and the last 1x1 conv. The base of ``mn*`` and of PretrainedSED's frame_mn.

    Args:
        cfgs: the 15 block configurations.
        se_dims: squeeze-excitation axes, any of "c", "f", "t" ("" for none); frequency/time SE
            are sized by each block's output for an input of ``input_dim_f`` x ``input_dim_t``.
        se_agg, se_r: see :class:`~.mobilenet.ConcurrentSE`.
    """

    def __init__(
        self,
        cfgs: Sequence[BlockCfg],
        se_dims: str,
        se_agg: str,
        se_r: int,
        input_dim_f: int,
        input_dim_t: int,
    ) -> None:
        super().__init__()
        self.se_dims, self.input_dim_f, self.input_dim_t = se_dims, input_dim_f, input_dim_t
        self._set_geometry(cfgs)
        layers: list[nn.Module] = [ConvNormAct(1, cfgs[0].in_channels, 3, stride=2)]
        for i, cfg in enumerate(cfgs, start=2):
            freq = out_size(input_dim_f, self._geometry_f[:i])
            time = out_size(input_dim_t, self._geometry_t[:i])
            layers.append(InvertedResidual(cfg, freq, time, se_dims, se_agg, se_r))
        last_in = cfgs[-1].out_channels
        layers.append(ConvNormAct(last_in, 6 * last_in, 1))
        self.features = nn.Sequential(*layers)
        if "t" in se_dims:  # time SE has Linear layers of size T': the input length is fixed
            self.min_frames = self.max_frames = input_dim_t
        self._init_weights()

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T). Returns: Features with grid (B, num_features, F', T')."""
        self._check_input(spec)
        return Features(grid=self.features(spec))

    def stages(self) -> list[nn.Module]:
        """Stem, the blocks grouped by resolution (a new group at each stride slot), last conv."""
        f = self.features
        return self._stages(f[0], f[1:16], f[16])
