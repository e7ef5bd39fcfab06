"""ATST-Frame: the frame-level Audio Teacher-Student Transformer.

Li, Shao, Li: "Self-supervised Audio Teacher-Student Transformer for Both Clip-level and
Frame-level Tasks", IEEE/ACM TASLP 32, 2024, https://arxiv.org/abs/2306.04186. Upstream:
https://github.com/Audio-WestlakeU/audiossl (``audiossl/methods/atstframe/``, MIT), and the copy in
https://github.com/fschmid56/PretrainedSED (``models/atstframe/``, MIT) whose AudioSet-weak and
AudioSet-Strong fine-tunings are the tagged weights here (Schmid et al., "Effective Pre-Training
of Audio Transformers for Sound Event Detection", ICASSP 2025, https://arxiv.org/abs/2409.09546).

A ViT on *frame* patches: each patch is all 64 mel bins of 4 spectrogram frames (64 x 4), so the
token sequence is the time axis itself, one token per 40 ms (hop 10 ms x 4). What differs from a
timm ViT:

- patch embedding: one Linear on the flattened (64 x 4) patch (bin-major: index ``4 * bin +
  frame``), no convolution; spectrogram frames beyond a multiple of 4 are dropped, as upstream;
- no summary token; a learned positional table of 250 positions (10 s), cut to the token count
  (upstream ``pos_type="cut"``; its table has one more, never-used slot, dropped by the converter);
- 12 pre-norm blocks without qkv bias, LayerNorm eps 1e-6, and a final LayerNorm (upstream
  ``norm_frame``) on every frame;
- the clip embedding is the mean over the (valid) frames, upstream's "scene" embedding.

**Padding and long inputs.** audiossl's blocks mask padded positions in attention: a clip of
``length`` spectrogram frames in a padded batch has ``length // 4`` valid tokens, and every key
after them gets ``-10000`` added to its attention score (:meth:`ATSTFrame.forward` takes the same
``lengths``). PretrainedSED's copy of the blocks has that mask commented out: padded positions
are attended to like real ones (its ``inference.py`` zero-pads the last 10 s chunk of a file and
so lets the padding change the real frames). audiozoo follows audiossl. Inputs longer than the
positional table are cut, as audiossl's ``get_timestamp_embedding`` / ``get_scene_embedding`` do,
into consecutive chunks of ``chunk_frames = 1001`` spectrogram frames (the last one shorter); each
chunk runs on its own (here: all chunks as one batch, the short last chunk padded and masked) and
the chunks' frames are concatenated. A 1001-frame chunk yields 250 tokens and drops its last
frame, so after each full chunk the output grid falls 10 ms further behind the nominal 40 ms
grid (20 ms at 23 s). The clip embedding of a chunked clip is, as upstream, the mean of the
chunks' frame means. Set ``chunk_frames=None`` for an exact 40 ms grid instead: the backbone then
accepts at most 1003 frames and :class:`~audiozoo.AudioModel` runs longer audio in overlapping
windows, like every other bounded backbone.
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
from .layers import ParamStage, init_vit_weights, run_blocks, vit_blocks

__all__ = ["ATSTFrame"]

# audiossl's min-max scaling of the dB spectrogram to [-1, 1] (``MinMax(min=-79.6482,
# max=50.6842)`` in audiossl's transforms and PretrainedSED's ATSTMel), after clamping to
# [-50, 80] dB. (x - min) / (max - min) * 2 - 1 == (x - mean) / std with these:
DB_MIN, DB_MAX = -79.6482, 50.6842
MEL_MEAN = (DB_MIN + DB_MAX) / 2.0
MEL_STD = (DB_MAX - DB_MIN) / 2.0
MASK_VALUE = -10000.0  # audiossl's additive attention mask for padded keys

FRONTEND: dict[str, Any] = {
    "name": "mel",
    "sample_rate": 16000,
    "win_length": 1024,
    "hop_length": 160,
    "f_min": 60.0,
    "f_max": 7800.0,
    "n_mels": 64,
    "log": "db",
    "top_db": 80.0,
    "clamp_min": -50.0,
    "clamp_max": 80.0,
    "mean": MEL_MEAN,
    "std": MEL_STD,
}


class ATSTFrame(Backbone):
    """ATST-Frame backbone: scaled dB mel (B, 1, 64, T) -> frame grid (B, D, 1, T // 4).

    Args:
        embed_dim: token width ``D`` (768 base, 384 small).
        depth: transformer blocks.
        num_heads: attention heads (12 base, 6 small).
        mlp_ratio: MLP hidden width / ``D``.
        n_mels: mel bins; one patch spans all of them (upstream ``patch_h = spec_h = 64``).
        patch_frames: spectrogram frames per patch and output frame (upstream ``patch_w = 4``).
        num_positions: entries of the positional table: tokens of the trained 10 s input.
        chunk_frames: inputs longer than this are processed in consecutive chunks of this many
            spectrogram frames, as audiossl's embedding functions do (see the module docstring);
            None: no chunking, at most ``num_positions * patch_frames + patch_frames - 1``
            frames (longer audio is windowed by :class:`~audiozoo.AudioModel`).
        norm_eps: LayerNorm epsilon.
        drop_rate: dropout after the positional embedding, attention projection and MLP.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.

    Output: ``grid`` (B, D, 1, T') with T' = :meth:`num_output_frames` (T // 4 without chunking),
    frames ``patch_frames`` spectrogram hops apart; ``token`` (B, D) the clip embedding (the mean
    of the valid frames; of the per-chunk means for chunked input).
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        n_mels: int = 64,
        patch_frames: int = 4,
        num_positions: int = 250,
        chunk_frames: int | None = 1001,
        norm_eps: float = 1e-6,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if chunk_frames is not None and not (
            patch_frames <= chunk_frames and chunk_frames // patch_frames <= num_positions
        ):
            raise ValueError(
                f"chunk_frames={chunk_frames} must give between 1 and num_positions="
                f"{num_positions} patches of {patch_frames} frames"
            )
        self.n_mels = n_mels
        self.patch_frames = patch_frames
        self.num_positions = num_positions
        self.chunk_frames = chunk_frames
        self.num_features = embed_dim
        self.time_stride = patch_frames
        self.min_frames = patch_frames
        self.max_frames = (
            None if chunk_frames is not None else num_positions * patch_frames + patch_frames - 1
        )

        self.patch_embed = nn.Linear(n_mels * patch_frames, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = vit_blocks(  # qkv without bias, as upstream
            depth,
            embed_dim,
            num_heads,
            drop_path_rate,
            mlp_ratio=mlp_ratio,
            qkv_bias=False,
            norm_eps=norm_eps,
            drop=drop_rate,
            attn_drop=attn_drop_rate,
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(init_vit_weights)

    # ------------------------------------------------------------------ shapes
    def num_output_frames(self, num_frames: int) -> int:
        """Tokens for ``num_frames`` spectrogram frames: ``T // 4`` per chunk, summed."""
        c, p = self.chunk_frames, self.patch_frames
        if c is None or num_frames <= c:
            return num_frames // p
        return (num_frames // c) * (c // p) + (num_frames % c) // p

    def _chunks(self, num_frames: int) -> tuple[int, int, int]:
        """(frames per chunk, chunks, tokens per chunk) of a ``num_frames`` spectrogram."""
        c = self.chunk_frames
        c = c if c is not None and num_frames > c else num_frames
        return c, math.ceil(num_frames / c), c // self.patch_frames

    # ------------------------------------------------------------------ forward
    supports_lengths = True

    def forward_lengths(self, spec: torch.Tensor, lengths: torch.Tensor) -> Features:
        """A padded batch with a padding mask (see :meth:`forward`'s ``lengths``)."""
        return self(spec, lengths)  # type: ignore[no-any-return]

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """Tokens (B * chunks, tokens per chunk, D) entering or leaving a block -> grid
        (B, D, 1, T') of :meth:`forward`'s frames; no token, so the clip embedding of a hidden
        layer is the mean over its frames."""
        (x,) = hidden
        b, t = spec.shape[0], spec.shape[-1]
        _, n_chunks, n_tok = self._chunks(t)
        frames = x.reshape(b, n_chunks * n_tok, -1)[:, : self.num_output_frames(t)]
        return Features(grid=frames.transpose(1, 2).unsqueeze(2))

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None) -> Features:
        """Args:
            spec: (B, 1, n_mels, T) scaled dB mel spectrogram, T >= ``patch_frames``.
            lengths: optional (B,) valid spectrogram frames of each clip of a padded batch;
                keys after a clip's ``lengths // 4`` tokens are masked in attention and left out
                of the clip embedding (audiossl's ``length``). None: every frame is valid.

        Returns:
            :class:`Features` with grid (B, D, 1, T') and token (B, D).
        """
        b, t = self._check_input(spec, lengths)
        c, n_chunks, n_tok = self._chunks(t)  # the last chunk may have fewer valid tokens
        p = self.patch_frames

        # Per-chunk valid frames (B, n_chunks): the clip's length minus what earlier chunks hold.
        valid = (
            torch.full((b,), t, device=spec.device) if lengths is None else lengths.to(spec.device)
        )
        starts = torch.arange(n_chunks, device=spec.device) * c
        chunk_valid = (valid[:, None] - starts[None]).clamp(0, c)
        tokens_valid = (chunk_valid // p).reshape(-1)  # (B * n_chunks,)

        x = spec[:, 0]  # (B, F, T)
        if n_chunks * c > t:
            x = F.pad(x, (0, n_chunks * c - t))
        # (B, F, n_chunks, c) -> keep n_tok * p frames of each chunk -> tokens (B * n, n_tok, F * p)
        x = x.reshape(b, self.n_mels, n_chunks, c)[..., : n_tok * p]
        x = x.reshape(b, self.n_mels, n_chunks, n_tok, p).permute(0, 2, 3, 1, 4)
        x = x.reshape(b * n_chunks, n_tok, self.n_mels * p)  # patch vector index: bin * p + frame
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed[:, :n_tok])

        key_valid = torch.arange(n_tok, device=spec.device)[None] < tokens_valid[:, None]
        needs_mask = lengths is not None or n_chunks * c > t
        attn_mask = (
            torch.zeros(key_valid.shape, dtype=x.dtype, device=x.device)
            .masked_fill(~key_valid, MASK_VALUE)
            .reshape(-1, 1, 1, n_tok)
            if needs_mask
            else None
        )
        x = self.norm(run_blocks(self.blocks, x, attn_mask))  # (B * n, n_tok, D)

        # Clip embedding: mean over each chunk's valid tokens, then over chunks that have any.
        w = key_valid.to(x.dtype)
        chunk_mean = (x * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1.0)
        has_tokens = (tokens_valid > 0).to(x.dtype).reshape(b, n_chunks, 1)
        token = (chunk_mean.reshape(b, n_chunks, -1) * has_tokens).sum(1) / has_tokens.sum(1).clamp(
            min=1.0
        )

        frames = x.reshape(b, n_chunks * n_tok, -1)[:, : self.num_output_frames(t)]
        return Features(grid=frames.transpose(1, 2).unsqueeze(2), token=token)

    def _check_input(self, spec: torch.Tensor, lengths: torch.Tensor | None) -> tuple[int, int]:
        check_spectrogram(spec, "ATST-Frame", self.n_mels)
        b, t = spec.shape[0], spec.shape[-1]
        if t < self.patch_frames:
            raise InvalidAudioError(
                f"ATST-Frame needs at least {self.patch_frames} spectrogram frames (one patch), "
                f"got {t}; AudioModel pads short clips"
            )
        if self.max_frames is not None and t > self.max_frames:
            raise InvalidAudioError(
                f"ATST-Frame has {self.num_positions} positions, i.e. at most {self.max_frames} "
                f"frames without chunking, got {t}. Use chunk_frames=1001 (audiossl's chunks), "
                "cut the spectrogram, or let AudioModel window the audio."
            )
        if lengths is not None and (
            lengths.shape != (b,) or lengths.dtype.is_floating_point or lengths.is_complex()
        ):
            raise InvalidAudioError(
                f"lengths must be an integer tensor of shape ({b},), got {tuple(lengths.shape)} "
                f"{lengths.dtype}"
            )
        return b, t

    def stages(self) -> list[nn.Module]:
        """Patch embedding with the positional table, each block, the final norm."""
        embed = ParamStage({"patch_embed": self.patch_embed}, {"pos_embed": self.pos_embed})
        return [embed, *self.blocks, self.norm]


# ---------------------------------------------------------------------------------------------
# Weight table: the three ATST-F stages of the PretrainedSED release v0.0.1 (GitHub release
# assets, PretrainedSED's file format). Code MIT (audiossl and PretrainedSED); the checkpoints are
# released under CC BY 4.0. ``ssl`` is audiossl's own self-supervised ATST-Frame base
# (``atstframe_base``; audiossl links it only on Google Drive), ``as_weak`` audiossl's fine-tuning
# on AudioSet-2M weak labels, ``as_strong`` PretrainedSED's AudioSet-Strong student.

_RELEASE = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"
_CITATION_ATST = """@article{li2024atst,
  author  = {Xian Li and Nian Shao and Xiaofei Li},
  title   = {Self-Supervised Audio Teacher-Student Transformer for Both Clip-Level and
             Frame-Level Tasks},
  journal = {IEEE/ACM Transactions on Audio, Speech, and Language Processing},
  volume  = {32},
  pages   = {1336--1351},
  year    = {2024},
}"""
_CITATION_SED = """@inproceedings{schmid2025effective,
  author    = {Florian Schmid and Tobias Morocutti and Francesco Foscarin and Jan Schl{\\"u}ter
               and Paul Primus and Gerhard Widmer},
  title     = {Effective Pre-Training of Audio Transformers for Sound Event Detection},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2025},
}"""
_LICENSE = "CC-BY-4.0"
_AUDIOSSL_NOTE = (
    "Frontend: PretrainedSED's, which clamps the dB spectrogram to [-50, 80] before the min-max "
    "scaling; audiossl's own pipeline has no clamp (pass frontend={'clamp_min': None, "
    "'clamp_max': None} to reproduce it). The dB floor (top_db 80) is taken per clip; "
    "torchaudio's AmplitudeToDB, used upstream, takes it over the whole batch."
)
# PretrainedSED README, DESED in the DCASE 2023 baseline setup (PSDS1, mean of 3 runs)
_DESED = "desed_psds1"


def _cfg(
    tag: str,
    file: str,
    *,
    head: dict[str, Any],
    converter: str,
    label_set: str | None,
    metrics: dict[str, float],
    notes: str,
    citation: str,
) -> PretrainedCfg:
    return PretrainedCfg(
        arch="atst_frame",
        tag=tag,
        url=_RELEASE + file,
        converter=converter,
        frontend=FRONTEND,
        head=head,
        label_set=label_set,
        license=_LICENSE,
        citation=citation,
        paper="https://arxiv.org/abs/2306.04186",
        metrics=metrics,
        notes=f"{notes} {_AUDIOSSL_NOTE}",
    )


ATST_FRAME_WEIGHTS = [
    _cfg(
        "as_strong",
        "ATST-F_strong_1.pt",
        head={"name": "sed"},
        converter="atst_frame_sed",
        label_set="audioset_strong",
        metrics={"audioset_strong_psds1": 0.458, _DESED: 0.504},
        citation=f"{_CITATION_SED}\n\n{_CITATION_ATST}",
        notes=(
            "PretrainedSED's AudioSet-Strong student (ensemble knowledge distillation, no RNN): "
            "per-frame logits for the 447 AudioSet-Strong classes every 40 ms; "
            "AudioSet-Strong PSDS1 45.8 (mean of 3 runs, PretrainedSED README)."
        ),
    ),
    _cfg(
        "as_weak",
        "ATST-F_weak.pt",
        head={"name": "identity", "num_classes": None},
        converter="atst_frame",
        label_set=None,
        metrics={_DESED: 0.471},
        citation=f"{_CITATION_ATST}\n\n{_CITATION_SED}",
        notes=(
            "ATST-Frame fine-tuned on AudioSet (weak labels) by the audiossl authors, the starting "
            "point of PretrainedSED's AudioSet-Strong training; an encoder (the checkpoint's "
            "heads, if any, are not loaded)."
        ),
    ),
    _cfg(
        "ssl",
        "ATST-F_ssl.pt",
        head={"name": "identity", "num_classes": None},
        converter="atst_frame",
        label_set=None,
        metrics={_DESED: 0.427},
        citation=f"{_CITATION_ATST}\n\n{_CITATION_SED}",
        notes=(
            "The self-supervised ATST-Frame base model of audiossl (atstframe_base, trained on "
            "AudioSet without labels), as re-released by PretrainedSED; an encoder. audiossl's "
            "own Lightning checkpoint (Google Drive only) loads with pretrained=PATH too."
        ),
    ),
]

_SMALL_CFG = PretrainedCfg(
    arch="atst_frame_small",
    converter="atst_frame",
    frontend=FRONTEND,
    head={"name": "identity", "num_classes": None},
    license=_LICENSE,
    citation=_CITATION_ATST,
    paper="https://arxiv.org/abs/2306.04186",
    notes=(
        "audiossl's self-supervised ATST-Frame small (width 384, 6 heads). Its checkpoint "
        "(atstframe_small.ckpt) is published only as a Google Drive link in audiossl's README "
        "(https://drive.google.com/file/d/1xZoOTuxV415icYONYbeFQzgrmJQf4a4B), so there is no "
        "tag: download it and pass pretrained=PATH. " + _AUDIOSSL_NOTE
    ),
)

_TEST_KWARGS = {"embed_dim": 32, "depth": 1, "num_heads": 2}


# ---------------------------------------------------------------------------------------------
# Registration.


@register_backbone(
    "atst_frame", weights=ATST_FRAME_WEIGHTS, family="ATST-Frame", test_kwargs=_TEST_KWARGS
)
def atst_frame(**kwargs: Any) -> ATSTFrame:
    """ATST-Frame base: 12 blocks, width 768, 12 heads; 40 ms frames."""
    return ATSTFrame(**kwargs)


@register_backbone(
    "atst_frame_small", default_cfg=_SMALL_CFG, family="ATST-Frame", test_kwargs=_TEST_KWARGS
)
def atst_frame_small(**kwargs: Any) -> ATSTFrame:
    """ATST-Frame small: 12 blocks, width 384, 6 heads; 40 ms frames."""
    return ATSTFrame(**{"embed_dim": 384, "num_heads": 6, **kwargs})
