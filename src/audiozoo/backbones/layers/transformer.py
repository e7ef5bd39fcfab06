"""Vision-transformer building blocks shared by the spectrogram transformers (PaSST, AST).

The layouts and state-dict keys follow timm's ViT/DeiT, which both upstream projects copied, so
checkpoints map onto these modules by renaming only:

- :class:`PatchEmbed`: ``proj.{weight,bias}``
- :class:`Attention`: ``qkv.{weight,bias}`` (rows ``q | k | v``), ``proj.{weight,bias}``
- :class:`Mlp`: ``fc1.*``, ``fc2.*``
- :class:`Block`: ``norm1.*``, ``attn.*``, ``norm2.*``, ``mlp.*``
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "ParamStage",
    "PatchEmbed",
    "init_vit_weights",
    "key_padding_mask",
    "run_blocks",
    "split_tokens",
    "vit_blocks",
]


class PatchEmbed(nn.Module):
    """Overlapping square patches of a spectrogram, embedded by one strided convolution.

    Args:
        embed_dim: output channels ``D``.
        patch_size: square kernel size (16 for PaSST and AST).
        stride: ``(freq_stride, time_stride)``; smaller than ``patch_size`` means overlap.
        in_chans: input channels (1 for a spectrogram).

    Shapes:
        (B, in_chans, F, T) -> (B, D, F', T') with ``F' = (F - patch) // fs + 1`` and likewise T'.
    """

    def __init__(
        self,
        embed_dim: int = 768,
        patch_size: int = 16,
        stride: tuple[int, int] = (10, 10),
        in_chans: int = 1,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.stride = stride
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def grid_shape(self, num_freq: int, num_frames: int) -> tuple[int, int]:
        """``(F', T')`` for an input of ``num_freq`` bins and ``num_frames`` frames."""
        return (
            (num_freq - self.patch_size) // self.stride[0] + 1,
            (num_frames - self.patch_size) // self.stride[1] + 1,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection.

    Uses :func:`torch.nn.functional.scaled_dot_product_attention` (scale ``head_dim ** -0.5``),
    which picks a fused kernel where the device has one.

    Args:
        dim: token width ``D``.
        num_heads: number of heads; ``D`` must be divisible by it.
        qkv_bias: whether the ``qkv`` projection has a bias.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.

    Shapes:
        (B, N, D) -> (B, N, D); the optional ``attn_mask`` is SDPA's: boolean (True = attend) or
        additive, broadcastable to (B, H, N, N), e.g. (B, 1, 1, N) to hide padded keys.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        # (B, N, 3D) -> (3, B, H, N, D/H): rows of qkv are q | k | v, each split per head
        qkv = (
            self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        )
        x = F.scaled_dot_product_attention(
            qkv[0],
            qkv[1],
            qkv[2],
            attn_mask=attn_mask,
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        x = x.transpose(1, 2).reshape(b, n, d)  # (B, H, N, D/H) -> (B, N, D)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """Transformer feed-forward: Linear -> GELU (exact, erf) -> Linear.

    Shapes:
        (B, N, D) -> (B, N, D).
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch for whole samples with probability ``p``
    (training only), scaling the kept samples by ``1 / (1 - p)``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Args:
        dim: token width ``D``.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``D``.
        qkv_bias: bias in the ``qkv`` projection.
        norm_eps: LayerNorm epsilon (1e-6 in timm/PaSST/original AST, 1e-12 in the HF AST port).
        drop: dropout after the attention projection and in the MLP.
        attn_drop: dropout on attention weights.
        drop_path: stochastic-depth probability of both residual branches.

    Shapes:
        (B, N, D) -> (B, N, D); ``attn_mask`` as in :class:`Attention`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def vit_blocks(
    depth: int, dim: int, num_heads: int, drop_path: float, **block: Any
) -> nn.Sequential:
    """``depth`` :class:`Block` s in a Sequential (keys ``N.*``), their stochastic depth rising
    linearly from 0 to ``drop_path`` (timm's rule, in float32 as timm computes it); ``block``:
    the other arguments of every :class:`Block`."""
    rates = torch.linspace(0, drop_path, depth).tolist()
    return nn.Sequential(*(Block(dim, num_heads, drop_path=r, **block) for r in rates))


class ParamStage(nn.Module):
    """A view that groups modules and loose parameters of a backbone into one stage.

    :meth:`Backbone.stages` must return modules, but a transformer's first stage is the patch
    embedding *plus* parameters that live on the backbone itself (tokens, positional
    embeddings). This module references them without becoming part of the backbone, so the
    backbone's state-dict keys do not change. It is used for ``parameters()`` and
    ``requires_grad_()``; it has no forward.
    """

    def __init__(self, modules: dict[str, nn.Module], params: dict[str, nn.Parameter]) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        for name, param in params.items():
            self.register_parameter(name, param)


def init_vit_weights(module: nn.Module) -> None:
    """timm's ViT initialisation: truncated normal (std 0.02) Linear weights, zero biases,
    unit LayerNorms; convolutions keep PyTorch's default. Use with ``model.apply``."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def key_padding_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, N) bool, True for real tokens -> (B, 1, 1, N) attention mask that hides the others."""
    return valid[:, None, None, :]


def run_blocks(
    blocks: nn.Sequential | nn.ModuleList, x: torch.Tensor, attn_mask: torch.Tensor | None
) -> torch.Tensor:
    """Blocks in order; without a mask exactly ``blocks(x)`` (the unmasked path is unchanged)."""
    if attn_mask is None and isinstance(blocks, nn.Sequential):
        return blocks(x)  # type: ignore[no-any-return]
    for block in blocks:
        x = block(x, attn_mask)
    return x


def split_tokens(
    tokens: torch.Tensor, num_summary: int, freq: int, time: int
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(B, S + F'*T', D) tokens (S summary tokens first, patches frequency-major) ->
    (mean of the summary tokens (B, D) or None, grid (B, D, F', T'))."""
    b, _, d = tokens.shape
    token = tokens[:, :num_summary].mean(dim=1) if num_summary else None
    grid = tokens[:, num_summary:].transpose(1, 2).reshape(b, d, freq, time)
    return token, grid
