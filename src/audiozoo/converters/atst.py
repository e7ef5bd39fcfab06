"""ATST-Frame checkpoints: audiossl's Lightning checkpoints and PretrainedSED's ATST-F files.

One key layout, three ways of nesting it:

- PretrainedSED (``ATST-F_{ssl,weak,strong_1}.pt``): a plain ``PredictionsWrapper`` state dict,
  ``model.atst.<FrameAST key>``, the mel frontend's buffers ``model.atst_mel.mel_transform.*``
  (some files lack them) and the heads ``strong_head.*``, ``weak_head.*`` (Linear 768 -> 447);
- audiossl (``atstframe_base.ckpt``, ``atstframe_small.ckpt``): a Lightning checkpoint whose
  ``state_dict`` holds the BYOL teacher and student, ``model.{teacher,student}.encoder.<FrameAST
  key>`` plus projector/predictor MLPs. audiossl's ``load_model`` takes the teacher encoder; so
  does this converter, and it drops the student and the MLPs;
- a bare ``FrameAST.state_dict()`` (``<FrameAST key>``).

FrameAST keys -> audiozoo: ``patch_embed.patch_embed.*`` -> ``backbone.patch_embed.*`` (the Linear
on the 64x4 patch), ``pos_embed`` (1, 251, D) -> ``backbone.pos_embed`` (1, 250, D) without slot 0
(the never-used class-token position), ``blocks.N.*`` -> ``backbone.blocks.N.*`` (timm layout,
``qkv`` without bias), ``norm_frame.*`` -> ``backbone.norm.*``. ``mask_embed`` (the learned token
that replaces masked patches during self-supervised training, unused at inference) is dropped.

``atst_frame`` drops PretrainedSED's two heads (the ``ssl`` and ``weak`` tags are encoders);
``atst_frame_sed`` maps them onto the SED head of the ``as_strong`` tag.
"""

from __future__ import annotations

import torch

from .base import Converter, Rule, StateDict, register_converter

__all__ = ["ATST_FRAME", "ATST_FRAME_SED"]

# model.atst. (PretrainedSED) | model.teacher.encoder. (audiossl Lightning) | nothing (bare)
_ENC = r"(?:model\.atst\.|model\.teacher\.encoder\.)?"
_P = r"(weight|bias)"


def _drop_class_slot(key: str, value: torch.Tensor) -> StateDict:
    """FrameAST's table has ``1 + num_patches`` rows; row 0 is a class-token slot that the "cut"
    positional embedding never reads (tokens use rows 1..T)."""
    return {key: value[:, 1:]}


_ENCODER_RULES = (
    # model.atst.pos_embed (1, 251, D) -> backbone.pos_embed (1, 250, D)
    Rule(rf"{_ENC}pos_embed", "backbone.pos_embed", _drop_class_slot),
    # model.atst.patch_embed.patch_embed.weight (D, 256) -> backbone.patch_embed.weight
    Rule(rf"{_ENC}patch_embed\.patch_embed\.{_P}", r"backbone.patch_embed.\1"),
    # model.atst.blocks.0.attn.qkv.weight -> backbone.blocks.0.attn.qkv.weight (ATST's qkv has
    # no bias: a qkv bias is no ATST-Frame checkpoint and stays unmatched)
    Rule(
        rf"{_ENC}(blocks\.\d+\.(?:(?:norm1|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.{_P}"
        r"|attn\.qkv\.weight))",
        r"backbone.\1",
    ),
    # model.atst.norm_frame.weight -> backbone.norm.weight
    Rule(rf"{_ENC}norm_frame\.{_P}", r"backbone.norm.\1"),
    # model.atst.mask_embed: the masked-patch token of self-supervised training -> dropped
    Rule(rf"{_ENC}mask_embed", None),
    # model.atst_mel.mel_transform.{spectrogram.window, mel_scale.fb}: torchaudio buffers of the
    # PretrainedSED frontend, rebuilt by audiozoo's mel frontend -> dropped
    Rule(r"model\.atst_mel\.mel_transform\..+", None),
    # model.student.*: the BYOL student (encoder, projector, predictor); the teacher is the
    # model audiossl uses -> dropped
    Rule(r"model\.student\..+", None),
    # model.teacher.projector.*: the teacher's BYOL projection MLP -> dropped
    Rule(r"model\.teacher\.projector\..+", None),
)

ATST_FRAME = register_converter(
    Converter(
        "atst_frame",
        (
            *_ENCODER_RULES,
            # strong_head.weight, weak_head.bias, ...: PretrainedSED's heads -> dropped (the
            # ssl and weak tags are used as encoders)
            Rule(rf"(?:strong|weak)_head\.{_P}", None),
        ),
        unwrap=("state_dict",),
    )
)

ATST_FRAME_SED = register_converter(
    Converter(
        "atst_frame_sed",
        (
            *_ENCODER_RULES,
            # strong_head.weight (447, D) -> head.strong.weight: per-frame AudioSet-Strong logits
            Rule(rf"strong_head\.{_P}", r"head.strong.\1"),
            # weak_head.weight (447, D) -> head.weak.weight: clip logits on the frame mean
            Rule(rf"weak_head\.{_P}", r"head.weak.\1"),
        ),
        unwrap=("state_dict",),
    )
)
