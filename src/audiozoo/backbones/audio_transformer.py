"""The 16 kHz audio transformer of CED and Dasheng (one design, two checkpoint families).

- **CED** (Consistent Ensemble Distillation): Dinkel, Wang, Yan, Zhang, Wang: "CED: Consistent
  ensemble distillation for audio tagging", ICASSP 2024, https://arxiv.org/abs/2308.11957.
  AudioSet taggers from 5.5 M (tiny) to 86 M (base) parameters. Weights: Zenodo records 8275347
  and 8275319, Hugging Face ``mispeech/ced-*``. The training code (RicherMans/CED) is GPL-3.0;
  this module is written from the published architecture and its observed behaviour, not from
  that code.
- **Dasheng** (Deep Audio-Signal Holistic Embeddings): Dinkel, Yan, Wang, Zhang, Wang, Wang:
  "Scaling up masked audio encoder learning for general audio classification", Interspeech 2024,
  https://arxiv.org/abs/2406.06992. Masked-autoencoder encoders of 86 M, 0.6 B and 1.2 B
  parameters (pip ``dasheng``, Apache-2.0; Zenodo record 11511780, Hugging Face
  ``mispeech/dasheng-*``), and an AudioSet fine-tune of the base model (Zenodo 13315686).

Both take the same 64-bin log-mel spectrogram (16 kHz, 32 ms window, 10 ms hop, dB with a
120 dB floor; the ``mel`` frontend with the options in the weight tables below) and differ only in
the patch shape and in how inputs longer than the trained length are split:

1. a learned BatchNorm over the 64 mel bins (upstream ``init_bn``; it belongs to the checkpoint,
   so it is the first layer of the backbone, not part of the frontend);
2. non-overlapping patches by one strided convolution: 16 x 16 (CED: a (4, T/16) grid, one time
   step per 160 ms) or 64 x 4 (Dasheng: a (1, T/4) grid, one time step per 40 ms);
3. separate learned positional embeddings for time, (1, D, 1, T'max), sliced to the input's T',
   and frequency, (1, D, F', 1), added to the patch grid (time first);
4. the grid flattened frequency-major into tokens (token ``f * T' + t``), pre-norm ViT blocks
   (fused qkv, LayerNorm eps 1e-6, exact GELU), a final LayerNorm; no summary token.

Inputs longer than the trained length (``target_length`` frames: 1012 for CED, 1008 for Dasheng)
are split inside the backbone, exactly as upstream does, because both upstream models split the
*normalised spectrogram of the whole clip* (one mel computation, one BatchNorm), which windowing
the waveform (AudioModel's ``max_frames`` windows) would not reproduce:

- ``long_input="average"`` (CED): the spectrogram is cut into ``target_length``-frame chunks, the
  last one zero-padded *after* the BatchNorm, every chunk runs through the transformer on its own,
  and clip outputs are the mean over chunks: :attr:`Features.token` is the mean of the chunks'
  token means (padding tokens included, as upstream) and :attr:`Features.chunk_tokens` holds the
  per-chunk means, from which the CED head computes upstream's mean of per-chunk probabilities
  (``LinearHead(chunk_average="probs")``). The frame grid concatenates the chunks' grids; since
  1012 frames are 63 whole patches plus 4 frames, each chunk boundary skips those 4 frames
  (40 ms), so frames after the k-th boundary are ``k * 40 ms`` later than ``t * frame_hop``
  (upstream has no frame output; pass ``target_length=1008`` for an exact 160 ms grid, which
  changes the clip outputs of long inputs slightly). Upstream drops the last chunk when the input
  is an exact multiple of 1012 frames; audiozoo keeps it.
- ``long_input="concat"`` (Dasheng): the patch grid of the whole clip is cut into chunks of
  ``target_length // 4 = 252`` time steps (10.08 s), every chunk (the last one shorter, not padded)
  runs on its own with time positions starting at 0, and the frame outputs are concatenated: an
  exact 40 ms grid. The clip embedding is the mean over all frames.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import InvalidAudioError
from ..pretrained import PretrainedCfg
from .base import Backbone, Features, check_spectrogram, register_backbone
from .layers import Block, ParamStage, init_vit_weights

__all__ = ["AudioTransformer"]

_LONG_INPUT = ("average", "concat")


class AudioTransformer(Backbone):
    """CED / Dasheng backbone: log-mel (B, 1, n_mels, T) in dB -> patch-token grid.

    Args:
        patch_size: ``(freq, time)`` patch size: (16, 16) for CED, (64, 4) for Dasheng.
        patch_stride: ``(freq, time)`` stride; None means ``patch_size`` (no overlap, as every
            released model).
        n_mels: mel bins of the input (64).
        target_length: spectrogram frames of a training clip (1012 CED, 1008 Dasheng). Sets the
            time positional embedding (``target_length // time stride`` positions) and the chunk
            length for longer inputs.
        embed_dim: token width ``D``.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        qkv_bias: bias in the fused qkv projection.
        norm_eps: LayerNorm epsilon of the blocks and the final norm.
        init_bn: learned BatchNorm over the mel bins before the patches (upstream ``init_bn``).
        bn_momentum: that BatchNorm's momentum (0.01 upstream).
        long_input: how inputs longer than ``target_length`` frames are split: ``"average"``
            (CED) or ``"concat"`` (Dasheng); see the module docstring.
        drop_rate: dropout after the positional embeddings, attention projections and MLPs.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.

    Shapes:
        spec (B, 1, n_mels, T) with ``T >= patch time size`` (AudioModel pads shorter clips) ->
        :class:`Features` with grid (B, D, F', T') and token (B, D); ``chunk_tokens`` (B, K, D)
        when ``long_input="average"`` split the input into K > 1 chunks.
    """

    def __init__(
        self,
        patch_size: tuple[int, int] = (16, 16),
        patch_stride: tuple[int, int] | None = None,
        n_mels: int = 64,
        target_length: int = 1012,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        init_bn: bool = True,
        bn_momentum: float = 0.01,
        long_input: str = "average",
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        patch_size = (int(patch_size[0]), int(patch_size[1]))
        stride = (
            patch_size if patch_stride is None else (int(patch_stride[0]), int(patch_stride[1]))
        )
        if long_input not in _LONG_INPUT:
            raise ValueError(f'long_input must be "average" or "concat", got {long_input!r}')
        if not (0 < patch_size[0] <= n_mels and patch_size[1] > 0 and min(stride) > 0):
            raise ValueError(f"patch {patch_size} / stride {stride} do not fit {n_mels} mels")
        if target_length < patch_size[1]:
            raise ValueError(f"target_length {target_length} is shorter than one patch")
        self.patch_size, self.patch_stride = patch_size, stride
        self.n_mels, self.target_length = n_mels, target_length
        self.long_input = long_input
        self.num_features = embed_dim
        self.time_stride = stride[1]
        self.min_frames = patch_size[1]
        self.max_frames = None  # any length: long inputs are split inside (module docstring)

        # Grid sizes as upstream: integer division of the trained input size by the stride.
        self.grid_f = n_mels // stride[0]
        self.grid_t = target_length // stride[1]
        if (n_mels - patch_size[0]) // stride[0] + 1 != self.grid_f:
            raise ValueError(f"patch {patch_size} / stride {stride} do not tile {n_mels} mels")

        self.init_bn = nn.BatchNorm1d(n_mels, momentum=bn_momentum) if init_bn else nn.Identity()
        self.patch_embed = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=stride)
        self.time_pos_embed = nn.Parameter(torch.empty(1, embed_dim, 1, self.grid_t))
        self.freq_pos_embed = nn.Parameter(torch.empty(1, embed_dim, self.grid_f, 1))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        # The blocks hold almost all weights (1.2 B for dasheng_12b): build them without
        # PyTorch's default initialisation and initialise once below.
        with torch.device("meta"):
            blocks = [
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio,
                    qkv_bias,
                    norm_eps,
                    drop_rate,
                    attn_drop_rate,
                    r,
                )
                for r in rates
            ]
        device = self.time_pos_embed.device
        self.blocks = nn.Sequential(*blocks).to_empty(device=device)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        nn.init.trunc_normal_(self.time_pos_embed, std=0.02)
        nn.init.trunc_normal_(self.freq_pos_embed, std=0.02)
        self.blocks.apply(init_vit_weights)

    # ------------------------------------------------------------------ shapes
    def _patches(self, frames: int) -> int:
        """Time steps of the patch grid of ``frames`` spectrogram frames (0 if under one patch)."""
        pt, st = self.patch_size[1], self.patch_stride[1]
        return (frames - pt) // st + 1 if frames >= pt else 0

    def num_output_frames(self, num_frames: int) -> int:
        """``T'``: for ``"average"`` every chunk counts whole, padding included."""
        if self.long_input == "average" and num_frames > self.target_length:
            return math.ceil(num_frames / self.target_length) * self._patches(self.target_length)
        return self._patches(num_frames)

    # ------------------------------------------------------------------ forward
    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, n_mels, T) log-mel in dB. Returns: :class:`Features`."""
        self._check_input(spec)
        x = self.init_bn(spec[:, 0]).unsqueeze(1)  # BatchNorm per mel bin over (B, T)
        if self.long_input == "average":
            return self._average(x)
        return self._concat(x)

    def _encode(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch grid (N, D, F', t), t <= grid_t -> tokens after the final norm (N, F' * t, D)."""
        x = patches + self.time_pos_embed[..., : patches.shape[-1]]
        x = x + self.freq_pos_embed
        x = self.pos_drop(x.flatten(2).transpose(1, 2))  # frequency-major: token f * t + j
        return self.norm(self.blocks(x))

    @staticmethod
    def _grid(tokens: torch.Tensor, f: int, t: int) -> torch.Tensor:
        """Tokens (N, F' * t, D) -> grid (N, D, F', t)."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], f, t)

    def _average(self, x: torch.Tensor) -> Features:
        """CED: target_length-frame chunks, the last zero-padded; outputs averaged."""
        b, _, f_bins, frames = x.shape
        length = self.target_length
        if frames <= length:
            patches = self.patch_embed(x)
            grid = self._grid(self._encode(patches), *patches.shape[2:])
            return Features(grid=grid, token=grid.mean(dim=(2, 3)))
        k = math.ceil(frames / length)
        x = F.pad(x, (0, k * length - frames))  # zeros in the normalised domain, as upstream
        # (B, 1, F, K * L) -> (B * K, 1, F, L): chunk j of clip i at row i * K + j
        x = x.reshape(b, f_bins, k, length).transpose(1, 2).reshape(b * k, 1, f_bins, length)
        patches = self.patch_embed(x)
        fp, tp = patches.shape[2:]
        return self._join_averaged(self._grid(self._encode(patches), fp, tp), b, k)

    @staticmethod
    def _join_averaged(grid: torch.Tensor, b: int, k: int) -> Features:
        """Chunk grids (B * K, D, F', t) of ``"average"`` -> the clip's Features."""
        _, d, fp, tp = grid.shape
        chunk_tokens = grid.mean(dim=(2, 3)).reshape(b, k, -1)
        # (B * K, D, F', t) -> (B, D, F', K * t): the chunks' grids side by side in time
        grid = grid.reshape(b, k, d, fp, tp).permute(0, 2, 3, 1, 4).reshape(b, d, fp, k * tp)
        return Features(grid=grid, token=chunk_tokens.mean(dim=1), chunk_tokens=chunk_tokens)

    @staticmethod
    def _join_whole(whole: torch.Tensor, b: int, full: int) -> torch.Tensor:
        """Grids (B * full, D, F', n) of ``"concat"``'s whole chunks -> (B, D, F', full * n)."""
        _, d, fp, n = whole.shape
        return whole.reshape(b, full, d, fp, n).permute(0, 2, 3, 1, 4).reshape(b, d, fp, -1)

    def _concat(self, x: torch.Tensor) -> Features:
        """Dasheng: the patch grid cut into grid_t-step chunks, outputs concatenated."""
        patches = self.patch_embed(x)  # (B, D, F', T')
        b, d, fp, tp = patches.shape
        n = self.grid_t
        if tp <= n:
            grid = self._grid(self._encode(patches), fp, tp)
            return Features(grid=grid, token=grid.mean(dim=(2, 3)))
        full = tp // n  # whole chunks, in one batch: (B, D, F', full * n) -> (B * full, D, F', n)
        whole = patches[..., : full * n].reshape(b, d, fp, full, n).permute(0, 3, 1, 2, 4)
        whole = self._grid(self._encode(whole.reshape(b * full, d, fp, n)), fp, n)
        parts = [self._join_whole(whole, b, full)]
        if tp > full * n:  # the shorter last chunk on its own, not padded
            rest = patches[..., full * n :]
            parts.append(self._grid(self._encode(rest), fp, rest.shape[-1]))
        grid = torch.cat(parts, dim=-1)
        return Features(grid=grid, token=grid.mean(dim=(2, 3)))

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """Tokens (N, F' * t, D) of a stage, one entry per transformer pass of the forward (the
        chunks of a long input), joined into the clip's grid exactly as the output is: CED's
        chunks averaged (``chunk_tokens``), Dasheng's whole chunks and shorter rest concatenated.
        The clip embedding is the grid mean, as for the output."""
        b, frames = spec.shape[0], spec.shape[-1]
        grids = [self._grid(h, self.grid_f, h.shape[1] // self.grid_f) for h in hidden]
        if self.long_input == "average" and frames > self.target_length:
            (grid,) = grids
            return self._join_averaged(grid, b, math.ceil(frames / self.target_length))
        if self.long_input == "concat" and self._patches(frames) > self.grid_t:
            parts = [self._join_whole(grids[0], b, self._patches(frames) // self.grid_t)]
            grid = torch.cat(parts + grids[1:], dim=-1)
        else:
            (grid,) = grids
        return Features(grid=grid, token=grid.mean(dim=(2, 3)))

    def _check_input(self, spec: torch.Tensor) -> None:
        check_spectrogram(spec, type(self).__name__, self.n_mels, "a log-mel spectrogram")
        if spec.shape[-1] < self.min_frames:
            raise InvalidAudioError(
                f"{type(self).__name__} needs at least {self.min_frames} frames (one patch), got "
                f"{spec.shape[-1]}; AudioModel pads shorter clips"
            )

    def stages(self) -> list[nn.Module]:
        """BatchNorm, patch embedding and positional embeddings; each block; the final norm."""
        embed = ParamStage(
            {"init_bn": self.init_bn, "patch_embed": self.patch_embed},
            {"time_pos_embed": self.time_pos_embed, "freq_pos_embed": self.freq_pos_embed},
        )
        return [embed, *self.blocks, self.norm]


# ---------------------------------------------------------------------------------------------
# Weight tables. Both families use the same frontend: the ``mel`` frontend at 16 kHz with
# torchaudio ``MelSpectrogram(n_fft=512, win_length=512, hop_length=160, n_mels=64, f_max=8000)``
# + ``AmplitudeToDB(top_db=120)`` semantics (HTK scale, power 2, periodic Hann, reflect padding).
# The one difference: torchaudio applies the 120 dB floor below the maximum of the *whole batch*
# for (B, F, T) input, audiozoo below each clip's own maximum, so a clip's output does not depend
# on what it is batched with. The two agree whenever no value of a clip lies more than 120 dB
# below the batch maximum (always for batches of one).

MEL_16K = {
    "name": "mel",
    "sample_rate": 16000,
    "n_fft": 512,
    "win_length": 512,
    "hop_length": 160,
    "n_mels": 64,
    "log": "db",
    "top_db": 120.0,
}
_AS = "audioset_mAP"
_ZENODO = "https://zenodo.org/records/{}/files/{}?download=1"

_CED_CITATION = """@inproceedings{dinkel2024ced,
  author    = {Heinrich Dinkel and Yongqing Wang and Zhiyong Yan and Junbo Zhang and Yujun Wang},
  title     = {{CED}: Consistent Ensemble Distillation for Audio Tagging},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2024},
}"""
_DASHENG_CITATION = """@inproceedings{dinkel2024dasheng,
  author    = {Heinrich Dinkel and Zhiyong Yan and Yongqing Wang and Junbo Zhang and Yujun Wang
               and Bin Wang},
  title     = {Scaling up masked audio encoder learning for general audio classification},
  booktitle = {Interspeech 2024},
  year      = {2024},
}"""


def _ced(arch: str, file: str, mAP: float, record: str, other: str) -> PretrainedCfg:
    return PretrainedCfg(
        arch=arch,
        tag="as",
        url=_ZENODO.format(record, file),
        alt_urls=(_ZENODO.format(other, file),),
        converter="audio_transformer",
        frontend=MEL_16K,
        # LayerNorm (eps 1e-5) + Linear on the token mean. Upstream applies a sigmoid and, for
        # inputs over 10.12 s, averages the chunks' probabilities; audiozoo returns logits whose
        # sigmoid is exactly that average (chunk_average="probs").
        head={"name": "linear", "norm": True, "chunk_average": "probs"},
        label_set="audioset",
        license="Apache-2.0",
        citation=_CED_CITATION,
        paper="https://arxiv.org/abs/2308.11957",
        metrics={_AS: mAP},
        notes=(
            "AudioSet-2M tagger distilled from a teacher ensemble. Returns logits (upstream "
            "returns sigmoid probabilities). Class order: AudioSet class_labels_indices. The "
            f"same weights are on the Hugging Face Hub as mispeech/{arch.replace('_', '-')} "
            "(Apache-2.0 per its model card); the converter reads both formats. Inputs over "
            "1012 frames (10.12 s) run in 10.12 s chunks whose outputs are averaged, as upstream."
        ),
    )


CED_TINY = [_ced("ced_tiny", "audiotransformer_tiny_mAP_4814.pt", 0.4814, "8275347", "8275319")]
CED_MINI = [_ced("ced_mini", "audiotransformer_mini_mAP_4896.pt", 0.4896, "8275347", "8275319")]
CED_SMALL = [_ced("ced_small", "audiotransformer_small_mAP_4958.pt", 0.4958, "8275319", "8275347")]
CED_BASE = [_ced("ced_base", "audiotransformer_base_mAP_4999.pt", 0.4999, "8275347", "8275319")]


def _dasheng(
    arch: str, tag: str, url: str, *, head: dict[str, Any], notes: str, **kw: Any
) -> PretrainedCfg:
    return PretrainedCfg(
        arch=arch,
        tag=tag,
        url=url,
        converter="audio_transformer",
        frontend=MEL_16K,
        head=head,
        license="Apache-2.0",
        citation=_DASHENG_CITATION,
        paper="https://arxiv.org/abs/2406.06992",
        notes=notes,
        **kw,
    )


def _ssl(arch: str, file: str, hub: str) -> PretrainedCfg:
    return _dasheng(
        arch,
        "ssl",
        _ZENODO.format("11511780", file),
        head={"name": "identity"},
        notes=(
            "Self-supervised (masked autoencoder) encoder trained on 272k hours of audio: "
            "embeddings only, 40 ms frames (embed(frames=True)). The same weights are on the "
            f"Hugging Face Hub as {hub}; the converter reads both formats."
        ),
    )


DASHENG_BASE = [
    _ssl("dasheng_base", "dasheng_base.pt", "mispeech/dasheng-base"),
    _dasheng(
        "dasheng_base",
        "as",
        _ZENODO.format("13315686", "dasheng_audioset_mAP497.pt"),
        head={"name": "linear", "norm": True},
        label_set="audioset",
        metrics={_AS: 0.497},
        notes=(
            "Dasheng-base fine-tuned on AudioSet-2M (the dasheng README's FAQ). Returns logits "
            "(upstream applies a sigmoid): LayerNorm + Linear on the mean of all 40 ms frames."
        ),
    ),
]
DASHENG_06B = [_ssl("dasheng_06b", "dasheng_06b.pt", "mispeech/dasheng-0.6B")]
DASHENG_12B = [_ssl("dasheng_12b", "dasheng_12b.pt", "mispeech/dasheng-1.2B")]


# ---------------------------------------------------------------------------------------------
# Registration. Builders default to their architecture; keyword arguments override.

_TEST = {"embed_dim": 32, "depth": 1, "num_heads": 2}
_CED = {"patch_size": (16, 16), "target_length": 1012, "long_input": "average"}
_DASHENG = {"patch_size": (64, 4), "target_length": 1008, "long_input": "concat"}


def _build(defaults: dict[str, Any], kwargs: dict[str, Any]) -> AudioTransformer:
    return AudioTransformer(**{**defaults, **kwargs})


@register_backbone("ced_tiny", weights=CED_TINY, family="CED", test_kwargs=_TEST)
def ced_tiny(**kwargs: Any) -> AudioTransformer:
    """CED-tiny: width 192, 12 blocks, 3 heads (5.5 M parameters)."""
    return _build({**_CED, "embed_dim": 192, "num_heads": 3}, kwargs)


@register_backbone("ced_mini", weights=CED_MINI, family="CED", test_kwargs=_TEST)
def ced_mini(**kwargs: Any) -> AudioTransformer:
    """CED-mini: width 256, 12 blocks, 4 heads (9.6 M parameters)."""
    return _build({**_CED, "embed_dim": 256, "num_heads": 4}, kwargs)


@register_backbone("ced_small", weights=CED_SMALL, family="CED", test_kwargs=_TEST)
def ced_small(**kwargs: Any) -> AudioTransformer:
    """CED-small: width 384, 12 blocks, 6 heads (22 M parameters)."""
    return _build({**_CED, "embed_dim": 384, "num_heads": 6}, kwargs)


@register_backbone("ced_base", weights=CED_BASE, family="CED", test_kwargs=_TEST)
def ced_base(**kwargs: Any) -> AudioTransformer:
    """CED-base: width 768, 12 blocks, 12 heads (86 M parameters)."""
    return _build({**_CED, "embed_dim": 768, "num_heads": 12}, kwargs)


@register_backbone("dasheng_base", weights=DASHENG_BASE, family="Dasheng", test_kwargs=_TEST)
def dasheng_base(**kwargs: Any) -> AudioTransformer:
    """Dasheng-base: width 768, 12 blocks, 12 heads (86 M parameters)."""
    return _build({**_DASHENG, "embed_dim": 768, "depth": 12, "num_heads": 12}, kwargs)


@register_backbone("dasheng_06b", weights=DASHENG_06B, family="Dasheng", test_kwargs=_TEST)
def dasheng_06b(**kwargs: Any) -> AudioTransformer:
    """Dasheng-0.6B: width 1280, 32 blocks, 16 heads."""
    return _build({**_DASHENG, "embed_dim": 1280, "depth": 32, "num_heads": 16}, kwargs)


@register_backbone("dasheng_12b", weights=DASHENG_12B, family="Dasheng", test_kwargs=_TEST)
def dasheng_12b(**kwargs: Any) -> AudioTransformer:
    """Dasheng-1.2B: width 1536, 40 blocks, 24 heads."""
    return _build({**_DASHENG, "embed_dim": 1536, "depth": 40, "num_heads": 24}, kwargs)
