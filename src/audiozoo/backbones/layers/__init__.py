"""Building blocks shared by several backbones."""

from .transformer import Attention, Block, DropPath, Mlp, ParamStage, PatchEmbed, init_vit_weights

__all__ = ["Attention", "Block", "DropPath", "Mlp", "ParamStage", "PatchEmbed", "init_vit_weights"]
