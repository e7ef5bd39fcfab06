"""Building blocks shared by several backbones."""

from .transformer import (
    Attention,
    Block,
    DropPath,
    Mlp,
    ParamStage,
    PatchEmbed,
    init_vit_weights,
    key_padding_mask,
    run_blocks,
    split_tokens,
    vit_blocks,
)

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
