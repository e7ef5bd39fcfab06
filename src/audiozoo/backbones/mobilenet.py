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

from collections.abc import Sequence
from typing import Any

from ..converters import efficientat as _efficientat  # noqa: F401  (registers "efficientat")
from ..pretrained import PretrainedCfg
from .base import register_backbone
from .layers.efficientat import SEMobileNet, check_se_dims, geometry_strides
from .layers.mobilenet import (
    ConcurrentSE,
    ConvNormAct,
    InvertedResidual,
    SqueezeExcitation,
    block_configs,
    make_divisible,
)

# The blocks live in :mod:`audiozoo.backbones.layers.mobilenet`; they stay importable from here.
__all__ = [
    "ConcurrentSE",
    "ConvNormAct",
    "InvertedResidual",
    "MobileNetV3",
    "SqueezeExcitation",
    "geometry_strides",
    "make_divisible",
]


class MobileNetV3(SEMobileNet):
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

    display_name = "MobileNetV3"

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
        se_dims = check_se_dims(se_dims)
        cfgs, last_channel = block_configs(width_mult, strides, dilated, reduced_tail)
        super().__init__(cfgs, se_dims, se_agg, se_r, input_dim_f, input_dim_t)
        self.width_mult = width_mult
        self.strides = tuple(strides)
        self.last_channel = last_channel


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
