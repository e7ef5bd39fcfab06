"""PretrainedSED's frame-level backbones: frame_mn (a MobileNetV3 at 40 ms) and fPaSST.

Paper: Schmid, Morocutti, Foscarin, Schlüter, Primus, Widmer, "Effective Pre-Training of Audio
Transformers for Sound Event Detection", ICASSP 2025, https://arxiv.org/abs/2409.09546.
Upstream code and weights: https://github.com/fschmid56/PretrainedSED (MIT), release v0.0.1.
This is a re-implementation with upstream's module nesting, so checkpoints map onto it by prefix
renames (:mod:`audiozoo.converters.pretrainedsed`).

Both backbones read PretrainedSED's 16 kHz log-mel (the ``stft_mel`` frontend with n_fft 512, a
400-sample Hann window, hop 160, 128 Kaldi bins from 0 to 7 kHz, ``ln(max(x, 1e-7))``;
symmetric window for frame_mn, periodic for fPaSST) and return one feature per 40 ms: a 10 s
clip (1000 spectrogram frames) gives 250 frames. The released checkpoints carry PretrainedSED's
heads over the 447 AudioSet-Strong classes (:class:`~audiozoo.heads.SEDHead`); run like
upstream's ``inference.py``, audio of any length is cut into 10 s chunks, the last one
zero-padded, and the frame outputs are concatenated and cut to the real length.

**frame_mn** (``frame_mn06``, ``frame_mn10``): EfficientAT's MobileNetV3
(:mod:`audiozoo.backbones.layers.mobilenet`: same blocks, channels, squeeze-excitation, BatchNorm)
with a (frequency, time) stride per block, so that frequency is reduced 128 -> 1 and time only 4x.
Layout of ``features`` (frame_mn10, input (B, 1, 128, 1000))::

    features.0      stem: 3x3 conv stride (2, 2) + BN + Hardswish    (B, 16, 64, 500)
    features.1      block 0, stride (1, 1)                          (B, 16, 64, 500)
    features.2      block 1, stride (2, 2)                          (B, 24, 32, 250)
    features.3-15   blocks 2-14: frequency strides only             (B, 160, 1, 250)
    features.16     1x1 conv + BN + Hardswish                       (B, 960, 1, 250)

A block has a residual connection iff both of its strides are 1 and its input and output widths
agree (so blocks 2, 5, 7 and 14 lose the one they have in EfficientAT's MN).

**fPaSST** (``fpasst``): a PaSST whose tokens are frames. Three 3x3 convolutions with GELU
(1 -> 16 -> 32 -> 64 channels, strides 2, 1, 2) turn (B, 1, 128, T) into (B, 64, 32, T / 4); a
*raw memory reshape* (no permute) reads that as (B, 16, 128, T / 4), i.e. new channel ``c // 4``
and new frequency ``(c % 4) * 32 + f``; a (128, 2) convolution with padding (0, 1) embeds each
frame (its first output frame is dropped); 250 time positions (sliced to the input length) plus a
frequency position are added; the cls and dist tokens go in front and the PaSST / DeiT
transformer blocks (:mod:`audiozoo.backbones.layers`) follow. The backbone output is the frame
tokens after the final LayerNorm. The released model is DeiT-B/384 sized (12 blocks, width 768,
12 heads); depth, width and heads are arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .._errors import InvalidAudioError, RegistryError
from ..pretrained import PretrainedCfg
from .base import Features, check_spectrogram, register_backbone
from .layers.deit import PaSSTBackbone
from .layers.efficientat import SEMobileNet, check_se_dims
from .layers.mobilenet import block_configs, conv_out_size

__all__ = ["FRAME_MN_STRIDES", "FrameMobileNet", "FramePaSST"]

# (frequency, time) stride of the depthwise conv of blocks 0..14 (PretrainedSED's defaults):
# frequency 128 -> 64 (stem) -> 1, time 1000 -> 500 (stem) -> 250 (block 1).
FRAME_MN_STRIDES: tuple[tuple[int, int], ...] = tuple(
    zip(
        (1, 2, 2, 1, 1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 2),
        (1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        strict=True,
    )
)


# ---------------------------------------------------------------------------------------------
# frame_mn


class FrameMobileNet(SEMobileNet):
    """PretrainedSED's frame_mn: spectrogram (B, 1, F, T) -> frame features (B, C, F', T').

    With the default strides and 128 mel bins ``F' = 1`` and ``T' = ceil(ceil(T / 2) / 2)``
    (250 for 1000 frames); ``C = 6 * make_divisible(160 * width_mult)`` (576 for frame_mn06, 960
    for frame_mn10). Any length works (fully convolutional).

    Args:
        width_mult: channel multiplier (0.6 for frame_mn06, 1.0 for frame_mn10).
        strides: 15 (frequency, time) strides, one per inverted-residual block.
        se_dims: squeeze-excitation axes ("c" in every released model; "f"/"t" need the input
            size ``input_dim_f`` x ``input_dim_t``); "" or "none" disables SE.
        se_agg: fusion of concurrent SEs: "max", "avg", "add" or "min".
        se_r: SE bottleneck ratio.
        input_dim_f, input_dim_t: spectrogram size that frequency/time SE are built for.

    Attributes:
        features: ``nn.Sequential`` of the stem, 15 blocks
            (:class:`~audiozoo.backbones.layers.mobilenet.InvertedResidual`) and the last 1x1
            conv, with EfficientAT's module nesting.
    """

    display_name = "frame_mn"

    def __init__(
        self,
        width_mult: float = 1.0,
        strides: Sequence[Sequence[int]] = FRAME_MN_STRIDES,
        se_dims: str = "c",
        se_agg: str = "max",
        se_r: int = 4,
        input_dim_f: int = 128,
        input_dim_t: int = 1000,
    ) -> None:
        strides = tuple((int(f), int(t)) for f, t in strides)
        if len(strides) != 15 or any(s not in (1, 2) for pair in strides for s in pair):
            raise RegistryError(
                f"strides must be 15 (frequency, time) pairs of 1 or 2, got {strides}"
            )
        se_dims = check_se_dims(se_dims)
        base, _ = block_configs(width_mult)
        cfgs = [
            dataclasses.replace(c, stride=(s[0], s[1])) for c, s in zip(base, strides, strict=True)
        ]
        super().__init__(cfgs, se_dims, se_agg, se_r, input_dim_f, input_dim_t)
        self.width_mult = width_mult
        self.strides = strides


# ---------------------------------------------------------------------------------------------
# fPaSST


class FramePatchEmbed(nn.Module):
    """fPaSST's frame embedding: a (F, 2) convolution with padding (0, 1), first frame dropped.

    Shapes:
        (B, in_chans, F, T) -> (B, D, 1, T): output frame ``t`` sees input frames ``t - 1`` and
        ``t`` (frame -1 is the zero padding).
    """

    def __init__(self, embed_dim: int, in_chans: int = 16, num_freq: int = 128) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=(num_freq, 2), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)[..., 1:]


class FramePaSST(PaSSTBackbone):
    """PretrainedSED's frame-level PaSST: spectrogram (B, 1, F, T) -> frame tokens.

    Returns :class:`Features` with ``grid`` (B, D, 1, T') — the frame tokens after the final
    LayerNorm, ``T' = ceil(ceil(T / 2) / 2)`` (250 for 10 s) — and no summary token: the cls and
    dist tokens take part in attention but their outputs are dropped, as upstream does, so the
    clip embedding is the frames' mean (what the weak head reads).

    Args:
        embed_dim: token width ``D`` (768 for the released model).
        depth: number of transformer blocks (12).
        num_heads: attention heads (12).
        mlp_ratio: MLP hidden width / ``D``.
        input_fdim: mel bins (128); a multiple of 4.
        pos_embed_length: time positions (250 = 10 s); longer inputs are refused (AudioModel
            cuts them into windows), shorter ones use the leading positions (a random offset
            in training, as upstream).
        frame_patchout: frames dropped at random in training (0 for the released model).
        norm_eps: LayerNorm epsilon of the blocks and the final norm.
        drop_rate: dropout after the attention projection, in the MLPs and on the tokens.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.
    """

    max_frames: int

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        input_fdim: int = 128,
        pos_embed_length: int = 250,
        frame_patchout: int = 0,
        norm_eps: float = 1e-6,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if input_fdim % 4:
            raise RegistryError(f"input_fdim must be a multiple of 4, got {input_fdim}")
        if frame_patchout < 0:
            raise RegistryError(f"frame_patchout must be >= 0, got {frame_patchout}")
        self.input_fdim = input_fdim
        self.pos_embed_length = pos_embed_length
        self.frame_patchout = frame_patchout
        self.time_stride = 4
        # the longest spectrogram whose frames all have a time position: T' <= pos_embed_length
        self.max_frames = 4 * pos_embed_length

        self.conv_in_1 = nn.Conv2d(1, 16, kernel_size=3, stride=2, padding=1)
        self.conv_in_2 = nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1)
        self.conv_in_3 = nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1)
        self.act = nn.GELU()
        # (B, 64, F / 4, T') read as (B, 64 * (F / 4) / F, F, T') = (B, 16, F, T')
        self.patch_embed = FramePatchEmbed(embed_dim, 16, input_fdim)
        self._add_summary_tokens(embed_dim)
        self._add_positions(embed_dim, 1, pos_embed_length)
        self._add_blocks(
            depth, num_heads, mlp_ratio, norm_eps, drop_rate, attn_drop_rate, drop_path_rate
        )
        self._init_weights()

    def num_output_frames(self, num_frames: int) -> int:
        """``T'`` in eval mode (training with frame patchout removes ``frame_patchout`` more)."""
        t = conv_out_size(conv_out_size(num_frames, 3, 2, 1), 3, 2, 1)
        return t

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T) normalised log-mel. Returns: grid (B, D, 1, T'), no token."""
        self._check_input(spec)
        b, _, f, _ = spec.shape
        x = self.act(self.conv_in_1(spec))
        x = self.act(self.conv_in_2(x))
        x = self.act(self.conv_in_3(x))  # (B, 64, F / 4, T')
        # Raw reshape, as upstream: channel c, frequency f -> channel c // 4, (c % 4) * F/4 + f.
        x = x.reshape(b, x.shape[1] * x.shape[2] // f, f, x.shape[3])  # (B, 16, F, T')
        x = self.patch_embed(x)  # (B, D, 1, T')
        t = x.shape[-1]
        if self.training and t < self.pos_embed_length:
            offset = int(torch.randint(1 + self.pos_embed_length - t, (1,)))
        else:
            offset = 0
        x = self._add_grid_positions(x, offset)
        if self.training and self.frame_patchout:
            keep = max(t - self.frame_patchout, 1)
            index = torch.randperm(t, device=x.device)[:keep].sort().values
            x = x.index_select(3, index)
        frames = x.flatten(2).transpose(1, 2)  # (B, T', D)
        tokens, _ = self._encode(self._with_summary_tokens(frames))
        # no summary token: upstream drops the cls/dist outputs (no loss ever trained them as a
        # clip summary), and its weak head reads the frames' mean, which pooled() then gives
        return Features(grid=tokens.transpose(1, 2).unsqueeze(2))  # (B, D, 1, T')

    def _token_grid(self, num_tokens: int, spec: torch.Tensor) -> tuple[int, int]:
        """One row of frames: (1, T')."""
        return 1, num_tokens

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """Tokens (B, 2 + T', D) of a block -> the frame grid (B, D, 1, T'); the class and
        distillation tokens are dropped, as in the output."""
        return Features(grid=super().layer_features(index, hidden, spec).grid)

    def _check_input(self, spec: torch.Tensor) -> None:
        check_spectrogram(spec, "fPaSST", self.input_fdim)
        if spec.shape[-1] > self.max_frames:
            raise InvalidAudioError(
                f"fPaSST has {self.pos_embed_length} time positions, i.e. at most "
                f"{self.max_frames} spectrogram frames, got {spec.shape[-1]}. AudioModel cuts "
                "longer audio into windows; when calling the backbone directly, cut the "
                "spectrogram."
            )

    def _embed_modules(self) -> dict[str, nn.Module]:
        """The convolutional stem and the frame embedding."""
        return {
            "conv_in_1": self.conv_in_1,
            "conv_in_2": self.conv_in_2,
            "conv_in_3": self.conv_in_3,
            "patch_embed": self.patch_embed,
        }


# ---------------------------------------------------------------------------------------------
# Weights: the AudioSet-Strong students of the v0.0.1 release (447 classes, 40 ms frames)

FAMILY = "PretrainedSED (frame-level, AudioSet-Strong)"
_RELEASE = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"
_PAPER = "https://arxiv.org/abs/2409.09546"
_CITATION = """@inproceedings{schmid2025effective,
  title     = {Effective Pre-Training of Audio Transformers for Sound Event Detection},
  author    = {Schmid, Florian and Morocutti, Tobias and Foscarin, Francesco and
               Schl{\\"u}ter, Jan and Primus, Paul and Widmer, Gerhard},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2025}
}"""

# PretrainedSED's 16 kHz AugmentMelSTFT: the stft_mel arguments that differ from its defaults
# (fmax follows as 8000 - 2000 // 2 = 7000 Hz). frame_mn uses a symmetric Hann window, fPaSST
# the periodic one (its wrapper leaves the class default).
SED_FRONTEND: dict[str, Any] = {
    "name": "stft_mel",
    "sample_rate": 16000,
    "n_fft": 512,
    "win_length": 400,
    "hop_length": 160,
    "log_mode": "clamp",
    "log_eps": 1e-7,
}
FPASST_FRONTEND: dict[str, Any] = {**SED_FRONTEND, "periodic_window": True}

_STRONG_NOTE = (
    "AudioSet-Strong student of the PretrainedSED pipeline (knowledge distillation from a "
    "transformer ensemble): per-frame logits over 447 classes every 40 ms (model(wave)) and "
    "clip logits of the weak head (model.clip_logits(wave)). Trained on 10 s clips at 16 kHz; "
    "longer audio runs as consecutive 10 s windows, as upstream's inference.py does."
)


def _strong(
    arch: str, filename: str, converter: str, frontend: dict[str, Any], **kw: Any
) -> PretrainedCfg:
    return PretrainedCfg(
        arch=arch,
        tag="as_strong",
        url=_RELEASE + filename,
        converter=converter,
        frontend=frontend,
        head={"name": "sed"},
        label_set="audioset_strong",
        license="MIT",
        citation=_CITATION,
        paper=_PAPER,
        **kw,
    )


FRAME_MN06_WEIGHTS = [
    _strong(
        "frame_mn06",
        "frame_mn06_strong_1.pt",
        "pretrainedsed_frame_mn",
        SED_FRONTEND,
        notes=_STRONG_NOTE
        + " Low-complexity model (1.62 M parameters); PretrainedSED publishes no AudioSet-Strong "
        "score for it (its README lists the file as frame_mn06.pt).",
    )
]
FRAME_MN10_WEIGHTS = [
    _strong(
        "frame_mn10",
        "frame_mn10_strong_1.pt",
        "pretrainedsed_frame_mn",
        SED_FRONTEND,
        notes=_STRONG_NOTE
        + " Low-complexity model (3.83 M parameters); PretrainedSED publishes no AudioSet-Strong "
        "score for it (its README lists the file as frame_mn10.pt).",
    )
]
FPASST_WEIGHTS = [
    _strong(
        "fpasst",
        "fpasst_strong_1.pt",
        "pretrainedsed_fpasst",
        FPASST_FRONTEND,
        metrics={"audioset_strong_PSDS1": 0.454},
        notes=_STRONG_NOTE
        + " PSDS1 0.454 is the paper's mean over three training runs; the released file is one "
        "of them.",
    ),
    PretrainedCfg(
        arch="fpasst",
        tag="as_weak",
        url=_RELEASE + "fpasst_weak.pt",
        converter="pretrainedsed_fpasst",
        frontend=FPASST_FRONTEND,
        head={"name": "sed", "num_classes": 447},
        license="MIT",
        citation=_CITATION,
        paper=_PAPER,
        notes="Step 2 of the PretrainedSED pipeline: fPaSST (ImageNet DeiT initialisation) "
        "trained on AudioSet's weak (clip-level) labels, the starting point of the "
        "AudioSet-Strong training and of downstream fine-tuning. Use it with a new head, e.g. "
        "create('fpasst.as_weak', head='sed', num_classes=K) or head='frame', as upstream does "
        "(its loader drops heads whose class count differs). No label set: the class layout of "
        "this file's heads is not documented upstream; loading it with its own 447-class sed "
        "head fails with a CheckpointError naming the shapes if it differs.",
    ),
]


# ---------------------------------------------------------------------------------------------
# Registration. frame_mn's width and fPaSST's size are builder defaults that kwargs override
# (create("fpasst", embed_dim=192, depth=2, num_heads=3) builds the reduced parity model).


@register_backbone(
    "frame_mn06", weights=FRAME_MN06_WEIGHTS, family=FAMILY, test_kwargs={"width_mult": 0.1}
)
def frame_mn06(**kwargs: Any) -> FrameMobileNet:
    """frame_mn at width 0.6 (576-d frames)."""
    return FrameMobileNet(**{"width_mult": 0.6, **kwargs})


@register_backbone(
    "frame_mn10", weights=FRAME_MN10_WEIGHTS, family=FAMILY, test_kwargs={"width_mult": 0.1}
)
def frame_mn10(**kwargs: Any) -> FrameMobileNet:
    """frame_mn at width 1.0 (960-d frames)."""
    return FrameMobileNet(**{"width_mult": 1.0, **kwargs})


@register_backbone(
    "fpasst",
    weights=FPASST_WEIGHTS,
    family=FAMILY,
    test_kwargs={"embed_dim": 32, "depth": 1, "num_heads": 2},
)
def fpasst(**kwargs: Any) -> FramePaSST:
    """fPaSST at DeiT-B/384 size: 12 blocks, width 768, 12 heads."""
    return FramePaSST(**kwargs)
