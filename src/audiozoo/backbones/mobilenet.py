"""EfficientAT's MobileNetV3 ("MN") audio backbones, widths mn01 … mn40.

Papers:

- Schmid, Koutini, Widmer, "Efficient Large-Scale Audio Tagging via Transformer-to-CNN Knowledge
  Distillation", ICASSP 2023, https://arxiv.org/abs/2211.04772 (the MN models and their weights).
- Howard et al., "Searching for MobileNetV3", ICCV 2019, https://arxiv.org/abs/1905.02244
  (the architecture).
- Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507.

Upstream code: https://github.com/fschmid56/EfficientAT (MIT). This is a re-implementation of its
``models/mn`` network with the same module nesting, so upstream checkpoints map onto it by a
prefix rename (see :mod:`audiozoo.converters.efficientat`).

Differences from torchvision's MobileNetV3-Large: one input channel, BatchNorm eps 1e-3 and
momentum 0.01 everywhere, squeeze-excitation made of ``nn.Linear`` layers with ReLU and Sigmoid
(not 1x1 convs with Hardsigmoid), optional frequency/time squeeze-excitation, and configurable
strides of the four down-sampling blocks.

Layout of ``MobileNetV3.features`` (an ``nn.Sequential`` of 17 modules; mn10 channels,
input (B, 1, 128, 1000))::

    features.0      stem: 3x3 conv stride 2 + BN + Hardswish          (B, 16, 64, 500)
    features.1      inverted residual, no expansion                   (B, 16, 64, 500)
    features.2-3    inverted residuals, first with stride s1          (B, 24, 32, 250)
    features.4-6    inverted residuals with SE, first with stride s2  (B, 40, 16, 125)
    features.7-12   inverted residuals, first with stride s3          (B, 112, 8, 63)
    features.13-15  inverted residuals with SE, first with stride s4  (B, 160, 4, 32)
    features.16     1x1 conv + BN + Hardswish                         (B, 960, 4, 32)

:class:`~audiozoo.backbones.Features` carries the output of ``features.16`` as its grid; its
mean over frequency and time is EfficientAT's clip embedding (960-d for mn10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .._errors import InvalidAudioError, RegistryError
from ..converters import efficientat as _efficientat  # noqa: F401  (registers "efficientat")
from ..pretrained import PretrainedCfg
from .base import Backbone, Features, register_backbone

__all__ = [
    "ConcurrentSE",
    "ConvNormAct",
    "InvertedResidual",
    "MobileNetV3",
    "SqueezeExcitation",
    "geometry_strides",
    "make_divisible",
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


def geometry_strides(geometry: Sequence[tuple[int, ...]], stage_ends: Sequence[int]) -> list[int]:
    """Cumulative stride (``geometry[k][1]``: the stride of size-changing conv ``k``) after the
    convs ``0..stage_ends[i]`` of each stage ``i``."""
    return [math.prod(g[1] for g in geometry[: end + 1]) for end in stage_ends]


def _batch_norm(channels: int) -> nn.BatchNorm2d:
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
            _batch_norm(out_channels),
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


# ---------------------------------------------------------------------------------------------
# Model


class MobileNetV3(Backbone):
    """EfficientAT's MobileNetV3: spectrogram (B, 1, F, T) → feature grid (B, 6·C_last, F', T').

    Args:
        width_mult: channel multiplier (0.1 for mn01 … 4.0 for mn40).
        strides: strides of the four down-sampling blocks; with the stem's stride 2 the total
            stride (frequency and time) is ``2 * prod(strides)`` (32 by default).
        dilated: dilate the last three blocks instead of striding the first of them.
        reduced_tail: halve the channels of the last three blocks.
        se_dims: squeeze-excitation axes, any of "c" (channels), "f" (frequency), "t" (time);
            "" or "none" disables SE. Frequency/time SE fix the input size to
            (``input_dim_f``, ``input_dim_t``).
        se_agg: fusion of concurrent SEs: "max", "avg", "add" or "min".
        se_r: SE bottleneck ratio.
        input_dim_f, input_dim_t: spectrogram size that frequency/time SE are built for.

    Attributes:
        features: ``nn.Sequential`` of stem, 15 inverted residual blocks and the last 1x1 conv.
        last_channel: hidden width of EfficientAT's MLP head for this width (1280 for mn10).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        strides: Sequence[int] = (2, 2, 2, 2),
        dilated: bool = False,
        reduced_tail: bool = False,
        se_dims: str = "c",
        se_agg: str = "max",
        se_r: int = 4,
        input_dim_f: int = 128,
        input_dim_t: int = 1000,
    ) -> None:
        super().__init__()
        se_dims = "" if se_dims == "none" else se_dims
        if any(d not in "cft" for d in se_dims) or len(set(se_dims)) != len(se_dims):
            raise RegistryError(
                f"se_dims must be distinct letters of 'cft' or 'none', got {se_dims!r}"
            )
        self.width_mult = width_mult
        self.strides = tuple(strides)
        self.se_dims = se_dims
        self.input_dim_f, self.input_dim_t = input_dim_f, input_dim_t

        cfgs, self.last_channel = block_configs(width_mult, strides, dilated, reduced_tail)
        # (kernel, stride, padding, dilation) of the convs that change (F, T): the stem and each
        # block's depthwise conv; all 1x1 convs keep the size.
        self._geometry = [(3, 2, 1, 1)] + [
            (c.kernel, square_stride(c.stride), (c.kernel - 1) // 2 * c.dilation, c.dilation)
            for c in cfgs
        ]
        layers: list[nn.Module] = [ConvNormAct(1, cfgs[0].in_channels, 3, stride=2)]
        for i, cfg in enumerate(cfgs, start=2):
            # frequency/time SE is sized by the block's output (F', T') for the design input
            freq, time = self._out_size(input_dim_f, i), self._out_size(input_dim_t, i)
            layers.append(InvertedResidual(cfg, freq, time, se_dims, se_agg, se_r))
        last_in = cfgs[-1].out_channels
        layers.append(ConvNormAct(last_in, 6 * last_in, 1))
        self.features = nn.Sequential(*layers)

        self.num_features = 6 * last_in
        self.time_stride = math.prod(stride for _, stride, _, _ in self._geometry)
        if "t" in se_dims:  # time SE has Linear layers of size T': the input length is fixed
            self.min_frames = self.max_frames = input_dim_t
        self._init_weights()

    def _out_size(self, size: int, num_convs: int) -> int:
        """Length along frequency or time after the first ``num_convs`` size-changing convs."""
        for kernel, stride, padding, dilation in self._geometry[:num_convs]:
            size = conv_out_size(size, kernel, stride, padding, dilation)
        return size

    def _init_weights(self) -> None:
        # Upstream's initialisation (matters only for training from scratch).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def num_output_frames(self, num_frames: int) -> int:
        """``T'`` after the stem and the depthwise convs (1x1 convs keep the size)."""
        return self._out_size(num_frames, len(self._geometry))

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T). Returns: Features with grid (B, num_features, F', T')."""
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise InvalidAudioError(
                f"MobileNetV3 expects a spectrogram of shape (B, 1, F, T), got {tuple(spec.shape)}"
            )
        if "f" in self.se_dims and spec.shape[2] != self.input_dim_f:
            raise InvalidAudioError(
                f"frequency squeeze-excitation was built for {self.input_dim_f} frequency bins, "
                f"got {spec.shape[2]}; build the backbone with input_dim_f={spec.shape[2]}"
            )
        if "t" in self.se_dims and spec.shape[3] != self.input_dim_t:
            raise InvalidAudioError(
                f"time squeeze-excitation was built for {self.input_dim_t} frames, got "
                f"{spec.shape[3]}; build the backbone with input_dim_t={spec.shape[3]}"
            )
        return Features(grid=self.features(spec))

    def stages(self) -> list[nn.Module]:
        """Stem, the blocks grouped by resolution (a new group at each stride slot), last conv."""
        f = self.features
        return [f[0], f[1:2], f[2:4], f[4:7], f[7:13], f[13:16], f[16]]

    def layer_time_strides(self) -> list[int]:
        """Time stride after each stage: the product of the strides of its size-changing convs."""
        return geometry_strides(self._geometry, [0, 1, 3, 6, 12, 15, 15])


# ---------------------------------------------------------------------------------------------
# Weights

FAMILY = "EfficientAT MobileNetV3"
_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
_PAPER = "https://arxiv.org/abs/2211.04772"
_CITATION = """@inproceedings{schmid2023efficient,
  title     = {Efficient Large-Scale Audio Tagging Via Transformer-to-CNN Knowledge Distillation},
  author    = {Schmid, Florian and Koutini, Khaled and Widmer, Gerhard},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2023},
  doi       = {10.1109/ICASSP49357.2023.10096110}
}"""

WIDTHS: dict[str, float] = {
    "mn01": 0.1,
    "mn02": 0.2,
    "mn04": 0.4,
    "mn05": 0.5,
    "mn06": 0.6,
    "mn08": 0.8,
    "mn10": 1.0,
    "mn12": 1.2,
    "mn14": 1.4,
    "mn16": 1.6,
    "mn20": 2.0,
    "mn30": 3.0,
    "mn40": 4.0,
}


def _frontend(n_mels: int = 128, hop_length: int = 320) -> dict[str, Any]:
    """EfficientAT's AugmentMelSTFT: the ``stft_mel`` defaults (32 kHz, 25 ms window, 10 ms hop,
    128 mels) with a tag's other mel count or hop."""
    changed = {"n_mels": n_mels, "hop_length": hop_length}
    defaults = {"n_mels": 128, "hop_length": 320}
    return {"name": "stft_mel", **{k: v for k, v in changed.items() if v != defaults[k]}}


