"""PaSST and AST backbones, shared transformer layers and their checkpoint converters.

The models are small (width 64, 2 blocks) so the default run stays fast. Expected values come
from a naive re-implementation of the forward pass below (explicit attention matrices,
einops token layout), not from the backbones themselves.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

import audiozoo
from audiozoo._errors import CheckpointError, InvalidAudioError
from audiozoo.backbones import ast as ast_module
from audiozoo.backbones import passt as passt_module
from audiozoo.backbones.ast import AST, padding_value
from audiozoo.backbones.layers import Attention
from audiozoo.backbones.passt import PaSST

SMALL = {"embed_dim": 64, "depth": 2, "num_heads": 4}
HEADS = SMALL["num_heads"]


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Weights with larger spread than the init, so every parameter visibly matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 1.0 / math.sqrt(p[0].numel()) if p.ndim > 1 and "embed" not in name else 0.3
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def naive_blocks(
    sd: dict[str, torch.Tensor], x: torch.Tensor, depth: int, eps: float
) -> torch.Tensor:
    """Pre-norm ViT blocks + final norm from a state dict, attention written out explicitly."""
    d = x.shape[-1]
    for i in range(depth):
        w = {k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (d,), w["norm1.weight"], w["norm1.bias"], eps)
        q, k, v = (h @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]).split(d, dim=-1)
        q, k, v = (rearrange(t, "b n (h e) -> b h n e", h=HEADS) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // HEADS), dim=-1)
        o = rearrange(att @ v, "b h n e -> b n (h e)")
        x = x + o @ w["attn.proj.weight"].T + w["attn.proj.bias"]
        h = F.layer_norm(x, (d,), w["norm2.weight"], w["norm2.bias"], eps)
        h = F.gelu(h @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"])
        x = x + h @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
    return F.layer_norm(x, (d,), sd["norm.weight"], sd["norm.bias"], eps)


def naive_passt(model: PaSST, spec: torch.Tensor, keep_t=None, keep_f=None):
    """Reference PaSST forward. Returns (tokens after norm (B, N, D), F', T')."""
    sd = model.state_dict()
    x = F.conv2d(
        spec,
        sd["patch_embed.proj.weight"],
        sd["patch_embed.proj.bias"],
        stride=(model.fstride, model.tstride),
    )
    t = x.shape[-1]
    x = x + sd["time_new_pos_embed"][..., :t] + sd["freq_new_pos_embed"]
    if keep_t is not None:
        x = x[:, :, :, keep_t]
    if keep_f is not None:
        x = x[:, :, keep_f, :]
    fp, tp = x.shape[2:]
    patches = rearrange(x, "b d f t -> b (f t) d")
    cls = sd["cls_token"] + sd["new_pos_embed"][:, :1]
    dist = sd["dist_token"] + sd["new_pos_embed"][:, 1:]
    b = spec.shape[0]
    seq = torch.cat((cls.expand(b, -1, -1), dist.expand(b, -1, -1), patches), dim=1)
    return naive_blocks(sd, seq, len(model.blocks), 1e-6), fp, tp


def small_passt(**kw) -> PaSST:
    m = PaSST(**{**SMALL, **kw})
    randomize(m)
    return m.eval()


# ----------------------------------------------------------------------------- layers


def test_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4).eval()
    x = torch.randn(2, 7, 64)
    q, k, v = (attn.qkv(x)).split(64, dim=-1)
    q, k, v = (rearrange(t, "b n (h e) -> b h n e", h=4) for t in (q, k, v))
    ref = rearrange(torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v, "b h n e -> b n (h e)")
    torch.testing.assert_close(attn(x), attn.proj(ref), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- PaSST


def test_passt_forward_matches_reference_and_backward():
    model = small_passt()
    spec = torch.randn(2, 1, 128, 1000, requires_grad=True)
    feats = model(spec)
    assert feats.grid.shape == (2, 64, 12, 99)
    assert feats.token.shape == (2, 64)
    ref, fp, tp = naive_passt(model, spec.detach())
    torch.testing.assert_close(feats.token, (ref[:, 0] + ref[:, 1]) / 2, atol=1e-4, rtol=1e-4)
    # frequency-major token order: token 2 + f * T' + t is grid[..., f, t]
    torch.testing.assert_close(
        feats.grid[:, :, 3, 17], ref[:, 2 + 3 * tp + 17], atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(
        feats.grid, rearrange(ref[:, 2:], "b (f t) d -> b d f t", f=fp), atol=1e-4, rtol=1e-4
    )
    (feats.grid.sum() + feats.token.sum()).backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all()
    assert all(p.grad is not None for p in model.parameters())


def test_passt_shorter_input_uses_leading_time_positions():
    model = small_passt()
    spec = torch.randn(1, 1, 128, 300)
    feats = model(spec)
    assert feats.grid.shape[-1] == model.num_output_frames(300) == 29
    ref, _, _ = naive_passt(model, spec)  # slices time_new_pos_embed[..., :29]
    torch.testing.assert_close(feats.token, (ref[:, 0] + ref[:, 1]) / 2, atol=1e-4, rtol=1e-4)


def test_passt_length_limits():
    model = small_passt()
    assert model.max_frames == 1005  # 99 time positions: (1005 - 16) // 10 + 1 == 99
    assert model.grid_t == 99 and (model.max_frames + 1 - 16) // 10 + 1 == 100
    model(torch.randn(1, 1, 128, model.max_frames))
    with pytest.raises(InvalidAudioError, match="at most 1005 frames"):
        model(torch.randn(1, 1, 128, model.max_frames + 1))
    with pytest.raises(InvalidAudioError, match="128"):
        model(torch.randn(1, 1, 64, 100))
    # shorter than one patch: padded at the end with the frontend's silence value
    short = torch.randn(1, 1, 128, 10)
    padded = F.pad(short, (0, 6), value=(math.log(1e-5) + 4.5) / 5)
    torch.testing.assert_close(model(short).token, model(padded).token)
    assert model.num_output_frames(5) == 1


def test_passt_stride12_has_one_extra_time_position():
    model = PaSST(fstride=12, tstride=12, **SMALL).eval()
    assert model.time_new_pos_embed.shape[-1] == 83  # upstream: 998 // 12
    assert model(torch.randn(1, 1, 128, 998)).grid.shape[2:] == (10, 82)


def test_patchout_only_in_training_and_only_when_configured(monkeypatch):
    spec = torch.randn(2, 1, 128, 500)  # 49 time patches
    model = small_passt()  # defaults: s_patchout_t=40, s_patchout_f=4, u_patchout=0
    assert model(spec).grid.shape == (2, 64, 12, 49)
    model.train()
    assert model(spec).grid.shape == (2, 64, 8, 9)
    off = small_passt(s_patchout_t=0, s_patchout_f=0).train()
    torch.testing.assert_close(off(spec).token, off.eval()(spec).token)
    u = small_passt(s_patchout_t=0, s_patchout_f=0, u_patchout=100).train()
    assert u(spec).grid.shape == (2, 64, 1, 12 * 49 - 100)
    assert u.eval()(spec).grid.shape == (2, 64, 12, 49)
    # more patchout than patches: at least one column survives
    big = small_passt(s_patchout_t=1000, s_patchout_f=0).train()
    assert big(spec).grid.shape == (2, 64, 12, 1)


def test_structured_patchout_gathers_the_kept_positions(monkeypatch):
    model = small_passt(s_patchout_t=3, s_patchout_f=2).train()
    keep_t = torch.tensor([0, 2, 5, 6])  # of 7 time patches
    keep_f = torch.tensor([1, 2, 3, 4, 5, 6, 7, 9, 10, 11])  # of 12 rows
    chosen = {7: keep_t, 12: keep_f}
    monkeypatch.setattr(passt_module, "_keep_indices", lambda n, drop, device: chosen[n])
    spec = torch.randn(2, 1, 128, 80)
    feats = model(spec)
    ref, fp, tp = naive_passt(model, spec, keep_t=keep_t, keep_f=keep_f)
    assert feats.grid.shape == (2, 64, fp, tp) == (2, 64, 10, 4)
    torch.testing.assert_close(feats.token, (ref[:, 0] + ref[:, 1]) / 2, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        feats.grid, rearrange(ref[:, 2:], "b (f t) d -> b d f t", f=fp), atol=1e-4, rtol=1e-4
    )


def test_patchout_draws_differ_between_calls():
    model = small_passt(s_patchout_t=20, s_patchout_f=0).train()
    spec = torch.randn(1, 1, 128, 500)
    assert not torch.allclose(model(spec).token, model(spec).token)


def test_passt_stages_cover_all_parameters_once():
    model = small_passt()
    stages = model.stages()
    assert len(stages) == 2 + len(model.blocks)
    ids = [id(p) for s in stages for p in s.parameters()]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    stages[0].requires_grad_(False)
    assert (
        not model.time_new_pos_embed.requires_grad
        and not model.patch_embed.proj.weight.requires_grad
    )
    assert "cls_token" in model.state_dict() and not any(
        "ParamStage" in k for k in model.state_dict()
    )


# ----------------------------------------------------------------------------- AST


def naive_ast(model: AST, spec: torch.Tensor, eps: float) -> torch.Tensor:
    sd = model.state_dict()
    x = F.conv2d(
        spec,
        sd["patch_embed.proj.weight"],
        sd["patch_embed.proj.bias"],
        stride=(model.fstride, model.tstride),
    )
    b = x.shape[0]
    seq = torch.cat(
        (
            sd["cls_token"].expand(b, -1, -1),
            sd["dist_token"].expand(b, -1, -1),
            rearrange(x, "b d f t -> b (f t) d"),
        ),
        dim=1,
    )
    return naive_blocks(sd, seq + sd["pos_embed"], len(model.blocks), eps)


def small_ast(**kw) -> AST:
    m = AST(**{**SMALL, "input_tdim": 128, **kw})
    randomize(m)
    return m.eval()


def test_ast_forward_matches_reference_and_backward():
    model = small_ast(norm_eps=1e-12)
    assert model.pos_embed.shape == (1, 2 + 12 * 12, 64)
    spec = torch.randn(2, 1, 128, 128, requires_grad=True)
    feats = model(spec)
    assert feats.grid.shape == (2, 64, 12, 12) and feats.token.shape == (2, 64)
    ref = naive_ast(model, spec.detach(), 1e-12)
    torch.testing.assert_close(feats.token, (ref[:, 0] + ref[:, 1]) / 2, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        feats.grid, rearrange(ref[:, 2:], "b (f t) d -> b d f t", f=12), atol=1e-4, rtol=1e-4
    )
    feats.token.sum().backward()
    assert spec.grad is not None


def test_ast_pads_short_inputs_with_the_normalised_padding_value():
    model = small_ast()
    assert model.pad_value == pytest.approx(0.46703, abs=1e-5)
    assert padding_value(-6.845978, 5.5654526) == pytest.approx(6.845978 / (2 * 5.5654526))
    short = torch.randn(1, 1, 128, 50)
    full = torch.cat((short, torch.full((1, 1, 128, 78), model.pad_value)), dim=-1)
    torch.testing.assert_close(model(short).token, model(full).token)
    assert model.num_output_frames(50) == 12
    with pytest.raises(InvalidAudioError, match="128-frame"):
        model(torch.randn(1, 1, 128, 129))


def test_ast_strides_and_registry_tables():
    assert AST(fstride=16, tstride=16, **SMALL).pos_embed.shape[1] == 2 + 8 * 64
    for arch in ("ast", "ast_s12", "ast_s14", "ast_s16"):
        entry = audiozoo.get_architecture(arch)
        for cfg in entry.weights.values():
            assert cfg.converter == "ast_hf" and cfg.hf_filename == "model.safetensors"
            fe = audiozoo.build_frontend(cfg.frontend)
            model = entry.builder(**{**cfg.backbone_kwargs, **SMALL})
            assert fe.target_frames == model.input_tdim
            assert model.pad_value == pytest.approx(padding_value(fe.mean, fe.std))
            assert model.fstride == int(arch[5:] or 10)
    sc = audiozoo.get_architecture("ast").weights["speech_commands"]
    assert sc.num_classes == 35 and sc.backbone_kwargs["input_tdim"] == 128


def test_passt_registry_tables():
    expected_t = {
        "passt_s": 99,
        "passt_s_hop100": 320,
        "passt_s_hop160": 200,
        "passt_s_20s": 200,
        "passt_s_30s": 300,
    }
    for arch in audiozoo.list_backbones("passt*"):
        entry = audiozoo.get_architecture(arch)
        for cfg in entry.weights.values():
            model = entry.builder(**{**cfg.backbone_kwargs, **SMALL})
            if arch in expected_t:
                assert model.grid_t == expected_t[arch]
            # a 10 s clip at the weight's hop fits in one window
            clip_frames = 1 + (10 * 32000 - 2) // audiozoo.build_frontend(cfg.frontend).hop_length
            assert clip_frames <= model.max_frames
            assert (
                cfg.converter == "passt"
                and cfg.num_classes
                == {"audioset": 527, "fsd50k": 200, "openmic": 20}[cfg.label_set]
            )
    assert len(audiozoo.get_architecture("passt_l").builder(embed_dim=64, num_heads=4).blocks) == 7
    assert audiozoo.get_architecture("passt_s").default_tag == "as"


# ----------------------------------------------------------------------------- converters


def upstream_passt_keys(model: PaSST) -> dict[str, torch.Tensor]:
    """What an upstream PaSST .pt holds for ``model``, plus head and distillation head."""
    sd = dict(model.state_dict())
    d = model.num_features
    sd |= {"head.0.weight": torch.rand(d), "head.0.bias": torch.rand(d)}
    sd |= {"head.1.weight": torch.rand(5, d), "head.1.bias": torch.rand(5)}
    sd |= {"head_dist.weight": torch.rand(5, d), "head_dist.bias": torch.rand(5)}
    return sd


def test_passt_converter_plain_and_wrapper_forms():
    model = small_passt()
    up = upstream_passt_keys(model)
    conv = audiozoo.get_converter("passt")
    out = conv(up)
    assert set(out) == {f"backbone.{k}" for k in model.state_dict()} | {
        "head.norm.weight",
        "head.norm.bias",
        "head.fc.weight",
        "head.fc.bias",
    }
    torch.testing.assert_close(out["head.fc.weight"], up["head.1.weight"])
    fresh = PaSST(**SMALL)
    fresh.load_state_dict({k[9:]: v for k, v in out.items() if k.startswith("backbone.")})
    spec = torch.randn(1, 1, 128, 200)
    torch.testing.assert_close(fresh.eval()(spec).token, model(spec).token)
    wrapped = {f"net.{k}": v for k, v in up.items()} | {"device_proxy": torch.zeros(1)}
    assert conv(wrapped).keys() == out.keys()
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn\.extra"):
        conv(up | {"blocks.0.attn.extra": torch.zeros(1)})


def hf_keys(model: AST, v5: bool = False) -> dict[str, torch.Tensor]:
    """The model's weights under transformers' AST names, q/k/v split."""
    sd = model.state_dict()
    p = "audio_spectrogram_transformer."
    out = {
        p + "embeddings.cls_token": sd["cls_token"],
        p + "embeddings.distillation_token": sd["dist_token"],
        p + "embeddings.position_embeddings": sd["pos_embed"],
        p + "layernorm.weight": sd["norm.weight"],
        p + "layernorm.bias": sd["norm.bias"],
    }
    for s in ("weight", "bias"):
        out[p + f"embeddings.patch_embeddings.projection.{s}"] = sd[f"patch_embed.proj.{s}"]
    names = (
        {
            "q": "attention.q_proj",
            "k": "attention.k_proj",
            "v": "attention.v_proj",
            "proj": "attention.o_proj",
            "fc1": "mlp.fc1",
            "fc2": "mlp.fc2",
        }
        if v5
        else {
            "q": "attention.attention.query",
            "k": "attention.attention.key",
            "v": "attention.attention.value",
            "proj": "attention.output.dense",
            "fc1": "intermediate.dense",
            "fc2": "output.dense",
        }
    )
    layer = "layers" if v5 else "encoder.layer"
    for i in range(len(model.blocks)):
        b, L = f"blocks.{i}.", f"{p}{layer}.{i}."
        for s in ("weight", "bias"):
            q, k, v = sd[b + f"attn.qkv.{s}"].chunk(3, dim=0)
            out |= {
                L + names["q"] + f".{s}": q,
                L + names["k"] + f".{s}": k,
                L + names["v"] + f".{s}": v,
            }
            out[L + names["proj"] + f".{s}"] = sd[b + f"attn.proj.{s}"]
            out[L + names["fc1"] + f".{s}"] = sd[b + f"mlp.fc1.{s}"]
            out[L + names["fc2"] + f".{s}"] = sd[b + f"mlp.fc2.{s}"]
            out[L + f"layernorm_before.{s}"] = sd[b + f"norm1.{s}"]
            out[L + f"layernorm_after.{s}"] = sd[b + f"norm2.{s}"]
    out |= {
        "classifier.layernorm.weight": torch.rand(64),
        "classifier.layernorm.bias": torch.rand(64),
    }
    out |= {"classifier.dense.weight": torch.rand(3, 64), "classifier.dense.bias": torch.rand(3)}
    return out


@pytest.mark.parametrize("v5", [False, True])
def test_ast_hf_converter_fuses_qkv(v5):
    model = small_ast()
    out = audiozoo.get_converter("ast_hf")(hf_keys(model, v5))
    expected = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    assert set(out) == set(expected) | {
        "head.norm.weight",
        "head.norm.bias",
        "head.fc.weight",
        "head.fc.bias",
    }
    for k, v in expected.items():
        torch.testing.assert_close(out[k], v, msg=k)


def test_ast_hf_converter_errors():
    model = small_ast()
    keys = hf_keys(model)
    missing = {k: v for k, v in keys.items() if "attention.attention.value.weight" not in k}
    with pytest.raises(CheckpointError, match="query, key and value"):
        audiozoo.get_converter("ast_hf")(missing)
    with pytest.raises(CheckpointError, match=r"unexpected\.key"):
        audiozoo.get_converter("ast_hf")(keys | {"unexpected.key": torch.zeros(1)})


def test_ast_original_converter_drops_deit_heads():
    model = small_ast()
    up = {f"module.v.{k}": v for k, v in model.state_dict().items()}
    up |= {"module.v.head.weight": torch.rand(1000, 64), "module.v.head.bias": torch.rand(1000)}
    up |= {
        "module.v.head_dist.weight": torch.rand(1000, 64),
        "module.v.head_dist.bias": torch.rand(1000),
    }
    up |= {"module.mlp_head.0.weight": torch.rand(64), "module.mlp_head.0.bias": torch.rand(64)}
    up |= {"module.mlp_head.1.weight": torch.rand(3, 64), "module.mlp_head.1.bias": torch.rand(3)}
    out = audiozoo.get_converter("ast_original")(up)
    assert set(out) == {f"backbone.{k}" for k in model.state_dict()} | {
        "head.norm.weight",
        "head.norm.bias",
        "head.fc.weight",
        "head.fc.bias",
    }
    torch.testing.assert_close(out["head.fc.bias"], up["module.mlp_head.1.bias"])
    with pytest.raises(CheckpointError):
        audiozoo.get_converter("ast_original")(up | {"module.v.fc_norm.weight": torch.zeros(64)})


def test_modules_register_their_architectures():
    assert {"passt_s", "passt_l", "passt_s_s16"} <= set(audiozoo.list_backbones("passt*"))
    assert set(audiozoo.list_backbones("ast*")) == {"ast", "ast_s12", "ast_s14", "ast_s16"}
    assert passt_module.PaSST is PaSST and ast_module.AST is AST
