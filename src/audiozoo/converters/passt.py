"""PaSST checkpoints (GitHub releases of kkoutini/PaSST, also used by ``hear21passt``).

Upstream files are plain state dicts of the bare ``PaSST`` network, whose parameter names
audiozoo's :class:`~audiozoo.backbones.passt.PaSST` keeps, so the backbone needs only a prefix.
The head ``nn.Sequential(LayerNorm, Linear)`` becomes the named layers of the ``linear`` head.
``hear21passt``'s wrapper (``PasstBasicWrapper``) state dict nests the network under ``net.``
and adds a dummy ``device_proxy`` parameter; both forms are read.
"""

from __future__ import annotations

from .base import VIT_BLOCK, Converter, Rule, register_converter

__all__ = ["PASST", "PASST_TOKENS"]

_NET = r"(?:net\.)?"  # hear21passt wrapper prefix
#: PaSST's summary tokens and positions (fPaSST has the same)
PASST_TOKENS = r"cls_token|dist_token|new_pos_embed|freq_new_pos_embed|time_new_pos_embed"
_BACKBONE = rf"{PASST_TOKENS}|patch_embed\.proj\.(?:weight|bias)|{VIT_BLOCK}|norm\.(?:weight|bias)"

PASST = register_converter(
    Converter(
        "passt",
        (
            # blocks.3.attn.qkv.weight -> backbone.blocks.3.attn.qkv.weight;
            # net.time_new_pos_embed -> backbone.time_new_pos_embed
            Rule(rf"{_NET}({_BACKBONE})", r"backbone.\1"),
            # head.0.weight -> head.norm.weight (LayerNorm, eps 1e-5)
            Rule(rf"{_NET}head\.0\.(weight|bias)", r"head.norm.\1"),
            # head.1.bias -> head.fc.bias (Linear 768 -> classes)
            Rule(rf"{_NET}head\.1\.(weight|bias)", r"head.fc.\1"),
            # head_dist.weight -> dropped: the distillation head is never used in upstream forward
            Rule(rf"{_NET}head_dist\.(weight|bias)", None),
            # device_proxy -> dropped: hear21passt's dummy parameter for finding the device
            Rule(r"device_proxy", None),
        ),
    )
)
