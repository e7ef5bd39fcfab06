"""AST vs transformers' ASTForAudioClassification: identical random weights written by
``save_pretrained`` (read through ``ast_hf``) and in the original release layout (read through
``ast_original``); logits and pooled embeddings must agree to 1e-3 (relative to the largest
value)."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from tests.parity_report import record_parity

pytest.importorskip("transformers", reason="transformers (parity extra) is not installed")

from safetensors.torch import load_file
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

from audiozoo.heads.clip import LinearHead

RTOL = 1e-3


def realistic(module: torch.nn.Module, seed: int) -> None:
    """Random weights with trained-model-like spread (see test_passt_parity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "layernorm" in name:
                p.copy_(
                    (1.0 if name.endswith("weight") else 0.0)
                    + 0.1 * torch.randn(p.shape, generator=g)
                )
            elif p.ndim >= 2 and not name.endswith(("token", "position_embeddings")):
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def build_ours(arch: str, tag: str, sd: dict[str, torch.Tensor]):
    cfg = audiozoo.get_architecture(arch).cfg(tag)
    backbone = audiozoo.get_architecture(arch).builder(**cfg.backbone_kwargs).eval()
    head = LinearHead(backbone.num_features, cfg.num_classes, **{
        k: v for k, v in cfg.head.items() if k not in ("name", "num_classes")
    }).eval()  # fmt: skip
    backbone.load_state_dict({k[9:]: v for k, v in sd.items() if k.startswith("backbone.")})
    head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})
    return backbone, head


def hf_model(tmp_path, seed: int, **config):
    model = ASTForAudioClassification(ASTConfig(**config)).eval()
    realistic(model, seed)
    model.save_pretrained(tmp_path)
    return model, load_file(tmp_path / "model.safetensors")


def to_original(hf_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same weights in the YuanGongND/ast release layout (DataParallel, timm names, fused qkv,
    plus the unused DeiT ImageNet heads)."""
    p = "audio_spectrogram_transformer."
    out = {
        "module.v.cls_token": hf_sd[p + "embeddings.cls_token"],
        "module.v.dist_token": hf_sd[p + "embeddings.distillation_token"],
        "module.v.pos_embed": hf_sd[p + "embeddings.position_embeddings"],
    }
    d = out["module.v.cls_token"].shape[-1]
    for s in ("weight", "bias"):
        out[f"module.v.patch_embed.proj.{s}"] = hf_sd[
            p + f"embeddings.patch_embeddings.projection.{s}"
        ]
        out[f"module.v.norm.{s}"] = hf_sd[p + f"layernorm.{s}"]
        out[f"module.mlp_head.0.{s}"] = hf_sd[f"classifier.layernorm.{s}"]
        out[f"module.mlp_head.1.{s}"] = hf_sd[f"classifier.dense.{s}"]
        out[f"module.v.head.{s}"] = torch.zeros((1000, d) if s == "weight" else (1000,))
        out[f"module.v.head_dist.{s}"] = torch.zeros((1000, d) if s == "weight" else (1000,))
        i = 0
        while f"{p}encoder.layer.{i}.layernorm_before.weight" in hf_sd:
            L, b = f"{p}encoder.layer.{i}.", f"module.v.blocks.{i}."
            out[b + f"attn.qkv.{s}"] = torch.cat(
                [hf_sd[L + f"attention.attention.{n}.{s}"] for n in ("query", "key", "value")]
            )
            out[b + f"attn.proj.{s}"] = hf_sd[L + f"attention.output.dense.{s}"]
            out[b + f"norm1.{s}"] = hf_sd[L + f"layernorm_before.{s}"]
            out[b + f"norm2.{s}"] = hf_sd[L + f"layernorm_after.{s}"]
            out[b + f"mlp.fc1.{s}"] = hf_sd[L + f"intermediate.dense.{s}"]
            out[b + f"mlp.fc2.{s}"] = hf_sd[L + f"output.dense.{s}"]
            i += 1
    return out


def compare(model, backbone, head, input_values: torch.Tensor, label: str) -> None:
    """input_values: (B, T, F) as transformers takes them; audiozoo gets (B, 1, F, T)."""
    with torch.no_grad():
        up = model(input_values)
        pooled = model.audio_spectrogram_transformer(input_values).pooler_output
        feats = backbone(input_values.transpose(1, 2).unsqueeze(1))
        logits = head(feats)
    report = (label, rel(logits, up.logits), rel(feats.token, pooled))
    record_parity(
        "AST vs transformers ASTForAudioClassification",
        label,
        {"logits rel": report[1], "embedding rel": report[2]},
    )
    assert report[1] < RTOL and report[2] < RTOL, report
    assert rel(up.logits[0], up.logits[1]) > 10 * RTOL  # informative weights


def test_ast_audioset_matches_transformers(tmp_path):
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    model, hf_sd = hf_model(tmp_path, seed=1, num_labels=527)  # AudioSet: s10, 1024 frames
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1024, 128, generator=g) * 0.5 - 0.2  # normalised fbank, (B, T, F)

    backbone, head = build_ours("ast", "as", audiozoo.get_converter("ast_hf")(hf_sd))
    compare(model, backbone, head, x, "ast_hf")

    original = audiozoo.get_converter("ast_original")(to_original(hf_sd))
    backbone, head = build_ours("ast", "as", original)
    compare(model, backbone, head, x, "ast_original")

    # transformers 5 in-memory names (model.state_dict()) are read as well
    backbone, head = build_ours("ast", "as", audiozoo.get_converter("ast_hf")(model.state_dict()))
    compare(model, backbone, head, x, "ast_hf (v5 names)")


def test_ast_speech_commands_and_end_to_end(tmp_path):
    """Speech Commands shape (128 frames, 35 classes) through ASTFeatureExtractor vs audiozoo's
    KaldiFbank, on a full-length clip and on a short clip that both pipelines pad."""
    kaldi = pytest.importorskip("audiozoo.frontends.kaldi_fbank")
    model, hf_sd = hf_model(tmp_path, seed=3, max_length=128, num_labels=35)
    backbone, head = build_ours("ast", "speech_commands", audiozoo.get_converter("ast_hf")(hf_sd))
    cfg = audiozoo.get_architecture("ast").cfg("speech_commands")
    extractor = ASTFeatureExtractor(
        max_length=128, mean=cfg.frontend["mean"], std=cfg.frontend["std"]
    )
    g = torch.Generator().manual_seed(4)
    for seconds in (1.28, 0.6):
        t = torch.arange(int(16000 * seconds)) / 16000
        wave = torch.stack(
            [0.3 * torch.sin(2 * math.pi * 440 * t), 0.1 * torch.randn(t.shape, generator=g)]
        )
        feats_up = extractor(list(wave.numpy()), sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            up = model(feats_up["input_values"]).logits
        for target in (128, None):  # frontend pads / backbone pads with pad_value
            frontend = kaldi.KaldiFbank(
                **{
                    **{k: v for k, v in cfg.frontend.items() if k != "name"},
                    "target_frames": target,
                }
            ).eval()
            with torch.no_grad():
                logits = head(backbone(frontend(wave)))
            report = (seconds, target, rel(logits, up))
            record_parity(
                "AST speech commands end to end vs ASTFeatureExtractor + transformers",
                f"{seconds} s, target_frames={target}",
                {"logits rel": report[2]},
            )
            assert report[2] < RTOL, report
