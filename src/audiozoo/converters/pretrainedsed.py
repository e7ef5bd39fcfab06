"""PretrainedSED checkpoints (fschmid56/PretrainedSED release v0.0.1: ``frame_mn06_strong_1.pt``,
``frame_mn10_strong_1.pt``, ``fpasst_strong_1.pt``, ``fpasst_weak.pt``).

Each file is a plain state dict of upstream's ``PredictionsWrapper(<backbone wrapper>)``: the
backbone under ``model.``, the linear heads ``strong_head`` and ``weak_head``
(:class:`~audiozoo.heads.SEDHead`'s ``strong`` and ``weak``). The backbone prefixes differ:

=============  ==========================================  ====================================
format          upstream keys                               audiozoo keys
=============  ==========================================  ====================================
frame_mn        ``model.frame_mn.features.*`` (as stored)   ``backbone.features.*``
fPaSST          ``model.*`` (upstream renames them to       ``backbone.*``
                ``model.fpasst.*`` when loading; both
                forms are read)
heads           ``strong_head.*``, ``weak_head.*``          ``head.strong.*``, ``head.weak.*``
=============  ==========================================  ====================================

The frame_mn layout is EfficientAT's ``features.*`` (:mod:`audiozoo.converters.efficientat`),
kept one to one by :class:`~audiozoo.backbones.pretrainedsed.FrameMobileNet`, BatchNorm
``num_batches_tracked`` included. Teacher checkpoints with a sequence model (``seq_model.*``) and
the other transformers of the release (BEATs, ATST-F, ASiT, M2D) are different formats: their keys
match no rule here and raise.
"""

from __future__ import annotations

from .base import VIT_BLOCK, Converter, Rule, register_converter
from .passt import PASST_TOKENS

__all__ = ["FPASST", "FRAME_MN"]

_HEADS = (
    # strong_head.weight -> head.strong.weight (Linear C -> 447, applied per frame)
    Rule(r"strong_head\.(weight|bias)", r"head.strong.\1"),
    # weak_head.bias -> head.weak.bias (Linear C -> 447 on the time mean)
    Rule(r"weak_head\.(weight|bias)", r"head.weak.\1"),
)

_FPASST_BACKBONE = (
    rf"{PASST_TOKENS}|conv_in_[123]\.(?:weight|bias)|patch_embed\.proj\.(?:weight|bias)"
    rf"|{VIT_BLOCK}|norm\.(?:weight|bias)"
)

FRAME_MN = register_converter(
    Converter(
        "pretrainedsed_frame_mn",
        (
            # model.frame_mn.features.5.block.2.conc_se_layers.0.fc1.weight
            #   -> backbone.features.5.block.2.conc_se_layers.0.fc1.weight
            Rule(r"model\.frame_mn\.(features\..+)", r"backbone.\1"),
            *_HEADS,
        ),
    )
)

FPASST = register_converter(
    Converter(
        "pretrainedsed_fpasst",
        (
            # model.blocks.3.attn.qkv.weight -> backbone.blocks.3.attn.qkv.weight;
            # model.fpasst.conv_in_1.bias (upstream's in-memory name) -> backbone.conv_in_1.bias
            Rule(rf"model\.(?:fpasst\.)?({_FPASST_BACKBONE})", r"backbone.\1"),
            *_HEADS,
        ),
    )
)