def _mlp_head(arch: str, num_classes: int | None = None) -> dict[str, Any]:
    head: dict[str, Any] = {"name": "mlp", "hidden": block_configs(WIDTHS[arch])[1]}
    return head if num_classes is None else {**head, "num_classes": num_classes}


def _weight(
    arch: str,
    tag: str,
    filename: str,
    mAP: float | None,
    *,
    n_mels: int = 128,
    hop_length: int = 320,
    strides: tuple[int, int, int, int] | None = None,
    conv_head: bool = False,
    notes: str | None = None,
) -> PretrainedCfg:
    """One released EfficientAT checkpoint (``mAP`` is the AudioSet eval mAP in the file name).
    ImageNet-only checkpoints (``mAP`` None) carry an untrained 527-class classifier: no label
    set."""
    trained = mAP is not None
    num_classes = None if trained else 527
    head = {"name": "conv"} if conv_head else _mlp_head(arch)
    return PretrainedCfg(
        arch=arch,
        tag=tag,
        url=_RELEASE + filename,
        converter="efficientat",
        frontend=_frontend(n_mels, hop_length),
        backbone_kwargs={"strides": strides} if strides else {},
        head=head if trained else {**head, "num_classes": num_classes},
        label_set="audioset" if trained else None,
        license="MIT",
        citation=_CITATION,
        paper=_PAPER,
        metrics={"audioset_mAP": mAP} if mAP is not None else {},
        notes=notes,
    )


