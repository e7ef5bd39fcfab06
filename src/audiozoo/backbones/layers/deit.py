"""The distilled-ViT (DeiT) body of the spectrogram transformers PaSST, fPaSST and AST.

All three put a class token and a distillation token in front of their patch (or frame) tokens,
run timm's pre-norm blocks (:func:`~.transformer.vit_blocks`) and a final LayerNorm, and take the
mean of the two summary tokens after it as the clip embedding. :class:`DeiTBackbone` is that body;
:class:`PaSSTBackbone` adds PaSST's positions (one embedding per summary token, separate
frequency and time embeddings added to the patch grid), which fPaSST shares. Parameter names are
upstream's (``cls_token``, ``dist_token``, ``new_pos_embed``, ...), so checkpoints map onto the
families by prefix renames.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from ..base import Backbone, Features
from .transformer import ParamStage, init_vit_weights, run_blocks, split_tokens, vit_blocks

__all__ = ["DeiTBackbone", "PaSSTBackbone", "fill_after_lengths"]


class DeiTBackbone(Backbone):
    """Base of the DeiT-style spectrogram transformers: summary tokens, blocks, final norm.

    A subclass builds, in this order (the order of the random initialisation and of the
    state-dict keys): its patch embedding, :meth:`_add_summary_tokens`, its positional
    parameters, :meth:`_add_blocks`, then calls :meth:`_init_weights`. It names its embedding
    modules and positional parameters in :meth:`_embed_modules` and :meth:`_positions`, and the
    token grid of a hidden layer in :meth:`_token_grid`.
    """

    patch_embed: nn.Module
    cls_token: nn.Parameter
    dist_token: nn.Parameter
    pos_drop: nn.Dropout
    blocks: nn.Sequential
    norm: nn.LayerNorm

    def _add_summary_tokens(self, embed_dim: int) -> None:
        """The cls and dist tokens; ``embed_dim`` is the width of everything after them."""
        self.num_features = embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

    def _add_blocks(
        self,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        norm_eps: float,
        drop_rate: float,
        attn_drop_rate: float,
        drop_path_rate: float,
    ) -> None:
        """Dropout on the tokens, ``depth`` blocks (qkv with bias), the final LayerNorm."""
        dim = self.num_features
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = vit_blocks(
            depth,
            dim,
            num_heads,
            drop_path_rate,
            mlp_ratio=mlp_ratio,
            norm_eps=norm_eps,
            drop=drop_rate,
            attn_drop=attn_drop_rate,
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def _init_weights(self) -> None:
        """timm's: truncated normal (std 0.02) tokens and positions, then :func:`init_vit_weights`."""
        for p in (self.cls_token, self.dist_token, *self._positions().values()):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(init_vit_weights)

    def _embed_modules(self) -> dict[str, nn.Module]:
        """The modules before the first block (the first stage), by attribute name."""
        return {"patch_embed": self.patch_embed}

    @abc.abstractmethod
    def _positions(self) -> dict[str, nn.Parameter]:
        """The positional parameters, by attribute name, in initialisation order."""

    @abc.abstractmethod
    def _token_grid(self, num_tokens: int, spec: torch.Tensor) -> tuple[int, int]:
        """``(F', T')`` of the ``num_tokens`` patch tokens of a hidden layer for ``spec``."""

    def _with_summary_tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, N, D) -> (B, 2 + N, D) with the cls and dist tokens in front."""
        b = patches.shape[0]
        return torch.cat(
            (self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), patches), dim=1
        )

    def _encode(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, 2 + N, D) with their positions -> the patch tokens (B, N, D) after the
        blocks and the final norm, and the clip embedding (B, D): the mean of cls and dist."""
        tokens = self.norm(run_blocks(self.blocks, self.pos_drop(tokens), mask))
        return tokens[:, 2:], (tokens[:, 0] + tokens[:, 1]) / 2

    def layer_features(self, index: int, hidden: list[Any], spec: torch.Tensor) -> Features:
        """Tokens (B, 2 + N, D) of a block -> summary token (mean of cls and dist) and grid."""
        (tokens,) = hidden
        token, grid = split_tokens(tokens, 2, *self._token_grid(tokens.shape[1] - 2, spec))
        return Features(grid=grid, token=token)

    def stages(self) -> list[nn.Module]:
        """The embedding (its modules with the summary tokens and positions), each block, the
        final norm."""
        params = {"cls_token": self.cls_token, "dist_token": self.dist_token, **self._positions()}
        return [ParamStage(self._embed_modules(), params), *self.blocks, self.norm]


class PaSSTBackbone(DeiTBackbone):
    """:class:`DeiTBackbone` with PaSST's positions: ``new_pos_embed`` (1, 2, D) for the cls and
    dist tokens, ``freq_new_pos_embed`` (1, D, F', 1) and ``time_new_pos_embed`` (1, D, 1, T'max)
    added to the patch grid (B, D, F', T'), time first as upstream."""

    new_pos_embed: nn.Parameter
    freq_new_pos_embed: nn.Parameter
    time_new_pos_embed: nn.Parameter

    def _add_positions(self, embed_dim: int, grid_f: int, grid_t: int) -> None:
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid_f, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, grid_t))

    def _positions(self) -> dict[str, nn.Parameter]:
        return {
            "new_pos_embed": self.new_pos_embed,
            "freq_new_pos_embed": self.freq_new_pos_embed,
            "time_new_pos_embed": self.time_new_pos_embed,
        }

    def _add_grid_positions(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Patch grid (B, D, F', T') plus the time positions ``offset .. offset + T'`` and the
        frequency positions (in upstream's order, for bitwise-close results)."""
        x = x + self.time_new_pos_embed[..., offset : offset + x.shape[-1]]
        return x + self.freq_new_pos_embed

    def _with_summary_tokens(self, patches: torch.Tensor) -> torch.Tensor:
        b = patches.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        return torch.cat((cls, dist, patches), dim=1)


def fill_after_lengths(spec: torch.Tensor, lengths: torch.Tensor, value: float) -> torch.Tensor:
    """(B, 1, F, T) with the frames after each clip's ``lengths`` (B,) set to ``value``."""
    frame = torch.arange(spec.shape[-1], device=spec.device)
    pad = (frame[None] >= lengths.to(spec.device)[:, None])[:, None, None]
    return spec.masked_fill(pad, value)
