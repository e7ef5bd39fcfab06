"""CED and Dasheng checkpoints (:mod:`audiozoo.backbones.audio_transformer`).

Both families save the same module layout, so one converter reads all their formats:

- CED on Zenodo (``audiotransformer_*_mAP_*.pt``): a plain state dict of the upstream
  ``AudioTransformer``: ``front_end.*`` (torchaudio window and mel bank buffers),
  ``init_bn.1.*`` (the BatchNorm inside an ``nn.Sequential``), ``patch_embed.proj.*``,
  ``time_pos_embed``, ``freq_pos_embed``, ``blocks.N.*`` (timm names, fused qkv), ``norm.*`` and
  the head ``outputlayer.0`` (LayerNorm) / ``outputlayer.1`` (Linear).
- CED on the Hugging Face Hub (``mispeech/ced-*``): the same tensors under ``encoder.`` with
  ``init_bn.*`` (no Sequential index), the head still ``outputlayer.*``, no ``front_end``.
- Dasheng from pip ``dasheng`` / Zenodo 11511780: ``{"model": state dict, "config": {...}}``
  with the encoder's keys as for CED (no head); the AudioSet fine-tune (Zenodo 13315686) is a
  plain state dict with ``outputlayer.*`` added.
- Dasheng on the Hub (``mispeech/dasheng-*``): the encoder under ``encoder.`` with
  ``init_bn.1.*``.

The ``front_end`` buffers are dropped: audiozoo's ``mel`` frontend builds the same window and
filterbank itself (the weight tables pin its settings).
"""

from __future__ import annotations

from .base import BN_PARAMS, VIT_BLOCK, Converter, Rule, register_converter

__all__ = ["AUDIO_TRANSFORMER"]

_ENC = r"(?:encoder\.)?"  # the Hugging Face ports nest the encoder
_P = r"(weight|bias)"

AUDIO_TRANSFORMER = register_converter(
    Converter(
        "audio_transformer",
        (
            # front_end.0.spectrogram.window, front_end.0.mel_scale.fb -> dropped: torchaudio
            # buffers that audiozoo's mel frontend recomputes
            Rule(rf"{_ENC}front_end\.\d+\.(?:spectrogram\.window|mel_scale\.fb)", None),
            # init_bn.1.running_var (Zenodo, Dasheng Hub) / encoder.init_bn.running_var (CED Hub)
            #   -> backbone.init_bn.running_var
            Rule(rf"{_ENC}init_bn(?:\.1)?\.{BN_PARAMS}", r"backbone.init_bn.\1"),
            # patch_embed.proj.weight -> backbone.patch_embed.weight (the Conv2d itself)
            Rule(rf"{_ENC}patch_embed\.proj\.{_P}", r"backbone.patch_embed.\1"),
            # time_pos_embed -> backbone.time_pos_embed; freq_pos_embed likewise
            Rule(rf"{_ENC}(time_pos_embed|freq_pos_embed)", r"backbone.\1"),
            # blocks.3.attn.qkv.weight -> backbone.blocks.3.attn.qkv.weight
            Rule(rf"{_ENC}({VIT_BLOCK})", r"backbone.\1"),
            # norm.weight -> backbone.norm.weight (the final LayerNorm)
            Rule(rf"{_ENC}norm\.{_P}", r"backbone.norm.\1"),
            # outputlayer.0.weight -> head.norm.weight (LayerNorm, eps 1e-5)
            Rule(rf"outputlayer\.0\.{_P}", r"head.norm.\1"),
            # outputlayer.1.bias -> head.fc.bias (Linear D -> 527)
            Rule(rf"outputlayer\.1\.{_P}", r"head.fc.\1"),
        ),
    )
)