_IMAGENET_NOTE = (
    "ImageNet pre-training only: the convolutional layers are pre-trained, the 527-class "
    "classifier is randomly initialised upstream. Fine-tune before use; the labels mean nothing."
)
_DUPLICATE_NOTE = "Another training run of the same configuration (upstream name {})."

# arch -> checkpoints, in upstream order; the first AudioSet checkpoint is the default tag.
_WEIGHTS: dict[str, list[PretrainedCfg]] = {
    "mn01": [
        _weight("mn01", "as", "mn01_as_mAP_298.pt", 0.298),
        _weight("mn01", "im", "mn01_im.pt", None, notes=_IMAGENET_NOTE),
    ],
    "mn02": [
        _weight("mn02", "as", "mn02_as_mAP_378.pt", 0.378),
        _weight("mn02", "im", "mn02_im.pt", None, notes=_IMAGENET_NOTE),
    ],
    "mn04": [
        _weight("mn04", "as", "mn04_as_mAP_432.pt", 0.432),
        _weight("mn04", "im", "mn04_im.pt", None, notes=_IMAGENET_NOTE),
    ],
    "mn05": [
        _weight("mn05", "as", "mn05_as_mAP_443.pt", 0.443),
        _weight("mn05", "im", "mn05_im.pt", None, notes=_IMAGENET_NOTE),
    ],
    "mn10": [
        _weight("mn10", "as", "mn10_as_mAP_471.pt", 0.471),
        _weight("mn10", "as_hop_5", "mn10_as_hop_5_mAP_475.pt", 0.475, hop_length=160),
        _weight("mn10", "as_hop_15", "mn10_as_hop_15_mAP_463.pt", 0.463, hop_length=480),
        _weight("mn10", "as_hop_20", "mn10_as_hop_20_mAP_456.pt", 0.456, hop_length=640),
        _weight("mn10", "as_hop_25", "mn10_as_hop_25_mAP_447.pt", 0.447, hop_length=800),
        _weight("mn10", "as_mels_40", "mn10_as_mels_40_mAP_453.pt", 0.453, n_mels=40),
        _weight("mn10", "as_mels_64", "mn10_as_mels_64_mAP_461.pt", 0.461, n_mels=64),
        _weight("mn10", "as_mels_256", "mn10_as_mels_256_mAP_474.pt", 0.474, n_mels=256),
        _weight("mn10", "as_fc", "mn10_as_fc_mAP_465.pt", 0.465, conv_head=True),
        _weight(
            "mn10",
            "as_fc_s2221",
            "mn10_as_fc_s2221_mAP_466.pt",
            0.466,
            conv_head=True,
            strides=(2, 2, 2, 1),
        ),
        _weight(
            "mn10",
            "as_fc_s2211",
            "mn10_as_fc_s2211_mAP_466.pt",
            0.466,
            conv_head=True,
            strides=(2, 2, 1, 1),
        ),
        _weight("mn10", "im", "mn10_im.pt", None, notes=_IMAGENET_NOTE),
        _weight(
            "mn10",
            "im_pytorch",
            "mn10_im_pytorch.pt",
            None,
            notes="torchvision's ImageNet MobileNetV3-Large weights adapted to one input channel. "
            + _IMAGENET_NOTE,
        ),
    ],
    "mn20": [
        _weight("mn20", "as", "mn20_as_mAP_478.pt", 0.478),
        _weight("mn20", "im", "mn20_im.pt", None, notes=_IMAGENET_NOTE),
    ],
    "mn30": [
        _weight("mn30", "as", "mn30_as_mAP_482.pt", 0.482),
        _weight("mn30", "im", "mn30_im.pt", None, notes=_IMAGENET_NOTE),
    ],
    "mn40": [
        _weight("mn40", "as", "mn40_as_mAP_484.pt", 0.484),
        _weight(
            "mn40", "as_2", "mn40_as_mAP_483.pt", 0.483, notes=_DUPLICATE_NOTE.format("mn40_as(2)")
        ),
        _weight(
            "mn40",
            "as_3",
            "mn40_as_mAP_483(2).pt",
            0.483,
            notes=_DUPLICATE_NOTE.format("mn40_as(3)"),
        ),
        _weight(
            "mn40",
            "as_ext",
            "mn40_as_ext_mAP_487.pt",
            0.487,
            notes="Trained for 300 epochs instead of 200.",
        ),
        _weight(
            "mn40",
            "as_ext_2",
            "mn40_as_ext_mAP_486.pt",
            0.486,
            notes=_DUPLICATE_NOTE.format("mn40_as_ext(2)"),
        ),
        _weight(
            "mn40",
            "as_ext_3",
            "mn40_as_ext_mAP_485.pt",
            0.485,
            notes=_DUPLICATE_NOTE.format("mn40_as_ext(3)"),
        ),
        _weight(
            "mn40",
            "as_no_im_pre",
            "mn40_as_no_im_pre_mAP_483.pt",
            0.483,
            notes="Trained on AudioSet without ImageNet pre-training.",
        ),
        _weight(
            "mn40",
            "as_no_im_pre_2",
            "mn40_as_no_im_pre_mAP_483(2).pt",
            0.483,
            notes=_DUPLICATE_NOTE.format("mn40_as_no_im_pre(2)"),
        ),
        _weight(
            "mn40",
            "as_no_im_pre_3",
            "mn40_as_no_im_pre_mAP_482.pt",
            0.482,
            notes=_DUPLICATE_NOTE.format("mn40_as_no_im_pre(3)"),
        ),
        _weight("mn40", "im", "mn40_im.pt", None, notes=_IMAGENET_NOTE),
    ],
}


