"""EfficientAT's MobileNetV3 building blocks, shared by the MobileNets
(:mod:`~audiozoo.backbones.mobilenet`), the dynamic MobileNets (:mod:`~audiozoo.backbones.dymn`)
and PretrainedSED's frame_mn (:mod:`~audiozoo.backbones.pretrainedsed`).

Papers: Howard et al., "Searching for MobileNetV3", ICCV 2019, https://arxiv.org/abs/1905.02244
(the architecture); Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
https://arxiv.org/abs/1709.01507. Upstream: https://github.com/fschmid56/EfficientAT (MIT),
``models/mn``; module names follow it, so checkpoints map by prefix renames.

- :class:`ConvNormAct`, :class:`SqueezeExcitation`, :class:`ConcurrentSE`,
  :class:`InvertedResidual`, and the 15-row table (:func:`block_configs`);
- :class:`~audiozoo.backbones.layers.efficientat.EfficientATBackbone` (in ``efficientat``): what
  the three networks share around these blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..._errors import RegistryError

__all__ = [
    "BlockCfg",
    "ConcurrentSE",
    "ConvNormAct",
    "InvertedResidual",
    "SqueezeExcitation",
    "batch_norm",
    "block_configs",
    "conv_out_size",
    "make_divisible",
    "square_stride",
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never more
    than 10 % below ``value`` (the TensorFlow MobileNet channel rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def square_stride(stride: int | tuple[int, int]) -> int:
    """The stride of a block with the same stride on both axes (EfficientAT's MobileNets)."""
    if isinstance(stride, tuple):
        raise TypeError(f"expected one stride for both axes, got the per-axis pair {stride}")
    return stride


def batch_norm(channels: int) -> nn.BatchNorm2d:
    # EfficientAT (like TF MobileNet) uses eps 1e-3 and momentum 0.01, not PyTorch's defaults.
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


# ---------------------------------------------------------------------------------------------
# Blocks


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm → optional activation; children ``0``, ``1`` (and ``2``).

    Padding keeps the size for stride 1: ``(kernel - 1) // 2 * dilation``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int | tuple[int, int] = 1,
        groups: int = 1,
        dilation: int = 1,
        activation: type[nn.Module] | None = nn.Hardswish,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            batch_norm(out_channels),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-excitation along one axis of (B, C, F, T): channels, frequency or time.

    The input is averaged over the two other axes, giving one value per entry of the chosen axis
    (length ``dim``); ``fc1`` → ReLU → ``fc2`` → Sigmoid turns these into multiplicative weights,
    broadcast back over the averaged axes.

    Args:
        dim: length of the excited axis (C, F' or T' of the block input).
        squeeze_dim: bottleneck width.
        axis: 1 (channels), 2 (frequency) or 3 (time).
    """

    def __init__(self, dim: int, squeeze_dim: int, axis: int) -> None:
        super().__init__()
        if axis not in (1, 2, 3):
            raise RegistryError(f"squeeze-excitation axis must be 1, 2 or 3, got {axis}")
        self.axis = axis
        self.fc1 = nn.Linear(dim, squeeze_dim)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(squeeze_dim, dim)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C, F, T). Returns: (B, C, F, T)."""
        pooled_axes = [a for a in (1, 2, 3) if a != self.axis]
        scale = x.mean(dim=pooled_axes, keepdim=True)  # e.g. (B, C, 1, 1) for channel SE
        shape = scale.shape
        scale = self.fc2(self.act(self.fc1(scale.flatten(1))))  # (B, dim)
        return x * self.gate(scale).view(shape)


class ConcurrentSE(nn.Module):
    """One or more :class:`SqueezeExcitation` on different axes, run in parallel on the same
    input and fused element-wise by ``agg`` ("max", "avg", "add" or "min").

    With a single SE (all released models: channel SE) the fusion is the identity.

    Args:
        channels, freq, time: size of the block's (C, F', T') at this point.
        dims: which axes to excite: any of "c", "f", "t".
        agg: fusion of the concurrent outputs.
        reduction: bottleneck ratio; the squeeze width is ``make_divisible(size // reduction)``.
    """

    _AXES: ClassVar[dict[str, int]] = {"c": 1, "f": 2, "t": 3}

    def __init__(
        self, channels: int, freq: int, time: int, dims: str, agg: str, reduction: int
    ) -> None:
        super().__init__()
        if agg not in ("max", "avg", "add", "min"):
            raise RegistryError(f"se_agg must be 'max', 'avg', 'add' or 'min', got {agg!r}")
        self.agg = agg
        sizes = {"c": channels, "f": freq, "t": time}
        self.conc_se_layers = nn.ModuleList(
            SqueezeExcitation(sizes[d], make_divisible(sizes[d] // reduction), self._AXES[d])
            for d in dims
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C, F, T). Returns: (B, C, F, T)."""
        if len(self.conc_se_layers) == 1:
            # One SE (every released model): fusing a single output is the identity, and
            # skipping the stacked copy saves two passes over the activation.
            return self.conc_se_layers[0](x)
        outs = torch.stack([se(x) for se in self.conc_se_layers])  # (n_se, B, C, F, T)
        if self.agg == "max":
            return outs.amax(dim=0)
        if self.agg == "min":
            return outs.amin(dim=0)
        if self.agg == "add":
            return outs.sum(dim=0)
        return outs.mean(dim=0)


@dataclass(frozen=True)
class BlockCfg:
    """One row of the MobileNetV3 table, after width scaling.

    Attributes:
        in_channels, kernel, expanded, out_channels: channel sizes and depthwise kernel.
        use_se: whether the block has squeeze-excitation.
        hardswish: Hardswish activations (else ReLU).
        stride: stride of the depthwise conv (1 when ``dilation > 1``); a (frequency, time)
            pair for per-axis strides (PretrainedSED's frame_mn).
        dilation: dilation of the depthwise conv.
    """

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    use_se: bool
    hardswish: bool
    stride: int | tuple[int, int]
    dilation: int


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [1x1 expand] → kxk depthwise → [SE] → 1x1 project (+ input).

    ``block`` is an ``nn.Sequential`` holding only the parts that exist, so its indices shift
    down by one when there is no expansion (``expanded == in_channels``), as upstream.

    Args:
        cfg: the block configuration.
        freq, time: (F', T') of the block output, needed by frequency/time SE.
        se_dims, se_agg, se_r: see :class:`ConcurrentSE`; ``se_dims=""`` disables SE.
    """

    def __init__(
        self, cfg: BlockCfg, freq: int, time: int, se_dims: str, se_agg: str, se_r: int
    ) -> None:
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if cfg.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if cfg.expanded != cfg.in_channels:
            layers.append(ConvNormAct(cfg.in_channels, cfg.expanded, 1, activation=act))
        # index of the depthwise conv in ``block`` (0 without expansion, else 1)
        self.depthwise_index = len(layers)
        layers.append(
            ConvNormAct(
                cfg.expanded,
                cfg.expanded,
                cfg.kernel,
                stride=cfg.stride,
                groups=cfg.expanded,
                dilation=cfg.dilation,
                activation=act,
            )
        )
        if cfg.use_se and se_dims:
            layers.append(ConcurrentSE(cfg.expanded, freq, time, se_dims, se_agg, se_r))
        layers.append(ConvNormAct(cfg.expanded, cfg.out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        strides = cfg.stride if isinstance(cfg.stride, tuple) else (cfg.stride,)
        self.use_residual = all(s == 1 for s in strides) and cfg.in_channels == cfg.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, F, T). Returns: (B, C_out, F', T')."""
        out = self.block(x)
        return out + x if self.use_residual else out


# MobileNetV3-Large before width scaling: in, kernel, expanded, out, SE, Hardswish, stride slot.
# The stride slot indexes ``strides`` (None = stride 1); the last three rows are the "tail"
# that ``reduced_tail`` halves and ``dilated`` dilates.
_TABLE: tuple[tuple[int, int, int, int, bool, bool, int | None], ...] = (
    (16, 3, 16, 16, False, False, None),
    (16, 3, 64, 24, False, False, 0),
    (24, 3, 72, 24, False, False, None),
    (24, 5, 72, 40, True, False, 1),
    (40, 5, 120, 40, True, False, None),
    (40, 5, 120, 40, True, False, None),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, None),
    (80, 3, 184, 80, False, True, None),
    (80, 3, 184, 80, False, True, None),
    (80, 3, 480, 112, True, True, None),
    (112, 3, 672, 112, True, True, None),
    (112, 5, 672, 160, True, True, 3),
    (160, 5, 960, 160, True, True, None),
    (160, 5, 960, 160, True, True, None),
)
_TAIL = 12  # first row of the tail


def block_configs(
    width_mult: float,
    strides: Sequence[int] = (2, 2, 2, 2),
    dilated: bool = False,
    reduced_tail: bool = False,
) -> tuple[list[BlockCfg], int]:
    """The 15 block configurations and the MLP hidden width (``last_channel``) for a width.

    Args:
        width_mult: channel multiplier (1.0 = mn10).
        strides: strides of the four down-sampling blocks (rows 1, 3, 6 and 12).
        dilated: dilate the tail (depthwise dilation 2, stride forced to 1).
        reduced_tail: halve the tail's channels and ``last_channel``.
    """
    if len(strides) != 4 or any(s not in (1, 2) for s in strides):
        raise RegistryError(f"strides must be four values of 1 or 2, got {tuple(strides)}")

    def adjust(c: int) -> int:
        return make_divisible(c * width_mult)

    divider = 2 if reduced_tail else 1
    cfgs = []
    for i, (cin, k, exp, cout, se, hs, slot) in enumerate(_TABLE):
        tail = i >= _TAIL
        # reduced_tail halves the tail's outputs, and the inputs/expansions that follow from
        # them; the first tail row still reads row 11's 112 channels and expands to 672.
        if reduced_tail and tail:
            cout //= divider
            if i > _TAIL:
                cin, exp = cin // divider, exp // divider
        stride = 1 if slot is None else strides[slot]
        dilation = 2 if (tail and dilated) else 1
        cfgs.append(
            BlockCfg(
                in_channels=adjust(cin),
                kernel=k,
                expanded=adjust(exp),
                out_channels=adjust(cout),
                use_se=se,
                hardswish=hs,
                stride=1 if dilation > 1 else stride,
                dilation=dilation,
            )
        )
    return cfgs, adjust(1280 // divider)
