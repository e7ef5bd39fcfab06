"""BEATs: backbone, checkpoint converter and tags, on small configurations.

Expected values come from a naive forward pass written here from an upstream-layout (unilm)
state dict: separate q/k/v projections, weight norm through ``torch._weight_norm``, the relative
position buckets computed per pair with ``math``, explicit attention with upstream's
subtract-the-maximum-and-rescale softmax, and the per-token predictor averaged over tokens. Full
size and the upstream implementations are in ``tests/parity/test_beats_parity.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import audiozoo
from audiozoo._errors import CheckpointError, InvalidAudioError
from audiozoo._registry import converters
from audiozoo.backbones.beats import BEATs, relative_position_buckets
from audiozoo.converters.beats import fold_weight_norm
from audiozoo.labels import get_label_set
from tests.beats_weights import UNILM_CFG, seeded_heads, seeded_state_dict, to_pretrainedsed

# A small BEATs with every structural feature: 2 layers, 2 heads of 16, patch dim 24, 32 mel
# bins (2 frequency patches), a positional convolution of kernel 8 in 4 groups.
SMALL_CFG = {
    **UNILM_CFG,
    "embed_dim": 24,
    "encoder_layers": 2,
    "encoder_embed_dim": 32,
    "encoder_ffn_embed_dim": 48,
    "encoder_attention_heads": 2,
    "conv_pos": 8,
    "conv_pos_groups": 4,
}
SMALL_KWARGS = {
    "input_fdim": 32,
    "patch_dim": 24,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "mlp_ratio": 1.5,
    "conv_pos": 8,
    "conv_pos_groups": 4,
}


def bucket_reference(offset: int, num_buckets: int = 320, max_distance: int = 800) -> int:
    """T5's bidirectional relative position bucket of ``key - query = offset``, in plain math."""
    half = num_buckets // 2
    bucket = half if offset > 0 else 0
    n = abs(offset)
    exact = half // 2
    if n < exact:
        return bucket + n
    # float32 like upstream: log(n / exact) / log(max / exact) * (half - exact), truncated
    value = torch.tensor(math.log(float(torch.tensor(n / exact, dtype=torch.float32))))
    scaled = value.float() / math.log(max_distance / exact) * (half - exact)
    return bucket + min(exact + int(scaled.item()), half - 1)


def naive_beats(sd: dict[str, torch.Tensor], cfg: dict, fbank: torch.Tensor) -> torch.Tensor:
    """Upstream BEATs forward from a unilm state dict. fbank: (B, T, F) -> tokens (B, N, D)."""
    d, h = cfg["encoder_embed_dim"], cfg["encoder_attention_heads"]
    e = d // h
    x = F.conv2d(fbank.unsqueeze(1), sd["patch_embedding.weight"], stride=16)
    x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)  # (B, T' * F', P), time-major
    x = F.layer_norm(x, x.shape[-1:], sd["layer_norm.weight"], sd["layer_norm.bias"])
    x = x @ sd["post_extract_proj.weight"].T + sd["post_extract_proj.bias"]
    w = torch._weight_norm(sd["encoder.pos_conv.0.weight_v"], sd["encoder.pos_conv.0.weight_g"], 2)
    k = cfg["conv_pos"]
    conv = F.conv1d(
        x.transpose(1, 2), w, sd["encoder.pos_conv.0.bias"], padding=k // 2,
        groups=cfg["conv_pos_groups"],
    )  # fmt: skip
    conv = conv[..., :-1] if k % 2 == 0 else conv
    x = x + F.gelu(conv).transpose(1, 2)
    x = F.layer_norm(x, (d,), sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])
    b, n, _ = x.shape
    buckets = torch.tensor([[bucket_reference(j - i) for j in range(n)] for i in range(n)])
    alpha = (2 * cfg["encoder_layers"]) ** 0.25
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}."
        table = sd[f"{p}self_attn.relative_attention_bias.weight"]
        bias = table[buckets].permute(2, 0, 1)  # (H, N, N)
        q, kk, v = (
            (x @ sd[f"{p}self_attn.{m}_proj.weight"].T + sd[f"{p}self_attn.{m}_proj.bias"])
            .view(b, n, h, e)
            .transpose(1, 2)
            for m in ("q", "k", "v")
        )
        scores = (q * e**-0.5 / 32) @ kk.transpose(-1, -2)
        scores = (scores - scores.max(dim=-1, keepdim=True).values) * 32
        gl = q @ sd[f"{p}self_attn.grep_linear.weight"].T + sd[f"{p}self_attn.grep_linear.bias"]
        ga, gb = torch.sigmoid(gl.view(b, h, n, 2, 4).sum(-1)).chunk(2, dim=-1)
        gate = ga * (gb * sd[f"{p}self_attn.grep_a"] - 1.0) + 2.0
        att = torch.softmax(scores + gate * bias, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, n, d)
        o = o @ sd[f"{p}self_attn.out_proj.weight"].T + sd[f"{p}self_attn.out_proj.bias"]
        x = F.layer_norm(
            x * alpha + o, (d,), sd[f"{p}self_attn_layer_norm.weight"],
            sd[f"{p}self_attn_layer_norm.bias"],
        )  # fmt: skip
        f = F.gelu(x @ sd[f"{p}fc1.weight"].T + sd[f"{p}fc1.bias"])
        f = f @ sd[f"{p}fc2.weight"].T + sd[f"{p}fc2.bias"]
        x = F.layer_norm(
            x * alpha + f, (d,), sd[f"{p}final_layer_norm.weight"],
            sd[f"{p}final_layer_norm.bias"],
        )  # fmt: skip
    return x


