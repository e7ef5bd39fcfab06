"""EfficientAT's dynamic MobileNets ("DyMN"), widths dymn04, dymn10 and dymn20.

Papers:

- Schmid, Koutini, Widmer, "Dynamic Convolutional Neural Networks as Efficient Pre-trained Audio
  Models", IEEE/ACM TASLP 2024, https://arxiv.org/abs/2310.15648 (DyMN and its weights).
- Chen et al., "Dynamic Convolution: Attention over Convolution Kernels", CVPR 2020,
  https://arxiv.org/abs/1912.03458.
- Chen et al., "Dynamic ReLU", ECCV 2020, https://arxiv.org/abs/2003.10027 (DyReLU-B).
- Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
  https://arxiv.org/abs/2103.02907.

Upstream code: https://github.com/fschmid56/EfficientAT (MIT), ``models/dymn``. This is a
re-implementation; :mod:`audiozoo.converters.dymn` maps upstream checkpoints onto it.

DyMN is EfficientAT's MobileNetV3 (:mod:`audiozoo.backbones.layers.mobilenet`: same 15-row block
table, channels, kernels, strides and width rule) with every inverted-residual block made
input-dependent (:class:`DyBlock`). A block first summarises its input into a context
(:class:`ContextGen`):

- a context vector ``h`` of size H per clip, from which each :class:`DynamicConv` mixes its K = 4
  kernels (softmax attention at a temperature) and :class:`DyReLU` computes per-channel piecewise
  linear activations (DyReLU-B), and
- frequency and time profiles for coordinate attention, which re-weights the depthwise output by
  ``sigmoid(g_f) * sigmoid(g_t)`` instead of squeeze-excitation.

All three convolutions of a block (1x1 expansion, kxk depthwise, 1x1 projection) are dynamic; the
expansion activation stays a static ReLU/Hardswish, the depthwise one is DyReLU-B. The
``replace_se`` variant makes only the blocks with squeeze-excitation in MobileNetV3 dynamic
(rows 3-5 and 10-14); the others are plain MobileNetV3 blocks without SE.

Layout (dymn10 channels, input (B, 1, 128, 1000); the sizes are MobileNetV3's)::

    stem         3x3 conv stride 2 + BN + Hardswish                   (B, 16, 64, 500)
    blocks.0-14  dynamic blocks (an nn.Sequential), strides at 1, 3, 6, 12  ... (B, 160, 4, 32)
    last_conv    1x1 conv + BN + Hardswish                            (B, 960, 4, 32)

:class:`~audiozoo.backbones.Features` carries the output of ``last_conv`` as its grid; its mean
over frequency and time is EfficientAT's clip embedding (384 / 960 / 1920 for dymn04/10/20).

The temperature of the kernel attention is not part of a checkpoint: the AudioSet weights were
trained down to 1.0 (the default here); the ImageNet weights end at 30, which their tags set.
:meth:`DyMN.set_temperature` changes it, e.g. for upstream's fine-tuning schedule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import RegistryError
from ..converters import dymn as _dymn  # noqa: F401  (registers "dymn")
from ..pretrained import PretrainedCfg
from .base import Features, register_backbone
from .layers.efficientat import EfficientATBackbone
from .layers.mobilenet import (
    BlockCfg,
    ConvNormAct,
    InvertedResidual,
    batch_norm,
    block_configs,
    make_divisible,
    square_stride,
)
from .mobilenet import _frontend as _efficientat_frontend

__all__ = ["ContextGen", "DyBlock", "DyMN", "DyReLU", "DynamicConv", "context_size"]


def context_size(expanded: int, width_mult: float, ratio: int, smallest: int, largest: int) -> int:
    """The context size H of a block: ``expanded / ratio`` rounded to a multiple of 8, clipped to
    the width-scaled range [``smallest``, ``largest``] (each rounded the same way)."""
    lower = make_divisible(smallest * width_mult)
    upper = make_divisible(largest * width_mult)
    return min(max(make_divisible(expanded // ratio), lower), upper)


# ---------------------------------------------------------------------------------------------
# Blocks


class DynamicConv(nn.Module):
    """A convolution whose kernel is a per-sample mixture of K kernels (no bias).

    ``attention`` maps the context vector (B, H) to K logits; their softmax at ``temperature``
    weighs the K kernels in ``weight``. The mixed kernels are applied in one call for the whole
    batch: a batched matrix product for 1x1 convolutions, else a grouped convolution with the
    batch folded into the channels (groups ``B * groups``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups: as
            ``nn.Conv2d`` (square kernels).
        context_dim: size H of the context vector.
        num_kernels: K.
        temperature: softmax temperature of the kernel attention.

    Attributes:
        weight: (K, out_channels, in_channels // groups, kernel_size, kernel_size).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        context_dim: int,
        *,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        num_kernels: int = 4,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise RegistryError(f"channels {in_channels}, {out_channels} not divisible by {groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups = dilation, groups
        self.num_kernels, self.temperature = num_kernels, temperature
        self.attention = nn.Linear(context_dim, num_kernels)
        self.weight = nn.Parameter(
            torch.empty(num_kernels, out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self._pointwise = kernel_size == 1 and stride == 1 and groups == 1 and padding == 0
        for kernel in self.weight.data:  # upstream's init: each kernel like a conv's
            nn.init.kaiming_normal_(kernel, mode="fan_out")

    def kernel_attention(self, context: torch.Tensor) -> torch.Tensor:
        """Args: context (B, H). Returns: (B, K) weights of the kernels, summing to 1."""
        return torch.softmax(self.attention(context) / self.temperature, dim=-1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, F, T), context (B, H). Returns: (B, C_out, F', T')."""
        b, _, f, t = x.shape
        # (B, K) @ (K, out * in/groups * k * k): one mixed kernel per sample
        kernels = self.kernel_attention(context) @ self.weight.flatten(1)
        if self._pointwise:
            kernels = kernels.view(b, self.out_channels, self.in_channels)
            return torch.bmm(kernels, x.reshape(b, self.in_channels, f * t)).view(
                b, self.out_channels, f, t
            )
        kernels = kernels.view(b * self.out_channels, *self.weight.shape[2:])
        out = F.conv2d(
            x.reshape(1, b * self.in_channels, f, t),
            kernels,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=b * self.groups,
        )
        return out.view(b, self.out_channels, *out.shape[-2:])

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, groups={self.groups}, num_kernels={self.num_kernels}, "
            f"temperature={self.temperature}"
        )


class DyReLU(nn.Module):
    """Dynamic ReLU, variant B: per-channel ``max_m(a_m * x + b_m)`` with M pieces.

    ``coefs`` maps the context (B, H) to 2M coefficients per channel, squashed to [-1, 1] and
    offset so that the initial function is the ReLU: ``a = init_a + theta_a``,
    ``b = 0.5 * theta_b``, with ``init_a = (1, 0, ...)``.

    Args:
        channels: C.
        context_dim: H.
        num_pieces: M (2 in DyMN).
    """

    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, channels: int, context_dim: int, num_pieces: int = 2) -> None:
        super().__init__()
        self.channels, self.num_pieces = channels, num_pieces
        self.coefs = nn.Linear(context_dim, 2 * num_pieces * channels)
        m = num_pieces
        self.register_buffer("scale", torch.tensor([1.0] * m + [0.5] * m), persistent=False)
        self.register_buffer("offset", torch.tensor([1.0] + [0.0] * (2 * m - 1)), persistent=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C, F, T), context (B, H). Returns: (B, C, F, T)."""
        theta = 2 * torch.sigmoid(self.coefs(context)) - 1  # (B, C * 2M), channel-major
        coefs = theta.view(-1, self.channels, 1, 1, 2 * self.num_pieces) * self.scale + self.offset
        m = self.num_pieces  # coefs[..., i]: slope of piece i < M, intercept of piece i - M
        out = x * coefs[..., 0] + coefs[..., m]
        for i in range(1, m):  # M - 1 element-wise maxima (one for DyMN's M = 2)
            out = torch.maximum(out, x * coefs[..., i] + coefs[..., m + i])
        return out

    def extra_repr(self) -> str:
        return f"{self.channels}, num_pieces={self.num_pieces}"


class ContextGen(nn.Module):
    """The context of a dynamic block, computed from the block input.

    The input (B, C, F, T) is averaged over time (one profile over F) and over frequency (one
    over T); both profiles go through one shared 1x1 conv + BN + Hardswish (``joint_*``, to H
    channels). Their mean over all F + T positions is the context vector; ``conv_f`` / ``conv_t``
    (1x1 with bias, to the expanded channels) turn the profiles into coordinate-attention logits,
    average-pooled (kernel 3, padding 1) to the depthwise output's resolution when it strides.

    Args:
        in_channels: C of the block input.
        context_dim: H.
        expanded: channels of the depthwise output that coordinate attention re-weights.
        stride: the depthwise stride.
    """

    def __init__(self, in_channels: int, context_dim: int, expanded: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.joint_conv = nn.Conv2d(in_channels, context_dim, 1, bias=False)
        self.joint_norm = batch_norm(context_dim)
        self.joint_act = nn.Hardswish()
        self.conv_f = nn.Conv2d(context_dim, expanded, 1)
        self.conv_t = nn.Conv2d(context_dim, expanded, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: x (B, C, F, T).

        Returns: the context vector (B, H), frequency logits (B, E, F', 1) and time logits
        (B, E, 1, T') of coordinate attention (E expanded channels, F', T' after the stride).
        """
        f = x.shape[2]
        profiles = torch.cat([x.mean(dim=3, keepdim=True), x.mean(dim=2).unsqueeze(3)], dim=2)
        joint = self.joint_act(self.joint_norm(self.joint_conv(profiles)))  # (B, H, F + T, 1)
        context = joint.mean(dim=(2, 3))
        h_f, h_t = joint[:, :, :f], joint[:, :, f:].transpose(2, 3)  # (B, H, F, 1), (B, H, 1, T)
        if self.stride > 1:
            h_f = F.avg_pool2d(h_f, (3, 1), (self.stride, 1), (1, 0))
            h_t = F.avg_pool2d(h_t, (1, 3), (1, self.stride), (0, 1))
        return context, self.conv_f(h_f), self.conv_t(h_t)


class DyBlock(nn.Module):
    """Dynamic inverted residual: [dynamic 1x1 expand + BN + act] → dynamic kxk depthwise + BN
    → DyReLU → coordinate attention → dynamic 1x1 project + BN (+ input).

    Args:
        cfg: the MobileNetV3 row (``use_se`` is ignored: coordinate attention replaces SE).
        context_dim: H.
        num_kernels: K of the dynamic convolutions.
        temperature: their attention temperature.
        relu_pieces: M of DyReLU-B.
    """

    def __init__(
        self,
        cfg: BlockCfg,
        context_dim: int,
        num_kernels: int = 4,
        temperature: float = 1.0,
        relu_pieces: int = 2,
    ) -> None:
        super().__init__()
        dyn: dict[str, Any] = {"num_kernels": num_kernels, "temperature": temperature}
        stride = square_stride(cfg.stride)
        self.context_gen = ContextGen(cfg.in_channels, context_dim, cfg.expanded, stride)
        self.exp_conv: DynamicConv | None = None
        if cfg.expanded != cfg.in_channels:
            self.exp_conv = DynamicConv(cfg.in_channels, cfg.expanded, 1, context_dim, **dyn)
            self.exp_norm = batch_norm(cfg.expanded)
            self.exp_act = nn.Hardswish() if cfg.hardswish else nn.ReLU()
        self.depth_conv = DynamicConv(
            cfg.expanded,
            cfg.expanded,
            cfg.kernel,
            context_dim,
            stride=stride,
            padding=(cfg.kernel - 1) // 2 * cfg.dilation,
            dilation=cfg.dilation,
            groups=cfg.expanded,
            **dyn,
        )
        self.depth_norm = batch_norm(cfg.expanded)
        self.depth_act = DyReLU(cfg.expanded, context_dim, relu_pieces)
        self.proj_conv = DynamicConv(cfg.expanded, cfg.out_channels, 1, context_dim, **dyn)
        self.proj_norm = batch_norm(cfg.out_channels)
        self.use_residual = cfg.stride == 1 and cfg.in_channels == cfg.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, F, T). Returns: (B, C_out, F', T')."""
        context, g_f, g_t = self.context_gen(x)
        h = x
        if self.exp_conv is not None:
            h = self.exp_act(self.exp_norm(self.exp_conv(h, context)))
        h = self.depth_act(self.depth_norm(self.depth_conv(h, context)), context)
        h = h * torch.sigmoid(g_f) * torch.sigmoid(g_t)  # coordinate attention
        h = self.proj_norm(self.proj_conv(h, context))
        return h + x if self.use_residual else h


# ---------------------------------------------------------------------------------------------
# Model


class DyMN(EfficientATBackbone):
    """EfficientAT's dynamic MobileNet: spectrogram (B, 1, F, T) → grid (B, 6·C_last, F', T').

    Args:
        width_mult: channel multiplier (0.4 for dymn04, 1.0 for dymn10, 2.0 for dymn20).
        strides: strides of the four down-sampling blocks (rows 1, 3, 6 and 12); with the stem's
            stride 2 the total stride is ``2 * prod(strides)`` (32 by default).
        use_dy_blocks: ``"all"`` (every block dynamic; the released AudioSet models) or
            ``"replace_se"`` (dynamic blocks only where MobileNetV3 has squeeze-excitation).
        dyconv_k: number of kernels K of each dynamic convolution.
        temperature: softmax temperature of the kernel attention (1.0 for the AudioSet weights).
        dyrelu_k: number of linear pieces M of DyReLU-B.
        context_ratio, min_context_size, max_context_size: context size H of a block, see
            :func:`context_size`.

    Attributes:
        stem: 3x3 conv (stride 2) + BN + Hardswish.
        blocks: ``nn.Sequential`` of the 15 blocks (:class:`DyBlock`, or
            :class:`~audiozoo.backbones.layers.mobilenet.InvertedResidual` for static ones).
        last_conv: 1x1 conv to ``num_features`` channels + BN + Hardswish.
        last_channel: hidden width of EfficientAT's MLP head for this width (1280 for dymn10).
    """

    display_name = "DyMN"

    def __init__(
        self,
        width_mult: float = 1.0,
        strides: Sequence[int] = (2, 2, 2, 2),
        use_dy_blocks: str = "all",
        dyconv_k: int = 4,
        temperature: float = 1.0,
        dyrelu_k: int = 2,
        context_ratio: int = 4,
        min_context_size: int = 32,
        max_context_size: int = 128,
    ) -> None:
        super().__init__()
        if use_dy_blocks not in ("all", "replace_se"):
            raise RegistryError(
                f"use_dy_blocks must be 'all' or 'replace_se', got {use_dy_blocks!r}"
            )
        if temperature <= 0:
            raise RegistryError(f"temperature must be positive, got {temperature}")
        if dyconv_k < 1 or dyrelu_k < 1:
            raise RegistryError(f"dyconv_k and dyrelu_k must be >= 1, got {dyconv_k}, {dyrelu_k}")
        self.width_mult = width_mult
        self.strides = tuple(strides)
        self.use_dy_blocks = use_dy_blocks

        cfgs, self.last_channel = block_configs(width_mult, strides)
        self.stem = ConvNormAct(1, cfgs[0].in_channels, 3, stride=2)
        blocks: list[nn.Module] = []
        for cfg in cfgs:
            if use_dy_blocks == "all" or cfg.use_se:
                h = context_size(
                    cfg.expanded, width_mult, context_ratio, min_context_size, max_context_size
                )
                blocks.append(DyBlock(cfg, h, dyconv_k, temperature, dyrelu_k))
            else:  # a plain MobileNetV3 block without squeeze-excitation
                static = dataclasses.replace(cfg, use_se=False)
                blocks.append(InvertedResidual(static, 0, 0, se_dims="", se_agg="max", se_r=4))
        self.blocks = nn.Sequential(*blocks)
        last_in = cfgs[-1].out_channels
        self.last_conv = ConvNormAct(last_in, 6 * last_in, 1)
        self._set_geometry(cfgs)
        self._init_weights()  # DynamicConv kernels are initialised in DynamicConv

    @property
    def temperature(self) -> float:
        """The kernel-attention temperature of the dynamic convolutions."""
        return next(m.temperature for m in self.modules() if isinstance(m, DynamicConv))

    def set_temperature(self, temperature: float) -> None:
        """Set the kernel-attention temperature of every dynamic convolution (upstream anneals
        it from 30 to 1 when it trains from the ImageNet weights)."""
        if temperature <= 0:
            raise RegistryError(f"temperature must be positive, got {temperature}")
        for m in self.modules():
            if isinstance(m, DynamicConv):
                m.temperature = float(temperature)

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T). Returns: Features with grid (B, num_features, F', T')."""
        self._check_input(spec)
        return Features(grid=self.last_conv(self.blocks(self.stem(spec))))

    def stages(self) -> list[nn.Module]:
        """Stem, the blocks grouped by resolution (a new group at each stride slot), last conv."""
        return self._stages(self.stem, self.blocks, self.last_conv)


# ---------------------------------------------------------------------------------------------
# Weights

FAMILY = "EfficientAT DyMN"
_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
_PAPER = "https://arxiv.org/abs/2310.15648"
_CITATION = """@article{schmid2024dynamic,
  title   = {Dynamic Convolutional Neural Networks as Efficient Pre-Trained Audio Models},
  author  = {Schmid, Florian and Koutini, Khaled and Widmer, Gerhard},
  journal = {IEEE/ACM Transactions on Audio, Speech, and Language Processing},
  volume  = {32},
  pages   = {2227--2241},
  year    = {2024},
  doi     = {10.1109/TASLP.2024.3376984}
}"""

WIDTHS: dict[str, float] = {"dymn04": 0.4, "dymn10": 1.0, "dymn20": 2.0}

# ImageNet weights end their training at temperature 30 (upstream's ``pretrain_final_temp``)
_IMAGENET_TEMPERATURE = 30.0
_IMAGENET_NOTE = (
    "ImageNet pre-training only: the convolutional layers are pre-trained, the 527-way "
    "classifier is randomly initialised upstream (so there are no labels). Fine-tune before use. "
    "The dynamic convolutions run at temperature 30, where the ImageNet training ended; "
    "upstream fine-tunes from there, annealing it to 1 (see DyMN.set_temperature)."
)
_REPLACE_SE_NOTE = (
    "Dynamic blocks only where MobileNetV3 has squeeze-excitation (blocks 3-5 and 10-14); the "
    "other blocks are static MobileNetV3 blocks without SE (upstream "
    "use_dy_blocks='replace_se', name {}). No AudioSet mAP is reported upstream."
)
_DUPLICATE_NOTE = "Another training run of the same configuration (upstream name {})."


def _mlp_head(arch: str) -> dict[str, Any]:
    return {"name": "mlp", "hidden": block_configs(WIDTHS[arch])[1]}


def _weight(
    arch: str,
    tag: str,
    filename: str,
    mAP: float | None,
    *,
    imagenet: bool = False,
    replace_se: bool = False,
    notes: str | None = None,
) -> PretrainedCfg:
    """One released DyMN checkpoint (``mAP``: the AudioSet eval mAP upstream reports)."""
    backbone_kwargs: dict[str, Any] = {}
    if replace_se:
        backbone_kwargs["use_dy_blocks"] = "replace_se"
    if imagenet:
        backbone_kwargs["temperature"] = _IMAGENET_TEMPERATURE
    head = _mlp_head(arch)
    if imagenet:  # untrained 527-way classifier: no label set, so the class count is given
        head["num_classes"] = 527
    return PretrainedCfg(
        arch=arch,
        tag=tag,
        url=_RELEASE + filename,
        converter="dymn",
        frontend=_efficientat_frontend(),  # the mn tags' 32 kHz STFT mel, 128 bins, 10 ms hop
        backbone_kwargs=backbone_kwargs,
        head=head,
        label_set=None if imagenet else "audioset",
        license="MIT",
        citation=_CITATION,
        paper=_PAPER,
        metrics={"audioset_mAP": mAP} if mAP is not None else {},
        notes=notes,
    )


# arch -> checkpoints; the first is the default tag. mAP: upstream README table (dymn04, dymn10)
# or the file name (dymn20: the README's 49.1 predates dymn20_as_mAP_493.pt becoming the default).
_WEIGHTS: dict[str, list[PretrainedCfg]] = {
    "dymn04": [
        _weight("dymn04", "as", "dymn04_as.pt", 0.450),
        _weight(
            "dymn04",
            "as_replace_se",
            "dymn04_replace_se_as.pt",
            None,
            replace_se=True,
            notes=_REPLACE_SE_NOTE.format("dymn04_replace_se_as"),
        ),
        _weight("dymn04", "im", "dymn04_im.pt", None, imagenet=True, notes=_IMAGENET_NOTE),
    ],
    "dymn10": [
        _weight("dymn10", "as", "dymn10_as.pt", 0.477),
        _weight(
            "dymn10",
            "as_replace_se",
            "dymn10_replace_se_as.pt",
            None,
            replace_se=True,
            notes=_REPLACE_SE_NOTE.format("dymn10_replace_se_as"),
        ),
        _weight("dymn10", "im", "dymn10_im.pt", None, imagenet=True, notes=_IMAGENET_NOTE),
    ],
    "dymn20": [
        _weight(
            "dymn20",
            "as",
            "dymn20_as_mAP_493.pt",
            0.493,
            notes="Upstream's default dymn20_as since February 2024 (the README table's 49.1 "
            "was written for the earlier default, now dymn20.as_1).",
        ),
        _weight(
            "dymn20",
            "as_1",
            "dymn20_as.pt",
            0.491,
            notes=_DUPLICATE_NOTE.format("dymn20_as(1)")
            + " It was upstream's dymn20_as until February 2024; the mAP is the README table's "
            "for dymn20_as from that time.",
        ),
        _weight(
            "dymn20",
            "as_2",
            "dymn20_as_mAP_489.pt",
            0.489,
            notes=_DUPLICATE_NOTE.format("dymn20_as(2)"),
        ),
        _weight(
            "dymn20",
            "as_3",
            "dymn20_as_mAP_490.pt",
            0.490,
            notes=_DUPLICATE_NOTE.format("dymn20_as(3)"),
        ),
        _weight("dymn20", "im", "dymn20_im.pt", None, imagenet=True, notes=_IMAGENET_NOTE),
    ],
}


# ---------------------------------------------------------------------------------------------
# Registration: one builder per width; ``kwargs`` are DyMN's other arguments.


@register_backbone("dymn04", weights=_WEIGHTS["dymn04"], default_tag="as", family=FAMILY)
def dymn04(**kwargs: Any) -> DyMN:
    return DyMN(width_mult=WIDTHS["dymn04"], **kwargs)


@register_backbone("dymn10", weights=_WEIGHTS["dymn10"], default_tag="as", family=FAMILY)
def dymn10(**kwargs: Any) -> DyMN:
    return DyMN(width_mult=WIDTHS["dymn10"], **kwargs)


@register_backbone("dymn20", weights=_WEIGHTS["dymn20"], default_tag="as", family=FAMILY)
def dymn20(**kwargs: Any) -> DyMN:
    return DyMN(width_mult=WIDTHS["dymn20"], **kwargs)
