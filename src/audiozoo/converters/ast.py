"""AST checkpoints: the Hugging Face ``MIT/ast-*`` format and the original release.

``ast_hf`` reads ``ASTForAudioClassification`` / ``ASTModel`` state dicts as stored on the Hub and
written by ``save_pretrained`` (transformers 4.x names, which transformers 5 still writes), and
also transformers 5's in-memory names (``layers.N.attention.q_proj`` ...). Hugging Face stores
query, key and value as three Linear layers; audiozoo's attention has one fused ``qkv`` Linear
(rows ``q | k | v``, as timm and the original release), so after renaming, the three parts of
each layer are concatenated.

``ast_original`` reads the ``.pth`` files of YuanGongND/ast, saved from ``nn.DataParallel``
(``module.`` prefix) with timm's fused ``qkv`` and the unused ImageNet DeiT heads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .base import VIT_BLOCK, Converter, Rule, StateDict, fuse_qkv, register_converter

__all__ = ["AST_HF", "AST_ORIGINAL", "QKVFusingConverter"]


@dataclass(frozen=True)
class QKVFusingConverter(Converter):
    """A converter whose rules emit ``<prefix>.attn.{q,k,v}.<param>`` for split attention
    projections; after renaming these are concatenated (q, k, v order, dim 0) into
    ``<prefix>.attn.qkv.<param>``. A layer with only some of the three parts is an error."""

    def __call__(self, checkpoint: Mapping[str, object]) -> StateDict:
        renamed = super().__call__(checkpoint)
        parts: dict[str, dict[str, torch.Tensor]] = {}
        out: StateDict = {}
        for key, value in renamed.items():
            m = _SPLIT.fullmatch(key)
            if m is None:
                out[key] = value
            else:
                parts.setdefault(f"{m[1]}.attn.qkv.{m[3]}", {})[m[2]] = value
        out.update(fuse_qkv(self.name, parts))
        return out


_SPLIT = re.compile(r"(.+)\.attn\.(q|k|v)\.(weight|bias)")
_HF = r"(?:audio_spectrogram_transformer\.)?"  # absent in a bare ASTModel state dict
_LAYER = rf"{_HF}(?:encoder\.layer|layers)\.(\d+)\."  # 4.x / Hub names | transformers 5 in memory
_P = r"(weight|bias)"

AST_HF = register_converter(
    QKVFusingConverter(
        "ast_hf",
        (
            # audio_spectrogram_transformer.embeddings.cls_token -> backbone.cls_token
            Rule(rf"{_HF}embeddings\.cls_token", "backbone.cls_token"),
            # ...embeddings.distillation_token -> backbone.dist_token
            Rule(rf"{_HF}embeddings\.distillation_token", "backbone.dist_token"),
            # ...embeddings.position_embeddings -> backbone.pos_embed (1, 2 + F'T', D)
            Rule(rf"{_HF}embeddings\.position_embeddings", "backbone.pos_embed"),
            # ...embeddings.patch_embeddings.projection.weight -> backbone.patch_embed.proj.weight
            Rule(
                rf"{_HF}embeddings\.patch_embeddings\.projection\.{_P}",
                r"backbone.patch_embed.proj.\1",
            ),
            # ...encoder.layer.0.attention.attention.query.weight (or layers.0.attention.q_proj.weight)
            #   -> backbone.blocks.0.attn.q.weight, fused into attn.qkv afterwards
            Rule(
                rf"{_LAYER}attention\.(?:attention\.query|q_proj)\.{_P}",
                r"backbone.blocks.\1.attn.q.\2",
            ),
            Rule(
                rf"{_LAYER}attention\.(?:attention\.key|k_proj)\.{_P}",
                r"backbone.blocks.\1.attn.k.\2",
            ),
            Rule(
                rf"{_LAYER}attention\.(?:attention\.value|v_proj)\.{_P}",
                r"backbone.blocks.\1.attn.v.\2",
            ),
            # ...encoder.layer.0.attention.output.dense.bias (or layers.0.attention.o_proj.bias)
            #   -> backbone.blocks.0.attn.proj.bias
            Rule(
                rf"{_LAYER}attention\.(?:output\.dense|o_proj)\.{_P}",
                r"backbone.blocks.\1.attn.proj.\2",
            ),
            # ...layernorm_before.weight -> backbone.blocks.N.norm1.weight
            Rule(rf"{_LAYER}layernorm_before\.{_P}", r"backbone.blocks.\1.norm1.\2"),
            # ...layernorm_after.weight -> backbone.blocks.N.norm2.weight
            Rule(rf"{_LAYER}layernorm_after\.{_P}", r"backbone.blocks.\1.norm2.\2"),
            # ...intermediate.dense.weight (or mlp.fc1.weight) -> backbone.blocks.N.mlp.fc1.weight
            Rule(
                rf"{_LAYER}(?:intermediate\.dense|mlp\.fc1)\.{_P}", r"backbone.blocks.\1.mlp.fc1.\2"
            ),
            # ...output.dense.weight (or mlp.fc2.weight) -> backbone.blocks.N.mlp.fc2.weight
            Rule(rf"{_LAYER}(?:output\.dense|mlp\.fc2)\.{_P}", r"backbone.blocks.\1.mlp.fc2.\2"),
            # audio_spectrogram_transformer.layernorm.weight -> backbone.norm.weight
            Rule(rf"{_HF}layernorm\.{_P}", r"backbone.norm.\1"),
            # classifier.layernorm.weight -> head.norm.weight
            Rule(rf"classifier\.layernorm\.{_P}", r"head.norm.\1"),
            # classifier.dense.weight -> head.fc.weight
            Rule(rf"classifier\.dense\.{_P}", r"head.fc.\1"),
        ),
    )
)

_ORIG = r"(?:module\.)?"  # nn.DataParallel prefix

AST_ORIGINAL = register_converter(
    Converter(
        "ast_original",
        (
            # module.v.blocks.0.attn.qkv.weight -> backbone.blocks.0.attn.qkv.weight;
            # module.v.pos_embed -> backbone.pos_embed
            Rule(
                rf"{_ORIG}v\.(cls_token|dist_token|pos_embed|patch_embed\.proj\.{_P}"
                rf"|{VIT_BLOCK}"
                rf"|norm\.{_P})",
                r"backbone.\1",
            ),
            # module.v.head.weight, module.v.head_dist.bias -> dropped: timm's ImageNet DeiT
            # classifiers (1000 classes), unused by AST
            Rule(rf"{_ORIG}v\.head(?:_dist)?\.{_P}", None),
            # module.mlp_head.0.weight -> head.norm.weight (LayerNorm)
            Rule(rf"{_ORIG}mlp_head\.0\.{_P}", r"head.norm.\1"),
            # module.mlp_head.1.weight -> head.fc.weight (Linear 768 -> classes)
            Rule(rf"{_ORIG}mlp_head\.1\.{_P}", r"head.fc.\1"),
        ),
    )
)
