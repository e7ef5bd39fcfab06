"""BEATs: Audio Pre-Training with Acoustic Tokenizers.

Chen, Wu, Wang, Liu, Tompkins, Chen, Wei: "BEATs: Audio Pre-Training with Acoustic Tokenizers",
ICML 2023, https://arxiv.org/abs/2212.09058. Upstream: https://github.com/microsoft/unilm/tree/master/beats
(MIT, code derived from fairseq). The same network is copied in fschmid56/PretrainedSED
(``models/beats/``, MIT) and ported in speechbrain (``speechbrain.lobes.models.beats``).

A ViT-B encoder on non-overlapping 16x16 patches of a normalised Kaldi fbank (16 kHz, 128 bins,
10 ms hop; the ``kaldi_fbank`` frontend with the BEATs options). What differs from a ViT:

- patch embedding without bias to 512 channels, LayerNorm(512), then a Linear 512 -> 768;
- no absolute positions: a convolutional positional embedding (wav2vec 2.0 style): a grouped
  Conv1d over the token sequence (kernel 128, 16 groups, padding 64, the last output dropped),
  GELU, added to the tokens, then LayerNorm. Upstream keeps its weight under weight norm
  (``weight_g``/``weight_v``, norm over every dimension but the kernel axis); the converter folds
  it into the plain ``pos_conv.weight`` used here;
- a T5-style relative position bias over the token sequence (320 buckets: 80 exact distances per
  direction, log-spaced up to ``max_distance`` 800), **one table shared by all layers** (upstream
  keeps one module and saves it once per layer), scaled per layer, head and query token by a
  gate computed from the query ("gated relative position bias", from WavLM):
  ``g = sigmoid(sum over 4 of Linear(q)) = (g_a, g_b)``, bias ``(g_a (g_b a - 1) + 2) * table``;
- post-LayerNorm "deep norm" layers: ``x = LN(alpha x + attn(x))``, ``x = LN(alpha x + ffn(x))``
  with ``alpha = (2 * depth) ** 0.25``; no final LayerNorm.

Tokens are **time-major**: the patch grid (T', F') = (T // 16, 128 // 16 = 8) is flattened as
``t * 8 + f`` (upstream convolves the (T, F) spectrogram), so positions and relative distances
run over that order. The backbone returns the grid (B, 768, 8, T'): ``embed()`` is the mean over
all tokens (what upstream's classifier pools) and ``embed(frames=True)`` the mean over the 8
frequency patches of each time step: one frame per 16 spectrogram frames = 160 ms.

Input length: upstream's patch convolution drops the frames after the last full 16-frame block;
so does this backbone (``T' = T // 16``). At least 16 frames (0.175 s) are needed. Any longer
length works (no positional table; distances beyond 800 tokens share the last bucket).

Padding masks: upstream's ``extract_features(source, padding_mask)`` maps a sample-level mask to
tokens by reshaping it to (tokens, samples per token) in sequence order, which ignores that tokens
are time-major (token ``i`` is masked from samples around frame ``2 i``, not from its own time
step), zeroes the masked tokens before the positional convolution, excludes them as attention
keys and from the classifier mean. Every upstream example (the README, PretrainedSED, speechbrain
with full lengths) passes an all-False mask, which equals no mask. audiozoo's batches hold clips
of one length and this backbone takes no mask; run clips of different lengths separately (as
:class:`~audiozoo.AudioModel` does for a single clip) to get upstream's unmasked result.

Fine-tuned checkpoints (AudioSet-2M, 527 classes) add a per-token ``predictor`` (Dropout + Linear)
whose outputs upstream averages over tokens and passes through a sigmoid. A Linear commutes with
the mean, so audiozoo's ``linear`` head on the mean token gives the same numbers; like every
audiozoo tagger it returns **logits** (apply ``torch.sigmoid`` for upstream's probabilities).
The predictor dropout (0.1, training only) is not reproduced.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import InvalidAudioError
from ..pretrained import PretrainedCfg
from .base import Backbone, Features, check_spectrogram, register_backbone
from .layers import ParamStage

__all__ = ["BEATs", "relative_position_buckets"]

PATCH_SIZE = 16
FBANK_MEAN, FBANK_STD = 15.41663, 6.55582  # upstream BEATs.preprocess defaults


def relative_position_buckets(num_buckets: int, max_distance: int, max_offset: int) -> torch.Tensor:
    """Bucket of every key-minus-query offset ``-max_offset .. max_offset`` (int64, CPU).

    Upstream's (T5/WavLM) bidirectional bucketing, computed the same way in float32 on the CPU so
    the truncation at bucket boundaries is identical: half of the buckets for positive offsets;
    per direction ``half // 2`` exact small distances, then ``log``-spaced buckets up to
    ``max_distance``; larger distances share the last bucket.

    Returns:
        (2 * max_offset + 1,) tensor; entry ``d + max_offset`` is the bucket of offset ``d``.
    """
    rel = torch.arange(-max_offset, max_offset + 1, dtype=torch.long)
    half = num_buckets // 2
    buckets = (rel > 0).to(torch.long) * half
    dist = rel.abs()
    max_exact = half // 2
    large = max_exact + (
        torch.log(dist.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (half - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return buckets + torch.where(dist < max_exact, dist, large)


class GatedRelPosAttention(nn.Module):
    """Multi-head self-attention with BEATs' gated relative position bias.

    One fused ``qkv`` Linear (rows ``q | k | v``; upstream has three), ``proj`` (upstream
    ``out_proj``), and the gate: ``gate`` Linear(head_dim -> 8) (upstream ``grep_linear``) and
    ``gate_scale`` (1, H, 1, 1) (upstream ``grep_a``). The gate reads the unscaled query of each
    head; the scaled bias enters :func:`torch.nn.functional.scaled_dot_product_attention` as its
    float ``attn_mask`` (upstream adds it to ``q k^T / sqrt(d)`` before the softmax; its
    subtraction of the row maximum in between does not change the softmax).

    Shapes:
        x (B, N, D), pos_bias (H, N, N) -> (B, N, D). ``mask_out`` (B, H, N, N), optional: where
        to write the gated bias (inference only; saves one large allocation per layer).
    """

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim // num_heads, 8)
        self.gate_scale = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def forward(
        self, x: torch.Tensor, pos_bias: torch.Tensor, mask_out: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # (B, H, N, e)
        # Gate per (batch, head, query): two sigmoids of sums of four outputs each.
        g = torch.sigmoid(self.gate(q).view(b, h, n, 2, 4).sum(-1))  # (B, H, N, 2)
        gate = g[..., :1] * (g[..., 1:] * self.gate_scale - 1.0) + 2.0  # (B, H, N, 1)
        pos_bias = pos_bias.to(q.dtype)
        if mask_out is not None and mask_out.dtype == q.dtype:
            mask = torch.mul(gate, pos_bias, out=mask_out)  # (B, H, N, N)
        else:
            mask = gate * pos_bias
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_drop if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    """``fc2(dropout(gelu(fc1(x))))`` (exact GELU; upstream ``activation_dropout`` inside)."""

    def __init__(self, dim: int, hidden_dim: int, act_drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(act_drop)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class BEATsLayer(nn.Module):
    """Post-LN deep-norm transformer layer (upstream ``TransformerSentenceEncoderLayer`` with
    ``deep_norm=True``): ``x = norm1(alpha x + drop(attn(x)))``, ``x = norm2(alpha x +
    drop(mlp(x)))``. Keys: ``attn.*``, ``norm1`` (upstream ``self_attn_layer_norm``), ``mlp.fc1``,
    ``mlp.fc2``, ``norm2`` (upstream ``final_layer_norm``).

    Shapes:
        x (B, N, D), pos_bias (H, N, N) -> (B, N, D).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        hidden_dim: int,
        alpha: float,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        act_drop: float = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.attn = GatedRelPosAttention(dim, num_heads, attn_drop)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = FeedForward(dim, hidden_dim, act_drop)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.drop = nn.Dropout(drop)

    def forward(
        self, x: torch.Tensor, pos_bias: torch.Tensor, mask_out: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.norm1(x * self.alpha + self.drop(self.attn(x, pos_bias, mask_out)))
        return self.norm2(x * self.alpha + self.drop(self.mlp(x)))


class BEATs(Backbone):
    """BEATs encoder: normalised fbank (B, 1, F, T) -> token grid (B, D, F // 16, T // 16).

    Args:
        input_fdim: mel bins (128); ``F' = input_fdim // 16`` frequency patches per time step.
        patch_dim: channels of the patch embedding (512).
        embed_dim: token width ``D`` (768).
        depth: transformer layers (12).
        num_heads: attention heads (12).
        mlp_ratio: feed-forward width / ``D`` (3072 / 768 = 4).
        conv_pos: kernel size of the convolutional positional embedding (128).
        conv_pos_groups: groups of that convolution (16).
        num_buckets: relative position buckets (320).
        max_distance: largest distinguished relative distance in tokens (800).
        deep_norm: scale residuals by ``(2 * depth) ** 0.25`` (True for every release).
        norm_eps: LayerNorm epsilon (PyTorch's default 1e-5, as upstream).
        drop_rate: dropout after the positional embedding and on both residual branches
            (upstream ``dropout``).
        attn_drop_rate: dropout on attention weights (upstream ``attention_dropout``).
        act_drop_rate: dropout after the feed-forward GELU (upstream ``activation_dropout``).
        input_drop_rate: dropout on the projected patch tokens (upstream ``dropout_input``).
        layerdrop: probability of skipping a whole layer in training (upstream
            ``encoder_layerdrop``).
        token_frames: present the tokens as PretrainedSED's wrapper does: the time-major token
            sequence of length ``T' * F'`` as frames (grid (B, D, 1, T' * F')), one every
            ``16 / F'`` spectrogram frames (20 ms). Used by the strong (SED) tags, whose head pools
            this sequence to 40 ms exactly as upstream does; off, the grid is (B, D, F', T').

    The training defaults (dropouts, layerdrop) are those BEATs was trained with (the values
    PretrainedSED's copy of the configuration holds); they do nothing in eval mode.
    """

    def __init__(
        self,
        input_fdim: int = 128,
        patch_dim: int = 512,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        conv_pos: int = 128,
        conv_pos_groups: int = 16,
        num_buckets: int = 320,
        max_distance: int = 800,
        deep_norm: bool = True,
        norm_eps: float = 1e-5,
        drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        act_drop_rate: float = 0.0,
        input_drop_rate: float = 0.1,
        layerdrop: float = 0.05,
        token_frames: bool = False,
    ) -> None:
        super().__init__()
        if input_fdim < PATCH_SIZE:
            raise ValueError(f"input_fdim must be >= {PATCH_SIZE}, got {input_fdim}")
        self.input_fdim = input_fdim
        self.grid_f = input_fdim // PATCH_SIZE
        if token_frames and PATCH_SIZE % self.grid_f:
            raise ValueError(
                f"token_frames needs {PATCH_SIZE} divisible by the {self.grid_f} frequency patches"
            )
        self.num_heads = num_heads
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.layerdrop = layerdrop
        self.token_frames = token_frames
        self.num_features = embed_dim
        self.time_stride = PATCH_SIZE // self.grid_f if token_frames else PATCH_SIZE
        self.min_frames = PATCH_SIZE

        self.patch_embed = nn.Conv2d(1, patch_dim, PATCH_SIZE, stride=PATCH_SIZE, bias=False)
        self.patch_norm = nn.LayerNorm(patch_dim, eps=norm_eps)
        self.proj = nn.Linear(patch_dim, embed_dim) if patch_dim != embed_dim else nn.Identity()
        self.input_drop = nn.Dropout(input_drop_rate)
        self.pos_conv = nn.Conv1d(
            embed_dim, embed_dim, conv_pos, padding=conv_pos // 2, groups=conv_pos_groups
        )
        self.pos_trim = 1 if conv_pos % 2 == 0 else 0  # upstream SamePad: drop the extra output
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.pos_drop = nn.Dropout(drop_rate)
        self.rel_pos_bias = nn.Embedding(num_buckets, num_heads)
        alpha = (2.0 * depth) ** 0.25 if deep_norm else 1.0
        self.blocks = nn.ModuleList(
            BEATsLayer(
                embed_dim,
                num_heads,
                int(embed_dim * mlp_ratio),
                alpha,
                drop_rate,
                attn_drop_rate,
                act_drop_rate,
                norm_eps,
            )
            for _ in range(depth)
        )
        self._init_weights(depth, deep_norm, conv_pos)

    def _init_weights(self, depth: int, deep_norm: bool, conv_pos: int) -> None:
        """Upstream's initialisation: BERT normal(0.02) Linear/Embedding weights, zero biases;
        with deep norm, Xavier-normal q, k (gain 1) and v, out, fc1, fc2 (gain (8 depth)^-1/4);
        the positional convolution normal with std sqrt(4 / (kernel * D)), zero bias."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        d = self.num_features
        nn.init.normal_(self.pos_conv.weight, std=math.sqrt(4.0 / (conv_pos * d)))
        assert self.pos_conv.bias is not None
        nn.init.zeros_(self.pos_conv.bias)
        if deep_norm:
            beta = (8.0 * depth) ** -0.25
            for block in self.layers():
                w = block.attn.qkv.weight.data
                for part, gain in zip(w.split(d), (1.0, 1.0, beta), strict=True):
                    nn.init.xavier_normal_(part, gain=gain)
                for lin in (block.attn.proj, block.mlp.fc1, block.mlp.fc2):
                    nn.init.xavier_normal_(lin.weight, gain=beta)

    def layers(self) -> list[BEATsLayer]:
        """The transformer layers, typed."""
        return [cast(BEATsLayer, block) for block in self.blocks]

    def num_output_frames(self, num_frames: int) -> int:
        t = num_frames // PATCH_SIZE
        return t * self.grid_f if self.token_frames else t

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """(H, N, N) relative position bias of a sequence of ``length`` tokens (before gating)."""
        table = relative_position_buckets(self.num_buckets, self.max_distance, length - 1)
        per_offset = self.rel_pos_bias(table.to(device))  # (2N - 1, H)
        pos = torch.arange(length, device=device)
        offset = pos[None, :] - pos[:, None] + (length - 1)  # key - query, shifted to >= 0
        return per_offset[offset].permute(2, 0, 1).contiguous()

    def tokens(self, spec: torch.Tensor) -> torch.Tensor:
        """Encoder output for a spectrogram: (B, 1, F, T) -> (B, T' * F', D), time-major."""
        check_spectrogram(spec, "BEATs", self.input_fdim)
        if spec.shape[-1] < PATCH_SIZE:
            raise InvalidAudioError(
                f"BEATs needs at least {PATCH_SIZE} frames (one patch), got {spec.shape[-1]}; "
                "AudioModel pads short clips to that length"
            )
        # Upstream convolves the (T, F) fbank: patches come out (T', F') and flatten time-major.
        x = self.patch_embed(spec.transpose(2, 3)).flatten(2).transpose(1, 2)  # (B, N, 512)
        x = self.input_drop(self.proj(self.patch_norm(x)))
        conv = self.pos_conv(x.transpose(1, 2))
        if self.pos_trim:
            conv = conv[..., : -self.pos_trim]
        x = self.pos_drop(self.norm(x + F.gelu(conv).transpose(1, 2)))
        b, n, _ = x.shape
        pos_bias = self.position_bias(n, x.device)
        # Without autograd (and autocast), every layer writes its gated bias into one buffer: a
        # (B, H, N, N) tensor is 63 MB for two 23 s clips, and a fresh one per layer page-faults.
        buffer = None
        # (meta tensors, as in count_macs, have no autocast state to ask for)
        meta = x.device.type == "meta"
        if (
            not torch.is_grad_enabled()
            and not meta
            and not torch.is_autocast_enabled(x.device.type)
        ):
            buffer = x.new_empty((b, self.num_heads, n, n))
        for block in self.blocks:
            if self.training and self.layerdrop > 0 and torch.rand(()).item() < self.layerdrop:
                continue
            x = block(x, pos_bias, buffer)
        return x

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T), T >= 16. Returns: grid (B, D, F', T // 16), or with
        ``token_frames`` (B, D, 1, (T // 16) * F'); no summary token (clip pooling is the mean)."""
        return self._features(self.tokens(spec))

    def _features(self, x: torch.Tensor) -> Features:
        """(B, T' * F', D) time-major tokens -> Features (the layout of :meth:`forward`)."""
        b, n, d = x.shape
        if self.token_frames:
            return Features(grid=x.transpose(1, 2).unsqueeze(2))
        grid = x.view(b, n // self.grid_f, self.grid_f, d).permute(0, 3, 2, 1)
        return Features(grid=grid)

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """The tokens entering or leaving a layer, laid out as :meth:`forward`'s output."""
        (tokens,) = hidden
        return self._features(tokens)

    def stages(self) -> list[nn.Module]:
        """Patch embedding with the positional convolution, norm and the shared relative
        position table, then each layer."""
        embed = ParamStage(
            {
                "patch_embed": self.patch_embed,
                "patch_norm": self.patch_norm,
                "proj": self.proj,
                "pos_conv": self.pos_conv,
                "norm": self.norm,
                "rel_pos_bias": self.rel_pos_bias,
            },
            {},
        )
        return [embed, *self.blocks]


# ---------------------------------------------------------------------------------------------
# Weight table.
#
# microsoft/unilm release: the README's download links (Azure blobs, then OneDrive share pages)
# have died or stopped being directly downloadable several times (unilm issues 1009, 1492, 1497,
# 1542, 1656, 1671); today's links are OneDrive pages that need a browser. audiozoo therefore
# fetches the unmodified unilm files from Hugging Face Hub mirrors, first the one most projects use
# (lpepino/beats_ckpts, the mirror of easyaudio and many DCASE systems), then independent ones:
# ``url`` wins, each of ``alt_urls`` is tried in order when the previous one fails. Where a file's
# sha256 is known (the same bytes on several independent mirrors) it is pinned. The PretrainedSED
# files are GitHub release assets (stable).

FAMILY = "BEATs"
# The smallest BEATs the registry-wide tests build: same structure, 32 wide, one layer, 2 heads.
TEST_KWARGS = {
    "patch_dim": 16,
    "embed_dim": 32,
    "depth": 1,
    "num_heads": 2,
    "conv_pos": 8,
    "conv_pos_groups": 4,
}

# The BibTeX the unilm README asks for.
_CITATION = """@article{Chen2022beats,
  title         = {{BEATs}: Audio Pre-Training with Acoustic Tokenizers},
  author        = {Sanyuan Chen and Yu Wu and Chengyi Wang and Shujie Liu and Daniel Tompkins and
                   Zhuo Chen and Furu Wei},
  eprint        = {2212.09058},
  archivePrefix = {arXiv},
  year          = {2022},
}"""
_SED_CITATION = """@inproceedings{schmid2025sed,
  author    = {Florian Schmid and Tobias Morocutti and Francesco Foscarin and Jan Schl{\\"u}ter and
               Paul Primus and Gerhard Widmer},
  title     = {Effective Pre-Training of Audio Transformers for Sound Event Detection},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2025},
}"""
_PAPER = "https://arxiv.org/abs/2212.09058"
_SED_PAPER = "https://arxiv.org/abs/2409.09546"

# kaldi_fbank differences from its defaults: BEATs.preprocess is torchaudio's kaldi.fbank with its
# defaults (povey window, 20 Hz to Nyquist, pre-emphasis 0.97, DC removal, dither 0) on the
# waveform times 2^15, without padding, normalised (x - 15.41663) / (2 * 6.55582).
FRONTEND: dict[str, Any] = {
    "name": "kaldi_fbank",
    "window": "povey",
    "input_scale": 32768.0,
    "target_frames": None,
    "mean": FBANK_MEAN,
    "std": FBANK_STD,
}

_HF = "https://huggingface.co/{}/resolve/main/{}"
_SED_RELEASE = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"


def _unilm(
    tag: str,
    filename: str,
    *,
    mirrors: tuple[str, ...] = ("lpepino/beats_ckpts",),
    sha256: str | None = None,
    finetuned: bool = False,
    notes: str,
) -> PretrainedCfg:
    """One file of the microsoft/unilm release (MIT), fetched from Hub mirrors in order."""
    urls = [_HF.format(repo, filename) for repo in mirrors]
    return PretrainedCfg(
        arch="beats",
        tag=tag,
        url=urls[0],
        alt_urls=tuple(urls[1:]),
        sha256=sha256,
        converter="beats",
        frontend=FRONTEND,
        head={"name": "linear"} if finetuned else {"name": "identity"},
        label_set="audioset" if finetuned else None,
        license="MIT",
        citation=_CITATION,
        paper=_PAPER,
        notes=f"{notes} Upstream file: microsoft/unilm beats/ release, {filename}.",
    )


def _sed(tag: str, filename: str, *, strong: bool, notes: str) -> PretrainedCfg:
    """One file of the PretrainedSED v0.0.1 release (MIT)."""
    return PretrainedCfg(
        arch="beats",
        tag=tag,
        url=_SED_RELEASE + filename,
        converter="beats",
        frontend=FRONTEND,
        # PretrainedSED's wrapper pools the 496 time-major tokens of a 10 s window to 250 frames
        backbone_kwargs={"token_frames": True} if strong else {},
        head={"name": "sed"} if strong else {"name": "identity"},
        label_set="audioset_strong" if strong else None,
        license="MIT",
        citation=_SED_CITATION if strong else _CITATION,
        paper=_SED_PAPER if strong else _PAPER,
        metrics={"audioset_strong_psds1": 0.465} if strong else {},
        notes=notes,
    )


_ENCODER_NOTE = (
    "Self-supervised encoder without a classifier: model(x) and embed(x) give the (B, 768) mean "
    "token, embed(x, frames=True) (B, T, 768) every 160 ms. Fine-tune with head=..., num_classes=..."
)
_FINETUNED_NOTE = (
    "BEATs_iter3+ (AS2M) fine-tuned on AudioSet-2M ({}); the paper reports 48.6 mAP for this "
    "setting and the release does not say which checkpoint gives it. Returns logits (upstream "
    "applies a sigmoid); the predictor rows are reordered from the checkpoint's label_dict to "
    "AudioSet's class_labels_indices order."
)

BEATS_WEIGHTS = [
    _unilm(
        "iter3",
        "BEATs_iter3.pt",
        notes=f"BEATs iteration 3, self-supervised on AudioSet-2M. {_ENCODER_NOTE}",
    ),
    _unilm(
        "iter3_plus_as2m",
        "BEATs_iter3_plus_AS2M.pt",
        mirrors=("lpepino/beats_ckpts", "alibabasglab/beats"),
        sha256="d43cbfad4d7b56381c061d7a24774f908d4d94c72961f6eb1d9090ff18cd8d34",
        notes=(
            "BEATs iteration 3+, self-supervised on AudioSet-2M with the tokenizer distilled from "
            "the AudioSet-2M fine-tuned model (the encoder DCASE baselines use). "
            f"{_ENCODER_NOTE}"
        ),
    ),
    _unilm(
        "iter3_plus_as2m_cpt1",
        "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt1.pt",
        finetuned=True,
        notes=_FINETUNED_NOTE.format("checkpoint 1"),
    ),
    _unilm(
        "iter3_plus_as2m_cpt2",
        "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt",
        mirrors=(
            "lpepino/beats_ckpts",
            "THUdyh/Ola_speech_encoders",
            "camenduru/beats",
            "WeiChihChen/BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2",
        ),
        finetuned=True,
        notes=_FINETUNED_NOTE.format("checkpoint 2, the one SALMONN and other audio LLMs use"),
    ),
    _sed(
        "ssl",
        "BEATs_ssl.pt",
        strong=False,
        notes=(
            "PretrainedSED's starting point 'ssl': BEATs_iter3 (microsoft/unilm) in the "
            f"PretrainedSED file layout. {_ENCODER_NOTE}"
        ),
    ),
    _sed(
        "as_weak",
        "BEATs_weak.pt",
        strong=False,
        notes=(
            "PretrainedSED's starting point 'weak': BEATs_iter3+ (AS2M) (microsoft/unilm) in the "
            f"PretrainedSED file layout. {_ENCODER_NOTE}"
        ),
    ),
    _sed(
        "as_strong",
        "BEATs_strong_1.pt",
        strong=True,
        notes=(
            "Trained on AudioSet-Strong (447 classes) by PretrainedSED from the 'weak' starting "
            "point, with knowledge distillation from a teacher ensemble; PSDS1 46.5 is the mean of "
            "3 runs (this is run 1). model(x) gives strong logits (B, T, 447) every 40 ms, "
            "model.clip_logits(x) the weak ones; audio runs in 10 s windows as upstream. Upstream "
            "pools the 496 time-major tokens of a window (8 frequency patches per 160 ms, in "
            "sequence) to 250 frames; this is reproduced as is."
        ),
    ),
]


# ---------------------------------------------------------------------------------------------
# Registration.


@register_backbone(
    "beats",
    weights=BEATS_WEIGHTS,
    default_tag="iter3_plus_as2m",
    family=FAMILY,
    test_kwargs=TEST_KWARGS,
)
def beats(**kwargs: Any) -> BEATs:
    """BEATs base: 12 layers, 768 wide, 16x16 patches of a 128-bin fbank, 160 ms frames."""
    return BEATs(**kwargs)