def small_backbone(sd: dict[str, torch.Tensor]) -> BEATs:
    """The backbone of an upstream state dict (its predictor, if any, left out)."""
    out = converters.get("beats")({k: v for k, v in sd.items() if not k.startswith("predictor.")})
    model = BEATs(**SMALL_KWARGS).eval()
    model.load_state_dict({k[9:]: v for k, v in out.items() if k.startswith("backbone.")})
    return model


# ----------------------------------------------------------------------------- backbone


def test_relative_position_buckets_match_t5_formula():
    table = relative_position_buckets(320, 800, 1500)
    offsets = [*range(-100, 101), -1500, -801, -800, -799, -257, 799, 800, 1000, 1500, 81, -81]
    for off in offsets:
        assert table[off + 1500].item() == bucket_reference(off), off
    assert table.min().item() >= 0 and table.max().item() <= 319


@pytest.mark.parametrize("frames", [64, 77, 16])
def test_forward_matches_naive_upstream(frames):
    sd = seeded_state_dict(SMALL_CFG, seed=3)
    model = small_backbone(sd)
    fbank = torch.randn(2, frames, 32, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        feats = model(fbank.transpose(1, 2).unsqueeze(1))
        ref = naive_beats(sd, SMALL_CFG, fbank)
    t = frames // 16  # frames after the last full 16-frame block are dropped, as upstream
    assert feats.grid.shape == (2, 32, 2, t)
    assert feats.token is None
    # time-major tokens: token t * F' + f is grid[..., f, t]
    ref_grid = ref.view(2, t, 2, 32).permute(0, 3, 2, 1)
    torch.testing.assert_close(feats.grid, ref_grid, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(feats.pooled(), ref.mean(1), atol=1e-4, rtol=1e-4)
    assert (ref[0] - ref[1]).abs().max() > 0.1  # inputs matter


def test_token_frames_is_the_time_major_sequence():
    sd = seeded_state_dict(SMALL_CFG, seed=4)
    model = small_backbone(sd)
    seq_model = BEATs(**SMALL_KWARGS, token_frames=True).eval()
    seq_model.load_state_dict(model.state_dict())
    fbank = torch.randn(1, 1, 32, 80)
    with torch.no_grad():
        grid = model(fbank).grid  # (1, D, 2, 5)
        seq = seq_model(fbank).grid  # (1, D, 1, 10)
    assert seq.shape == (1, 32, 1, 10) and seq_model.time_stride == 8
    assert seq_model.num_output_frames(80) == 10 and model.num_output_frames(80) == 5
    torch.testing.assert_close(seq[:, :, 0], grid.permute(0, 1, 3, 2).flatten(2))


def test_bad_input_raises_clearly():
    model = BEATs(**SMALL_KWARGS).eval()
    with pytest.raises(InvalidAudioError, match="at least 16 frames"):
        model(torch.randn(1, 1, 32, 15))
    with pytest.raises(InvalidAudioError, match=r"\(B, 1, 32, T\)"):
        model(torch.randn(1, 1, 64, 100))


def test_backward_reaches_every_parameter():
    model = BEATs(**SMALL_KWARGS, layerdrop=0.0).train()
    spec = torch.randn(2, 1, 32, 48, requires_grad=True)
    model(spec).grid.square().mean().backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all()
    assert all(p.grad is not None for p in model.parameters())


def test_layerdrop_skips_layers_only_in_training():
    no_dropout = {"drop_rate": 0.0, "attn_drop_rate": 0.0, "input_drop_rate": 0.0}
    model = BEATs(**SMALL_KWARGS, **no_dropout, layerdrop=1.0)
    spec = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        all_dropped = model.train().tokens(spec)
        full = model.eval().tokens(spec)
        model.blocks = torch.nn.ModuleList()  # what training with every layer dropped computes
        torch.testing.assert_close(all_dropped, model.tokens(spec))
    assert not torch.allclose(all_dropped, full)


# ----------------------------------------------------------------------------- converter


def test_weight_norm_fold_matches_torch():
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(8, 8, 5, groups=2), dim=2)
    with torch.no_grad():
        conv.parametrizations.weight.original0.mul_(1.7)
    g = conv.parametrizations.weight.original0
    v = conv.parametrizations.weight.original1
    torch.testing.assert_close(fold_weight_norm(g, v, dim=2), conv.weight, rtol=1e-6, atol=1e-7)


def test_converter_reads_both_weight_norm_forms_and_pretrainedsed_names():
    sd = seeded_state_dict(SMALL_CFG, seed=5)
    unilm = converters.get("beats")({"cfg": SMALL_CFG, "model": sd})
    sed = converters.get("beats")(to_pretrainedsed(sd, seeded_heads(7, 32, seed=5)))
    assert set(sed) == set(unilm) | {
        f"head.{h}.{p}" for h in ("strong", "weak") for p in ("weight", "bias")
    }
    for key, value in unilm.items():
        torch.testing.assert_close(sed[key], value, rtol=0, atol=0)
    # PretrainedSED's in-memory names (model.beats.*) are read as well
    renamed = {
        k.replace("model.model.", "model.beats."): v for k, v in to_pretrainedsed(sd).items()
    }
    assert set(converters.get("beats")(renamed)) == set(unilm)
    q = sd["encoder.layers.1.self_attn.q_proj.weight"]
    torch.testing.assert_close(unilm["backbone.blocks.1.attn.qkv.weight"][: q.shape[0]], q)


def test_converter_checks_the_shared_relative_position_table():
    sd = seeded_state_dict(SMALL_CFG, seed=6)
    key = "encoder.layers.1.self_attn.relative_attention_bias.weight"
    once = {k: v for k, v in sd.items() if k != key}  # saved once (layer 0): fine
    assert "backbone.rel_pos_bias.weight" in converters.get("beats")(once)
    changed = dict(sd)
    changed[key] = sd[key] + 1.0
    with pytest.raises(CheckpointError, match="layer 1's relative position table differs"):
        converters.get("beats")(changed)
    no_first = {k: v for k, v in sd.items() if "layers.0.self_attn.relative" not in k}
    with pytest.raises(CheckpointError, match="must be saved with layer 0"):
        converters.get("beats")(no_first)


@pytest.mark.parametrize(
    ("drop", "match"),
    [
        ("encoder.layers.0.self_attn.k_proj.weight", "needs query, key and value"),
        ("encoder.pos_conv.0.weight_g", "needs both weight-norm parts"),
    ],
)
def test_converter_refuses_incomplete_checkpoints(drop, match):
    sd = {k: v for k, v in seeded_state_dict(SMALL_CFG, seed=7).items() if k != drop}
    with pytest.raises(CheckpointError, match=match):
        converters.get("beats")(sd)


def test_converter_refuses_unknown_keys_and_other_variants():
    sd = seeded_state_dict(SMALL_CFG, seed=8)
    with pytest.raises(CheckpointError, match="match no conversion rule"):
        converters.get("beats")({**sd, "quantizer.embedding": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="max_distance=1280"):
        converters.get("beats")({"cfg": {**SMALL_CFG, "max_distance": 1280}, "model": sd})
    with pytest.raises(CheckpointError, match="finetuned_model=True"):
        converters.get("beats")({"cfg": {**SMALL_CFG, "finetuned_model": True}, "model": sd})


def test_finetuned_predictor_is_reordered_to_audioset_order():
    mids = get_label_set("audioset").ids
    assert mids is not None
    cfg = {**SMALL_CFG, "finetuned_model": True}
    sd = seeded_state_dict(cfg, seed=9)
    perm = torch.randperm(527, generator=torch.Generator().manual_seed(0))
    label_dict = {row: mids[int(perm[row])] for row in range(527)}  # row -> canonical class
    out = converters.get("beats")({"cfg": cfg, "model": sd, "label_dict": label_dict})
    w, b = sd["predictor.weight"], sd["predictor.bias"]
    for row in (0, 1, 100, 526):
        canonical = int(perm[row])
        torch.testing.assert_close(out["head.fc.weight"][canonical], w[row])
        torch.testing.assert_close(out["head.fc.bias"][canonical], b[row])
    with pytest.raises(CheckpointError, match="no 'label_dict'"):
        converters.get("beats")({"cfg": cfg, "model": sd})
    broken = {**label_dict, 5: label_dict[6]}
    with pytest.raises(CheckpointError, match="not a permutation"):
        converters.get("beats")({"cfg": cfg, "model": sd, "label_dict": broken})
    # string keys (JSON round trip) are accepted
    as_str = {str(k): v for k, v in label_dict.items()}
    out2 = converters.get("beats")({"cfg": cfg, "model": sd, "label_dict": as_str})
    torch.testing.assert_close(out2["head.fc.weight"], out["head.fc.weight"])


def test_finetuned_head_is_the_mean_of_per_token_logits():
    """audiozoo's linear head on the mean token equals upstream's mean of per-token logits."""
    mids = get_label_set("audioset").ids
    cfg = {**SMALL_CFG, "finetuned_model": True}
    sd = seeded_state_dict(cfg, seed=10)
    label_dict = dict(enumerate(mids))
    out = converters.get("beats")({"cfg": cfg, "model": sd, "label_dict": label_dict})
    model = small_backbone(sd)
    fbank = torch.randn(2, 48, 32)
    with torch.no_grad():
        tokens = naive_beats(sd, cfg, fbank)
        upstream = (tokens @ sd["predictor.weight"].T + sd["predictor.bias"]).mean(1)
        pooled = model(fbank.transpose(1, 2).unsqueeze(1)).pooled()
        ours = pooled @ out["head.fc.weight"].T + out["head.fc.bias"]
    torch.testing.assert_close(ours, upstream, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- tags

TINY = dict(audiozoo.get_architecture("beats").test_kwargs)  # 128 bins, 32 wide, 1 layer


def test_tags_frontend_and_frame_hop():
    model = audiozoo.create("beats.iter3", pretrained=False, **TINY)
    fe = model.frontend
    assert (fe.window, fe.input_scale, fe.target_frames) == ("povey", 32768.0, None)
    assert (fe.mean, fe.std, fe.n_mels, fe.sample_rate) == (15.41663, 6.55582, 128, 16000)
    assert model.frame_hop == pytest.approx(0.16)
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        frames = model.embed(wave, frames=True)
        clip = model(wave)  # identity head: the clip embedding
    assert frames.shape == (2, 6, 32) and clip.shape == (2, 32)  # 98 fbank frames -> 6 steps
    torch.testing.assert_close(clip, model.embed(wave))
    # the waveform is scaled by 2^15 before the fbank
    plain = audiozoo.build_frontend({"name": "kaldi_fbank", **{**fe.config(), "input_scale": 1.0}})
    torch.testing.assert_close(fe(wave), plain(wave * 32768.0))


def test_finetuned_tag_has_audioset_labels():
    cfg = audiozoo.get_pretrained_cfg("beats.iter3_plus_as2m_cpt1")
    assert cfg.label_set == "audioset" and cfg.num_classes == 527
    model = audiozoo.create("beats.iter3_plus_as2m_cpt1", pretrained=False, **TINY)
    assert model.labels is not None and model.labels[137] == "Music"


def test_linear_probe_trains_only_the_head():
    model = audiozoo.create(
        "beats", head="linear", num_classes=10, freeze=True, pretrained=False, **TINY
    )
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    wave = torch.randn(2, 8000)
    loss = torch.nn.functional.cross_entropy(model(wave), torch.tensor([1, 7]))
    loss.backward()
    opt.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"head.fc.weight", "head.fc.bias"}
