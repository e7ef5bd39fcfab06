"""AST: Audio Spectrogram Transformer.

Gong, Chung, Glass: "AST: Audio Spectrogram Transformer", Interspeech 2021,
https://arxiv.org/abs/2104.01778. Upstream: https://github.com/YuanGongND/ast (BSD-3-Clause) and
the Hugging Face port ``transformers.ASTForAudioClassification`` (checkpoints ``MIT/ast-*``).

A DeiT-B/384 (distilled) transformer on overlapping 16x16 patches of a normalised Kaldi fbank
(16 kHz, 128 bins). Unlike PaSST it has one learned positional embedding table for the cls and
dist tokens and all patches, of the trained input length (1024 frames for AudioSet, 128 for
Speech Commands): the model takes exactly that many frames. The clip embedding is the mean of
the cls and dist tokens after the final LayerNorm; the classifier is LayerNorm + Linear on it.

Input layout: upstream feeds (B, T, F) and transposes to (B, 1, F, T) before the patch conv;
audiozoo's frontends already give (B, 1, F, T), so no transpose is needed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import InvalidAudioError
from ..pretrained import PretrainedCfg
from .base import Features, check_spectrogram, register_backbone
from .layers import PatchEmbed
from .layers.deit import DeiTBackbone, fill_after_lengths

__all__ = ["AST"]

PATCH_SIZE = 16
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974
SPEECH_COMMANDS_MEAN, SPEECH_COMMANDS_STD = -6.845978, 5.5654526


def padding_value(mean: float, std: float) -> float:
    """What upstream's padding becomes after normalisation: frames are padded with 0 in the log
    domain, then normalised as ``(x - mean) / (2 * std)`` (0.467 for AudioSet statistics)."""
    return (0.0 - mean) / (2.0 * std)


class AST(DeiTBackbone):
    """AST backbone: normalised fbank (B, 1, F, T) -> patch-token grid and summary token.

    Args:
        fstride: patch stride over frequency (10; 12, 14, 16 for the ``ast_sNN`` models).
        tstride: patch stride over time.
        input_fdim: mel bins (128).
        input_tdim: frames the model was trained with (upstream ``max_length``/``target_length``:
            1024 for AudioSet, 128 for Speech Commands). The positional table has
            ``2 + F' * T'`` entries for this length.
        embed_dim: token width ``D``.
        depth: transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``D``.
        norm_eps: LayerNorm epsilon of blocks and final norm: 1e-6 in the original release,
            1e-12 in the Hugging Face port (the ``MIT/ast-*`` weights use 1e-12 for exact parity).
        drop_rate: dropout after attention projections and in the MLPs.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.
        pad_value: value appended to spectrograms shorter than ``input_tdim``. The default is
            exactly what the upstream pipeline gives for padded frames with AudioSet statistics
            (:func:`padding_value`); the Speech Commands weights use their own statistics.

    The ``kaldi_fbank`` frontend already pads or trims to ``input_tdim`` (``target_frames``), so
    the backbone normally sees exactly ``input_tdim`` frames. Shorter inputs (a frontend without
    ``target_frames``) are padded at the end with ``pad_value``, which reproduces the upstream
    result; longer ones raise (AudioModel cuts long audio into ``max_frames`` windows). The grid
    always covers the padded length: (B, D, F', T') with T' from ``input_tdim``.
    """

    max_frames: int  # always bounded: the positional embeddings have a fixed size
    patch_embed: PatchEmbed

    def __init__(
        self,
        fstride: int = 10,
        tstride: int = 10,
        input_fdim: int = 128,
        input_tdim: int = 1024,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-6,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        pad_value: float = padding_value(AUDIOSET_MEAN, AUDIOSET_STD),
    ) -> None:
        super().__init__()
        self.fstride, self.tstride = fstride, tstride
        self.input_fdim, self.input_tdim = input_fdim, input_tdim
        self.pad_value = pad_value
        self.time_stride = tstride
        self.max_frames = input_tdim
        self.min_frames = input_tdim

        self.patch_embed = PatchEmbed(embed_dim, PATCH_SIZE, (fstride, tstride))
        self.grid_f, self.grid_t = self.patch_embed.grid_shape(input_fdim, input_tdim)
        self._add_summary_tokens(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 + self.grid_f * self.grid_t, embed_dim))
        self._add_blocks(
            depth, num_heads, mlp_ratio, norm_eps, drop_rate, attn_drop_rate, drop_path_rate
        )
        self._init_weights()

    def num_output_frames(self, num_frames: int) -> int:
        """Always ``T'`` of ``input_tdim``: shorter inputs are padded to it."""
        return self.grid_t

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T), T <= input_tdim. Returns: grid (B, D, F', T'), token (B, D)."""
        check_spectrogram(spec, "AST", self.input_fdim)
        if spec.shape[-1] > self.input_tdim:
            raise InvalidAudioError(
                f"AST was trained on {self.input_tdim}-frame spectrograms and has positions for "
                f"no more, got {spec.shape[-1]} frames. Use the kaldi_fbank frontend with "
                f"target_frames={self.input_tdim} (it trims), or cut the spectrogram; AudioModel "
                "splits longer audio into windows."
            )
        if spec.shape[-1] < self.input_tdim:
            spec = F.pad(spec, (0, self.input_tdim - spec.shape[-1]), value=self.pad_value)
        x = self.patch_embed(spec)  # (B, D, F', T')
        b, d, f, t = x.shape
        patches = x.flatten(2).transpose(1, 2)  # (B, F'*T', D), frequency-major
        tokens, token = self._encode(self._with_summary_tokens(patches) + self.pos_embed)
        return Features(grid=tokens.transpose(1, 2).reshape(b, d, f, t), token=token)

    supports_lengths = True

    def forward_lengths(self, spec: torch.Tensor, lengths: torch.Tensor) -> Features:
        """Padded spectrograms of different lengths (see :meth:`Backbone.forward_lengths`). AST
        pads every input to ``input_tdim`` frames with ``pad_value`` and attends over the padding
        (as upstream), so setting each clip's frames after its length to ``pad_value`` gives
        exactly what the clip gives alone; no mask is needed."""
        return self.forward(fill_after_lengths(spec, lengths, self.pad_value))

    def _positions(self) -> dict[str, nn.Parameter]:
        return {"pos_embed": self.pos_embed}

    def _token_grid(self, num_tokens: int, spec: torch.Tensor) -> tuple[int, int]:
        """Always the grid of ``input_tdim`` frames (shorter inputs are padded to it)."""
        return self.patch_embed.grid_shape(self.input_fdim, self.input_tdim)


# ---------------------------------------------------------------------------------------------
# Weight table: the Hugging Face conversions of the original release (org MIT). They run with
# LayerNorm eps 1e-12 everywhere, as transformers does; the original release used 1e-6 (blocks)
# and 1e-5 (classifier), a difference far below the conversion tolerance upstream checked.

FAMILY = "AST"
# The smallest AST the registry-wide tests build: same structure, 32 wide, one block.
TEST_KWARGS = {"embed_dim": 32, "depth": 1, "num_heads": 2}
_CITATION = """@inproceedings{gong2021ast,
  author    = {Yuan Gong and Yu-An Chung and James Glass},
  title     = {{AST}: Audio Spectrogram Transformer},
  booktitle = {Interspeech 2021},
  year      = {2021},
}"""


def _cfg(
    arch: str,
    tag: str,
    repo: str,
    *,
    metrics: dict[str, float],
    notes: str | None = None,
    speech_commands: bool = False,
) -> PretrainedCfg:
    """One Hub checkpoint. The ``kaldi_fbank`` and builder defaults are AudioSet's (1024 frames,
    AudioSet mean/std); speech commands differs in clip length and normalisation. Every tag runs
    with transformers' LayerNorm eps 1e-12 (see above)."""
    frontend: dict[str, Any] = {"name": "kaldi_fbank"}
    backbone_kwargs: dict[str, Any] = {"norm_eps": 1e-12}
    if speech_commands:
        mean, std, frames = SPEECH_COMMANDS_MEAN, SPEECH_COMMANDS_STD, 128
        frontend.update(target_frames=frames, mean=mean, std=std)
        backbone_kwargs.update(input_tdim=frames, pad_value=padding_value(mean, std))
    return PretrainedCfg(
        arch=arch,
        tag=tag,
        hf_hub_id=repo,
        hf_filename="model.safetensors",
        converter="ast_hf",
        frontend=frontend,
        backbone_kwargs=backbone_kwargs,
        head={"name": "linear", "norm": True, "norm_eps": 1e-12},
        label_set="speech_commands" if speech_commands else "audioset",
        license="BSD-3-Clause",
        citation=_CITATION,
        paper="https://arxiv.org/abs/2104.01778",
        metrics=metrics,
        notes=notes,
    )


