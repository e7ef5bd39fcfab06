"""PaSST: the Patchout faSt Spectrogram Transformer.

Koutini, Schlüter, Eghbal-zadeh, Widmer: "Efficient Training of Audio Transformers with Patchout",
Interspeech 2022, https://arxiv.org/abs/2110.05069. Upstream: https://github.com/kkoutini/PaSST
and the pip package ``hear21passt`` (https://github.com/kkoutini/passt_hear21), Apache-2.0.

A DeiT-B/384 (distilled) transformer on overlapping 16x16 patches of a (128, T) log-mel
spectrogram. What differs from a ViT:

- separate positional embeddings for frequency (``freq_new_pos_embed``, (1, D, F', 1)) and time
  (``time_new_pos_embed``, (1, D, 1, T'max)), added to the 4-D patch grid; the two summary tokens
  (cls, dist) have their own (``new_pos_embed``, (1, 2, D)). Shorter inputs use the leading time
  positions, as hear21passt does.
- Patchout (training only): structured patchout drops whole time columns / frequency rows of the
  patch grid, unstructured patchout drops single patches, before the transformer. This is the
  regulariser and the speed-up of PaSST training.

The clip embedding is the mean of the cls and dist tokens after the final LayerNorm; the released
classifiers are LayerNorm + Linear on it (our ``linear`` head with ``norm=True``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._errors import InvalidAudioError
from ..pretrained import PretrainedCfg
from .base import Features, check_spectrogram, register_backbone
from .layers import PatchEmbed, key_padding_mask
from .layers.deit import PaSSTBackbone, fill_after_lengths

__all__ = ["PaSST"]

PATCH_SIZE = 16
# The PaSST frontend's value for digital silence: log(0 + 1e-5), then (x + 4.5) / 5.
SILENCE = (math.log(1e-5) + 4.5) / 5.0


class PaSST(PaSSTBackbone):
    """PaSST backbone: spectrogram (B, 1, F, T) -> patch-token grid and summary token.

    Args:
        fstride: patch stride over frequency (10 for PaSST-S; 12, 14, 16 for the ``_sNN`` models).
        tstride: patch stride over time; one output frame per ``tstride`` spectrogram frames.
        input_fdim: mel bins the model was trained with (128).
        input_tdim: spectrogram frames of a training clip (998 for 10 s at hop 320). It sets the
            size of the time positional embedding: ``input_tdim // tstride`` positions, as upstream.
        embed_dim: token width ``D``.
        depth: number of transformer blocks (12 for PaSST-S, 7 for PaSST-L).
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        s_patchout_t: structured patchout: time columns removed in training.
        s_patchout_f: structured patchout: frequency rows removed in training.
        u_patchout: unstructured patchout: patches removed in training (after the structured ones).
        norm_eps: LayerNorm epsilon in the blocks and the final norm.
        drop_rate: dropout after attention projections and in the MLPs.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.
        pad_value: value appended to spectrograms shorter than :attr:`min_frames` (16 frames);
            the default is what the PaSST frontend outputs for silence.

    Patchout is applied only in training mode and only when its count is non-zero; the kept
    positions are drawn at random (shared across the batch), sorted, and gathered with
    ``index_select``. When a count is larger than the grid allows, at least one row, column or
    patch is kept. Patchout changes :attr:`Features.grid`:

    - structured patchout keeps a grid: (B, D, F' - s_patchout_f, T' - s_patchout_t), the kept
      rows and columns in order. Frame-level training therefore sees fewer frames than the
      labels have: train frame heads with ``s_patchout_t=0`` (frequency patchout is harmless,
      frame heads average over frequency).
    - unstructured patchout leaves no grid: ``grid`` is then (B, D, 1, N) with the N kept
      patches in frequency-major order. Only the summary token is meaningful in that case.

    Inputs: ``F`` must equal ``input_fdim``; ``T`` at most :attr:`max_frames` (the last ``T``
    whose patches all have a time position; AudioModel cuts longer audio into windows). Inputs
    shorter than 16 frames are padded with ``pad_value`` at the end.
    """

    max_frames: int  # always bounded: the positional embeddings have a fixed size
    patch_embed: PatchEmbed

    def __init__(
        self,
        fstride: int = 10,
        tstride: int = 10,
        input_fdim: int = 128,
        input_tdim: int = 998,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        s_patchout_t: int = 40,
        s_patchout_f: int = 4,
        u_patchout: int = 0,
        norm_eps: float = 1e-6,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        pad_value: float = SILENCE,
    ) -> None:
        super().__init__()
        if min(s_patchout_t, s_patchout_f, u_patchout) < 0:
            raise ValueError("patchout counts must be >= 0")
        self.fstride, self.tstride = fstride, tstride
        self.input_fdim, self.input_tdim = input_fdim, input_tdim
        self.s_patchout_t = s_patchout_t
        self.s_patchout_f = s_patchout_f
        self.u_patchout = u_patchout
        self.pad_value = pad_value
        self.time_stride = tstride
        self.min_frames = PATCH_SIZE

        self.patch_embed = PatchEmbed(embed_dim, PATCH_SIZE, (fstride, tstride))
        # Upstream sizes the positional embeddings by integer division (timm's grid_size); the
        # checkpoints have these shapes. Time may have one position more than the conv yields
        # for input_tdim frames (stride 12 on 998: 83 vs 82); frequency must match exactly.
        grid_f, grid_t = input_fdim // fstride, input_tdim // tstride
        if self.patch_embed.grid_shape(input_fdim, input_tdim)[0] != grid_f:
            raise ValueError(
                f"fstride {fstride} with input_fdim {input_fdim}: the patch grid has "
                f"{self.patch_embed.grid_shape(input_fdim, input_tdim)[0]} rows but the "
                f"frequency embedding {grid_f}; choose another stride"
            )
        self.grid_f, self.grid_t = grid_f, grid_t
        # Longest input whose last patch still has a time position: (T - 16) // ts + 1 <= grid_t.
        self.max_frames = grid_t * tstride + PATCH_SIZE - 1

        self._add_summary_tokens(embed_dim)
        self._add_positions(embed_dim, grid_f, grid_t)
        self._add_blocks(
            depth, num_heads, mlp_ratio, norm_eps, drop_rate, attn_drop_rate, drop_path_rate
        )
        self._init_weights()

    def num_output_frames(self, num_frames: int) -> int:
        """``T'`` in eval mode (training with time patchout removes ``s_patchout_t`` more)."""
        return self.patch_embed.grid_shape(self.input_fdim, max(num_frames, PATCH_SIZE))[1]

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T) normalised log-mel. Returns: grid (B, D, F', T'), token (B, D)."""
        return self._forward(spec, None)

    supports_lengths = True

    def forward_lengths(self, spec: torch.Tensor, lengths: torch.Tensor) -> Features:
        """Padded spectrograms of different lengths (see :meth:`Backbone.forward_lengths`).

        Frames after a clip's length are set to ``pad_value`` (what a clip shorter than 16
        frames is padded with alone), and the patches that a clip alone would not have (those
        starting after its last whole patch) are hidden from attention: every real token then
        attends to exactly the tokens it attends to alone, with the same positions.
        """
        return self._forward(spec, lengths)

    def _forward(self, spec: torch.Tensor, lengths: torch.Tensor | None) -> Features:
        self._check_input(spec)
        if lengths is not None:
            spec = fill_after_lengths(spec, lengths, self.pad_value)
        if spec.shape[-1] < PATCH_SIZE:
            spec = F.pad(spec, (0, PATCH_SIZE - spec.shape[-1]), value=self.pad_value)
        x = self._add_grid_positions(self.patch_embed(spec))  # (B, D, F', T')
        b, d = x.shape[:2]
        valid = None  # (B, F', T') real patches of a padded batch
        if lengths is not None:
            real = torch.tensor(
                [self.num_output_frames(int(t)) for t in lengths.tolist()], device=x.device
            )
            t_index = torch.arange(x.shape[-1], device=x.device)
            valid = (t_index[None] < real[:, None])[:, None, :].expand(-1, x.shape[2], -1)

        unstructured = self.training and self.u_patchout > 0
        if self.training:
            if self.s_patchout_t:
                keep = _keep_indices(x.shape[3], self.s_patchout_t, x.device)
                x = x.index_select(3, keep)
                valid = None if valid is None else valid.index_select(2, keep)
            if self.s_patchout_f:
                keep = _keep_indices(x.shape[2], self.s_patchout_f, x.device)
                x = x.index_select(2, keep)
                valid = None if valid is None else valid.index_select(1, keep)
        f, t = x.shape[2:]
        patches = x.flatten(2).transpose(1, 2)  # (B, F'*T', D), frequency-major: index f*T' + t
        flat_valid = None if valid is None else valid.flatten(1)
        if unstructured:
            keep = _keep_indices(patches.shape[1], self.u_patchout, x.device)
            patches = patches.index_select(1, keep)
            flat_valid = None if flat_valid is None else flat_valid.index_select(1, keep)

        mask = None
        if flat_valid is not None:
            summary = flat_valid.new_ones((b, 2))
            mask = key_padding_mask(torch.cat((summary, flat_valid), dim=1))
        tokens, token = self._encode(self._with_summary_tokens(patches), mask)

        out = tokens.transpose(1, 2)  # (B, D, N)
        grid = out.reshape(b, d, 1, -1) if unstructured else out.reshape(b, d, f, t)
        return Features(grid=grid, token=token)

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """Tokens (B, 2 + F'*T', D) of a block -> summary token (mean of cls and dist) and grid;
        with unstructured patchout only the (B, D, 1, N) tokens."""
        if self.training and self.u_patchout > 0:
            (tokens,) = hidden
            return Features(grid=tokens[:, 2:].transpose(1, 2)[:, :, None], token=None)
        return super().layer_features(index, hidden, spec)

    def _token_grid(self, num_tokens: int, spec: torch.Tensor) -> tuple[int, int]:
        f = self.patch_embed.grid_shape(spec.shape[2], max(spec.shape[3], PATCH_SIZE))[0]
        if self.training and self.s_patchout_f:
            f = max(f - self.s_patchout_f, 1)
        return f, num_tokens // f

    def _check_input(self, spec: torch.Tensor) -> None:
        check_spectrogram(spec, "PaSST", self.input_fdim)
        if spec.shape[-1] > self.max_frames:
            raise InvalidAudioError(
                f"PaSST was trained on {self.input_tdim}-frame spectrograms and has time "
                f"positions for at most {self.max_frames} frames, got {spec.shape[-1]}. "
                "AudioModel splits longer audio into windows of max_frames; when calling the "
                "backbone directly, cut the spectrogram."
            )


def _keep_indices(n: int, drop: int, device: torch.device) -> torch.Tensor:
    """Sorted random indices of ``n - drop`` kept positions out of ``n`` (at least one)."""
    keep = max(n - drop, 1)
    return torch.randperm(n, device=device)[:keep].sort().values


# ---------------------------------------------------------------------------------------------
# Weight table. URLs: GitHub releases of kkoutini/PaSST. Tags describe the training; "swa" is
# stochastic weight averaging, "kd" knowledge distillation from a CNN ensemble.

_RELEASES = "https://github.com/kkoutini/PaSST/releases/download/"
_CITATION = """@inproceedings{koutini2022passt,
  author    = {Khaled Koutini and Jan Schl{\\"u}ter and Hamid Eghbal-zadeh and Gerhard Widmer},
  title     = {Efficient Training of Audio Transformers with Patchout},
  booktitle = {Interspeech 2022},
  year      = {2022},
}"""
FAMILY = "PaSST"
# The smallest PaSST the registry-wide tests build: same structure, 32 wide, one block.
TEST_KWARGS = {"embed_dim": 32, "depth": 1, "num_heads": 2}


def _cfg(
    arch: str,
    tag: str,
    url: str,
    *,
    metrics: dict[str, float],
    label_set: str = "audioset",
    hop: int = 320,
    notes: str | None = None,
    **patchout: int,
) -> PretrainedCfg:
    """One released checkpoint. The architecture's builder fixes strides, time positions and
    depth; a tag only adds its patchout and its STFT hop (the ``stft_mel`` defaults otherwise)."""
    return PretrainedCfg(
        arch=arch,
        tag=tag,
        url=_RELEASES + url,
        converter="passt",
        frontend={"name": "stft_mel", **({"hop_length": hop} if hop != 320 else {})},
        backbone_kwargs=patchout,
        head={"name": "linear", "norm": True},
        label_set=label_set,
        license="Apache-2.0",
        citation=_CITATION,
        paper="https://arxiv.org/abs/2110.05069",
        metrics=metrics,
        notes=notes,
    )


_AS = "audioset_mAP"
_V2 = "v0.0.2-audioset/passt-s-f128-p16"

PASST_S = [
    _cfg(
        "passt_s",
        "as",
        "v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
        metrics={_AS: 0.476},
        notes="AudioSet, structured patchout, SWA (hear21passt default).",
    ),
    _cfg(
        "passt_s",
        "as_kd",
        "v.0.0.9/passt-s-kd-ap.486.pt",
        metrics={_AS: 0.486},
        notes="AudioSet with knowledge distillation from a CNN ensemble.",
    ),
    _cfg(
        "passt_s",
        "as_swa2",
        f"{_V2}-s10-ap.4761-swa.pt",
        metrics={_AS: 0.4761},
        notes="AudioSet, SWA, a second training run.",
    ),
    _cfg(
        "passt_s",
        "as_noswa",
        f"{_V2}-s10-ap.472.pt",
        metrics={_AS: 0.472},
        notes="AudioSet, final weights without SWA.",
    ),
    _cfg(
        "passt_s",
        "fsd50k",
        "v0.0.5/fsd50k-passt-s-f128-p16-s10-ap.655.pt",
        label_set="fsd50k",
        metrics={"fsd50k_mAP": 0.655},
        notes="Fine-tuned on FSD50K.",
    ),
    _cfg(
        "passt_s",
        "openmic",
        "v0.0.5/openmic-passt-s-f128-10sec-p16-s10-ap.85.pt",
        label_set="openmic",
        metrics={"openmic_mAP": 0.85},
        notes="Fine-tuned on OpenMIC-2018.",
    ),
]
PASST_S_S12 = [
    _cfg(
        "passt_s_s12",
        "as",
        f"{_V2}-s12-ap.473-swa.pt",
        metrics={_AS: 0.473},
        notes="AudioSet, patch stride 12, SWA.",
    ),
    _cfg(
        "passt_s_s12",
        "as_noswa",
        f"{_V2}-s12-ap.470.pt",
        metrics={_AS: 0.470},
        notes="AudioSet, patch stride 12, without SWA.",
    ),
]
PASST_S_S14 = [
    _cfg(
        "passt_s_s14",
        "as",
        f"{_V2}-s14-ap.471-swa.pt",
        metrics={_AS: 0.471},
        notes="AudioSet, patch stride 14, SWA.",
    ),
    _cfg(
        "passt_s_s14",
        "as_noswa",
        f"{_V2}-s14-ap.469.pt",
        metrics={_AS: 0.469},
        notes="AudioSet, patch stride 14, without SWA.",
    ),
]
PASST_S_S16 = [
    _cfg(
        "passt_s_s16",
        "as",
        f"{_V2}-s16-ap.473-swa.pt",
        metrics={_AS: 0.473},
        notes="AudioSet, patch stride 16, SWA.",
    ),
    _cfg(
        "passt_s_s16",
        "as_noswa",
        f"{_V2}-s16-ap.468.pt",
        metrics={_AS: 0.468},
        notes="AudioSet, patch stride 16, without SWA.",
    ),
    _cfg(
        "passt_s_s16",
        "as_nopatchout",
        "v.0.0.7-audioset/passt-b-f128-p16-s16-ap.459.pt",
        metrics={_AS: 0.459},
        s_patchout_t=0,
        s_patchout_f=0,
        notes="AudioSet trained without patchout (upstream 'passt_b').",
    ),
    _cfg(
        "passt_s_s16",
        "as_u600",
        "v.0.0.7-audioset/passt-u600-f128-p16-s16-ap.460.pt",
        metrics={_AS: 0.460},
        s_patchout_t=0,
        s_patchout_f=0,
        u_patchout=600,
        notes="AudioSet with unstructured patchout of 600 patches (upstream 'passt_u600').",
    ),
    _cfg(
        "passt_s_s16",
        "fsd50k",
        "v0.0.5/fsd50k-passt-s-n-f128-p16-s16-ap.642.pt",
        label_set="fsd50k",
        metrics={"fsd50k_mAP": 0.642},
        notes="Fine-tuned on FSD50K (upstream 'fsd50k-n': patches without overlap).",
    ),
]
PASST_S_HOP100 = [
    _cfg(
        "passt_s_hop100",
        "as",
        "v0.0.3-audioset/passt-s-f128-stfthop100-p16-s10-ap.473-swa.pt",
        hop=100,
        metrics={_AS: 0.473},
        notes="AudioSet, STFT hop 100 samples: 3200 frames per 10 s, SWA.",
    ),
]
PASST_S_HOP160 = [
    _cfg(
        "passt_s_hop160",
        "as",
        "v0.0.3-audioset/passt-s-f128-stfthop160-p16-s10-ap.473-swa.pt",
        hop=160,
        metrics={_AS: 0.473},
        notes="AudioSet, STFT hop 160 samples: 2000 frames per 10 s, SWA.",
    ),
]
PASST_S_20S = [
    _cfg(
        "passt_s_20s",
        "as",
        "v0.0.5/passt-s-f128-20sec-p16-s10-ap.474-swa.pt",
        metrics={_AS: 0.474},
        notes="AudioSet, time positions for 20 s (trained on 10 s crops at random offsets), SWA.",
    ),
]
PASST_S_30S = [
    _cfg(
        "passt_s_30s",
        "as",
        "v0.0.5/passt-s-f128-30sec-p16-s10-ap.473-swa.pt",
        metrics={_AS: 0.473},
        notes="AudioSet, time positions for 30 s (trained on 10 s crops at random offsets), SWA.",
    ),
]
PASST_L = [
    _cfg(
        "passt_l",
        "as_kd",
        "v.0.0.10/passt-l-kd-ap.47.pt",
        metrics={_AS: 0.4708},
        notes="PaSST-L (7 blocks), AudioSet with knowledge distillation.",
    ),
]


# ---------------------------------------------------------------------------------------------
# Registration. Each builder's defaults are its architecture; keyword arguments override them
# (e.g. ``create("passt_s.as", s_patchout_t=0)`` for frame-level fine-tuning).


@register_backbone("passt_s", weights=PASST_S, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s(**kwargs: Any) -> PaSST:
    """PaSST-S: 12 blocks, patch stride 10, 10 s clips at hop 320."""
    return PaSST(**kwargs)


@register_backbone("passt_s_s12", weights=PASST_S_S12, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_s12(**kwargs: Any) -> PaSST:
    """PaSST-S with patch stride 12 (less overlap, fewer tokens)."""
    return PaSST(**{"fstride": 12, "tstride": 12, **kwargs})


@register_backbone("passt_s_s14", weights=PASST_S_S14, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_s14(**kwargs: Any) -> PaSST:
    """PaSST-S with patch stride 14."""
    return PaSST(**{"fstride": 14, "tstride": 14, **kwargs})


@register_backbone("passt_s_s16", weights=PASST_S_S16, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_s16(**kwargs: Any) -> PaSST:
    """PaSST-S with patch stride 16 (no overlap)."""
    return PaSST(**{"fstride": 16, "tstride": 16, **kwargs})


@register_backbone("passt_s_hop100", weights=PASST_S_HOP100, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_hop100(**kwargs: Any) -> PaSST:
    """PaSST-S for spectrograms with hop 100 (3200 frames per 10 s)."""
    return PaSST(**{"input_tdim": 3200, **kwargs})


@register_backbone("passt_s_hop160", weights=PASST_S_HOP160, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_hop160(**kwargs: Any) -> PaSST:
    """PaSST-S for spectrograms with hop 160 (2000 frames per 10 s)."""
    return PaSST(**{"input_tdim": 2000, **kwargs})


@register_backbone("passt_s_20s", weights=PASST_S_20S, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_20s(**kwargs: Any) -> PaSST:
    """PaSST-S with time positions for 20 s clips."""
    return PaSST(**{"input_tdim": 2000, **kwargs})


@register_backbone("passt_s_30s", weights=PASST_S_30S, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_s_30s(**kwargs: Any) -> PaSST:
    """PaSST-S with time positions for 30 s clips."""
    return PaSST(**{"input_tdim": 3000, **kwargs})


@register_backbone("passt_l", weights=PASST_L, family=FAMILY, test_kwargs=TEST_KWARGS)
def passt_l(**kwargs: Any) -> PaSST:
    """PaSST-L: PaSST-S with 7 blocks."""
    return PaSST(**{"depth": 7, **kwargs})