def _untrained_cfg(arch: str) -> PretrainedCfg:
    """Frontend and head for widths without released weights (random initialisation)."""
    return PretrainedCfg(
        arch=arch,
        frontend=_frontend(),
        head=_mlp_head(arch, 527),
        license="MIT",
        citation=_CITATION,
        paper=_PAPER,
        notes="No released EfficientAT weights for this width; randomly initialised.",
    )


# ---------------------------------------------------------------------------------------------
# Registration: one builder per width; ``kwargs`` are MobileNetV3's other arguments.


@register_backbone("mn01", weights=_WEIGHTS["mn01"], default_tag="as", family=FAMILY)
def mn01(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn01"], **kwargs)


@register_backbone("mn02", weights=_WEIGHTS["mn02"], default_tag="as", family=FAMILY)
def mn02(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn02"], **kwargs)


@register_backbone("mn04", weights=_WEIGHTS["mn04"], default_tag="as", family=FAMILY)
def mn04(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn04"], **kwargs)


@register_backbone("mn05", weights=_WEIGHTS["mn05"], default_tag="as", family=FAMILY)
def mn05(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn05"], **kwargs)


@register_backbone("mn06", default_cfg=_untrained_cfg("mn06"), family=FAMILY)
def mn06(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn06"], **kwargs)


@register_backbone("mn08", default_cfg=_untrained_cfg("mn08"), family=FAMILY)
def mn08(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn08"], **kwargs)


@register_backbone("mn10", weights=_WEIGHTS["mn10"], default_tag="as", family=FAMILY)
def mn10(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn10"], **kwargs)


@register_backbone("mn12", default_cfg=_untrained_cfg("mn12"), family=FAMILY)
def mn12(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn12"], **kwargs)


@register_backbone("mn14", default_cfg=_untrained_cfg("mn14"), family=FAMILY)
def mn14(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn14"], **kwargs)


@register_backbone("mn16", default_cfg=_untrained_cfg("mn16"), family=FAMILY)
def mn16(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn16"], **kwargs)


@register_backbone("mn20", weights=_WEIGHTS["mn20"], default_tag="as", family=FAMILY)
def mn20(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn20"], **kwargs)


@register_backbone("mn30", weights=_WEIGHTS["mn30"], default_tag="as", family=FAMILY)
def mn30(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn30"], **kwargs)


@register_backbone("mn40", weights=_WEIGHTS["mn40"], default_tag="as", family=FAMILY)
def mn40(**kwargs: Any) -> MobileNetV3:
    return MobileNetV3(width_mult=WIDTHS["mn40"], **kwargs)