_AS = "audioset_mAP"

AST_S10 = [
    _cfg(
        "ast",
        "as",
        "MIT/ast-finetuned-audioset-10-10-0.4593",
        metrics={_AS: 0.4593},
        notes="AudioSet, weight-averaged; the best single AST model (audioset_10_10_0.4593.pth).",
    ),
    _cfg(
        "ast",
        "as_2",
        "MIT/ast-finetuned-audioset-10-10-0.450",
        metrics={_AS: 0.4495},
        notes="AudioSet, another training run (audioset_10_10_0.4495.pth).",
    ),
    _cfg(
        "ast",
        "as_3",
        "MIT/ast-finetuned-audioset-10-10-0.448",
        metrics={_AS: 0.4483},
        notes="AudioSet, another training run (audioset_10_10_0.4483.pth).",
    ),
    _cfg(
        "ast",
        "as_4",
        "MIT/ast-finetuned-audioset-10-10-0.448-v2",
        metrics={_AS: 0.4475},
        notes="AudioSet, another training run (audioset_10_10_0.4475.pth).",
    ),
    _cfg(
        "ast",
        "speech_commands",
        "MIT/ast-finetuned-speech-commands-v2",
        metrics={"speech_commands_accuracy": 0.9812},
        speech_commands=True,
        notes="Speech Commands V2 (35 classes), 128-frame (1.28 s) inputs.",
    ),
]
AST_S12 = [
    _cfg(
        "ast_s12",
        "as",
        "MIT/ast-finetuned-audioset-12-12-0.447",
        metrics={_AS: 0.4467},
        notes="AudioSet, patch stride 12.",
    ),
]
AST_S14 = [
    _cfg(
        "ast_s14",
        "as",
        "MIT/ast-finetuned-audioset-14-14-0.443",
        metrics={_AS: 0.4431},
        notes="AudioSet, patch stride 14.",
    ),
]
AST_S16 = [
    _cfg(
        "ast_s16",
        "as",
        "MIT/ast-finetuned-audioset-16-16-0.442",
        metrics={_AS: 0.4422},
        notes="AudioSet, patch stride 16 (no patch overlap).",
    ),
]


# ---------------------------------------------------------------------------------------------
# Registration. Builders default to their architecture; keyword arguments override.


@register_backbone("ast", weights=AST_S10, family=FAMILY, test_kwargs=TEST_KWARGS)
def ast(**kwargs: Any) -> AST:
    """AST base384, patch stride 10, 1024 frames (10.24 s)."""
    return AST(**kwargs)


@register_backbone("ast_s12", weights=AST_S12, family=FAMILY, test_kwargs=TEST_KWARGS)
def ast_s12(**kwargs: Any) -> AST:
    """AST with patch stride 12."""
    return AST(**{"fstride": 12, "tstride": 12, **kwargs})


@register_backbone("ast_s14", weights=AST_S14, family=FAMILY, test_kwargs=TEST_KWARGS)
def ast_s14(**kwargs: Any) -> AST:
    """AST with patch stride 14."""
    return AST(**{"fstride": 14, "tstride": 14, **kwargs})


@register_backbone("ast_s16", weights=AST_S16, family=FAMILY, test_kwargs=TEST_KWARGS)
def ast_s16(**kwargs: Any) -> AST:
    """AST with patch stride 16."""
    return AST(**{"fstride": 16, "tstride": 16, **kwargs})
