"""CED and Dasheng (``backbones/audio_transformer.py``), their converter and the chunked clip head.

Expected values come from upstream CED (``tests/fixtures/ced``, see its README) and from naive
re-implementations written here (explicit chunk loops), never from the backbone itself. The full
four sizes at 10 s / 3.3 s / 25 s are in ``tests/parity/test_ced_parity.py``; CED-tiny runs here.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import audiozoo
from audiozoo._errors import CheckpointError, InvalidAudioError
from audiozoo._registry import backbones, converters
from audiozoo.backbones.audio_transformer import MEL_16K, AudioTransformer
from audiozoo.backbones.base import Features
from audiozoo.heads.clip import LinearHead
from tests import _ced_fixtures as fx
from tests.parity_report import record_parity

SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 2}
RTOL = 1e-3


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def randomize(module: torch.nn.Module) -> torch.nn.Module:
    """The fixtures' seeded scheme on our own keys: spread-out weights and BatchNorm statistics,
    so positions and chunks visibly matter."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(fx.seeded_tensor(name, list(t.shape), "float32"))
    return module.eval()


# ------------------------------------------------------------------ upstream CED fixtures
def ced_checkpoint(tmp_path, size: str) -> str:
    path = tmp_path / f"{size}.pt"
    torch.save(fx.upstream_state_dict(size), path)  # the Zenodo format: a plain state dict
    return str(path)


def test_fixture_seeds_reproduce():
    """The regenerated weights and inputs are the ones upstream saw (RNG drift shows here)."""
    meta = fx.keys()
    waves = [fx.waveforms(case) for case in fx.CASES]
    assert fx.checksum(waves) == pytest.approx(meta["inputs_checksum"], rel=1e-9)
    sd = fx.upstream_state_dict("ced_tiny")
    weights = {k: v for k, v in sd.items() if not k.startswith("front_end.")}
    assert fx.checksum(weights) == pytest.approx(meta["ced_tiny"]["weights_checksum"], rel=1e-9)


@pytest.mark.parametrize("case", list(fx.CASES))
def test_ced_tiny_matches_upstream(tmp_path, case):
    ref = fx.reference("ced_tiny")
    model = audiozoo.create("ced_tiny.as", pretrained=ced_checkpoint(tmp_path, "ced_tiny"))
    wave = fx.waveforms(case)
    with torch.no_grad():
        logits = model(wave)
        clip = model.embed(wave)
        frames = model.embed(wave, frames=True)
    up_frames = ref[f"{case}.frames"][:, : frames.shape[1]]
    report = (
        rel(logits, ref[f"{case}.logits"]),
        rel(torch.sigmoid(logits), ref[f"{case}.probs"]),
        rel(clip, ref[f"{case}.embedding"]),
        rel(frames, up_frames),
    )
    record_parity(
        "ced_tiny.as vs RicherMans/CED (incl. frames)",
        case,
        dict(
            zip(("logits rel", "probs rel", "embed rel", "embed(frames) rel"), report, strict=True)
        ),
    )
    assert logits.shape == (2, 527)
    assert max(report) <= RTOL, report
    assert frames.shape[1] == math.ceil(wave.shape[-1] / 2560) - (case != "25s")
    assert model.frame_hop == pytest.approx(0.16)


def test_done_means_shapes():
    model = audiozoo.create("ced_tiny.as", pretrained=False)
    with torch.no_grad():
        assert model(torch.randn(2, 160000)).shape == (2, 527)
    assert model.labels is not None and len(model.labels) == 527
    small = audiozoo.create("dasheng_base", pretrained=False, **SMALL)
    with torch.no_grad():
        assert small.embed(torch.randn(1, 16000 * 25), frames=True).shape == (1, 625, 32)
    assert small.frame_hop == pytest.approx(0.04)


# ------------------------------------------------------------------ backbone behaviour
def naive_tokens(bb: AudioTransformer, x: torch.Tensor) -> torch.Tensor:
    """One chunk (B, 1, F, t) of the normalised spectrogram -> tokens (B, N, D), written out."""
    sd = bb.state_dict()
    p = F.conv2d(x, sd["patch_embed.weight"], sd["patch_embed.bias"], stride=bb.patch_stride)
    p = p + sd["time_pos_embed"][..., : p.shape[-1]] + sd["freq_pos_embed"]
    tokens = p.flatten(2).transpose(1, 2)
    d, h = tokens.shape[-1], bb.blocks[0].attn.num_heads
    for i in range(len(bb.blocks)):
        w = {k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        y = F.layer_norm(tokens, (d,), w["norm1.weight"], w["norm1.bias"], 1e-6)
        q, k, v = (y @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]).split(d, dim=-1)
        q, k, v = (t.unflatten(-1, (h, d // h)).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        o = (att @ v).transpose(1, 2).flatten(2)
        tokens = tokens + o @ w["attn.proj.weight"].T + w["attn.proj.bias"]
        y = F.layer_norm(tokens, (d,), w["norm2.weight"], w["norm2.bias"], 1e-6)
        y = F.gelu(y @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"])
        tokens = tokens + y @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
    return F.layer_norm(tokens, (d,), sd["norm.weight"], sd["norm.bias"], 1e-6)


def normalised(bb: AudioTransformer, spec: torch.Tensor) -> torch.Tensor:
    bn = bb.init_bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (spec - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]


def ced_small(**kw) -> AudioTransformer:
    return randomize(AudioTransformer(**{**SMALL, "target_length": 100, **kw}))


@pytest.mark.parametrize("frames", [60, 100, 250, 300])
def test_average_mode_pads_the_last_chunk_and_averages(frames):
    bb = ced_small()
    spec = 20 * torch.randn(2, 1, 64, frames, generator=torch.Generator().manual_seed(frames))
    k = math.ceil(frames / 100)
    with torch.no_grad():
        feats = bb(spec)
        x = normalised(bb, spec)
        if k > 1:  # 100-frame chunks, the last zero-padded after the BatchNorm, as upstream
            x = F.pad(x, (0, k * 100 - frames))
        chunks = [naive_tokens(bb, c) for c in x.split(100, dim=-1)]
    assert len(chunks) == k  # an exact multiple (300 = 3 x 100) keeps its last chunk
    means = torch.stack([c.mean(1) for c in chunks], dim=1)  # (B, K, D)
    assert rel(feats.token, means.mean(1)) < 1e-5
    if k > 1:
        assert rel(feats.chunk_tokens, means) < 1e-5
    else:
        assert feats.chunk_tokens is None
    grids = [c.transpose(1, 2).reshape(2, 32, 4, -1) for c in chunks]
    assert rel(feats.grid, torch.cat(grids, dim=-1)) < 1e-5
    assert feats.grid.shape[-1] == bb.num_output_frames(frames)


@pytest.mark.parametrize("patches", [20, 25, 50, 57])
def test_concat_mode_runs_chunks_alone_and_concatenates(patches):
    bb = randomize(AudioTransformer(**SMALL, patch_size=(64, 4), target_length=100,
                                    long_input="concat"))  # fmt: skip
    frames = patches * 4 + 3  # the 3 frames beyond the last whole patch are not seen
    spec = 20 * torch.randn(2, 1, 64, frames, generator=torch.Generator().manual_seed(patches))
    with torch.no_grad():
        feats = bb(spec)
        x = normalised(bb, spec)[..., : patches * 4]
        tokens = torch.cat([naive_tokens(bb, c) for c in x.split(100, dim=-1)], dim=1)
    assert feats.grid.shape == (2, 32, 1, patches) == (2, 32, 1, bb.num_output_frames(frames))
    assert rel(feats.grid[:, :, 0].transpose(1, 2), tokens) < 1e-5
    assert rel(feats.token, tokens.mean(1)) < 1e-5 and feats.chunk_tokens is None


def test_short_input_uses_the_leading_time_positions():
    bb = ced_small()
    spec = 20 * torch.randn(1, 1, 64, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        feats = bb(spec)
        expected = naive_tokens(bb, normalised(bb, spec))
    assert feats.grid.shape == (1, 32, 4, 2)
    assert rel(feats.token, expected.mean(1)) < 1e-5


def test_input_errors():
    bb = ced_small()
    with pytest.raises(InvalidAudioError, match="64"):
        bb(torch.zeros(1, 1, 128, 100))
    with pytest.raises(InvalidAudioError, match="16 frames"):
        bb(torch.zeros(1, 1, 64, 15))
    with pytest.raises(ValueError, match="long_input"):
        AudioTransformer(long_input="max")


def test_builders_and_stages():
    sizes = {
        "ced_tiny": (192, 12, 3), "ced_mini": (256, 12, 4), "ced_small": (384, 12, 6),
        "ced_base": (768, 12, 12), "dasheng_base": (768, 12, 12),
        "dasheng_06b": (1280, 32, 16), "dasheng_12b": (1536, 40, 24),
    }  # fmt: skip
    for arch, (width, depth, heads) in sizes.items():
        with torch.device("meta"):  # no memory: the builders only need their shapes checked
            bb = backbones.get(arch).builder()
        assert (bb.num_features, len(bb.blocks), bb.blocks[0].attn.num_heads) == (
            width, depth, heads
        ), arch  # fmt: skip
        assert bb.time_stride == (16 if arch.startswith("ced") else 4)
    bb = ced_small()
    ids = [id(p) for stage in bb.stages() for p in stage.parameters()]
    assert sorted(ids) == sorted(id(p) for p in bb.parameters())
    assert all(torch.isfinite(p).all() for p in AudioTransformer(**SMALL).parameters())


def test_ced_tiny_has_upstreams_parameter_count():
    with torch.device("meta"):
        bb = backbones.get("ced_tiny").builder()
        head = LinearHead(192, 527, norm=True)
    count = sum(p.numel() for m in (bb, head) for p in m.parameters())
    assert count == 5_503_183  # upstream ced_tiny's parameters (the README's 5.5 M)


def test_weight_tables():
    for name in ("ced_tiny.as", "ced_mini.as", "ced_small.as", "ced_base.as", "dasheng_base.as"):
        cfg = audiozoo.get_pretrained_cfg(name)
        assert cfg.label_set == "audioset" and cfg.num_classes == 527
        assert cfg.head["norm"] is True and cfg.frontend == MEL_16K
        # CED's inference.py and its Hub config name output i by row i of AudioSet's
        # class_labels_indices.csv: audiozoo's audioset label set, in that order
        assert cfg.labels == audiozoo.get_label_set("audioset").names and cfg.labels[0] == "Speech"
    for name in ("dasheng_base.ssl", "dasheng_06b.ssl", "dasheng_12b.ssl"):
        cfg = audiozoo.get_pretrained_cfg(name)
        assert cfg.head == {"name": "identity"} and cfg.label_set is None
        assert "11511780" in cfg.url
    assert audiozoo.get_pretrained_cfg("dasheng_base").tag == "ssl"  # the default tag
    assert audiozoo.get_pretrained_cfg("ced_tiny.as").head["chunk_average"] == "probs"


# ------------------------------------------------------------------ the chunked clip head
def test_linear_head_chunk_average():
    g = torch.Generator().manual_seed(0)
    chunks = 3 * torch.randn(2, 3, 16, generator=g)
    feats = Features(grid=torch.zeros(2, 16, 1, 5), token=chunks.mean(1), chunk_tokens=chunks)
    head = LinearHead(16, 7, norm=True, chunk_average="probs").eval()
    with torch.no_grad():
        head.fc.weight.mul_(20)  # large logits: the stable formula must not overflow
        z = head.fc(head.norm(chunks)).double()
        p = torch.sigmoid(z).mean(1)
        expected = torch.log(p) - torch.log1p(-p)
        assert rel(head(feats).double(), expected) < 1e-5
        head.chunk_average = "logits"
        assert rel(head(feats), z.mean(1).float()) < 1e-6
        head.chunk_average = None
        assert torch.allclose(head(feats), head.fc(head.norm(chunks.mean(1))))
        single = Features(grid=feats.grid, token=chunks[:, 0])
        head.chunk_average = "probs"
        assert torch.allclose(head(single), head.fc(head.norm(chunks[:, 0])))
    with pytest.raises(ValueError, match="chunk_average"):
        LinearHead(16, 7, chunk_average="max")


# ------------------------------------------------------------------ converter
def _encoder_keys(prefix: str, bn: str) -> dict[str, torch.Tensor]:
    t = torch.zeros
    return {
        f"{prefix}{bn}.weight": t(64), f"{prefix}{bn}.bias": t(64),
        f"{prefix}{bn}.running_mean": t(64), f"{prefix}{bn}.running_var": t(64),
        f"{prefix}{bn}.num_batches_tracked": torch.tensor(0),
        f"{prefix}patch_embed.proj.weight": t(8, 1, 16, 16), f"{prefix}patch_embed.proj.bias": t(8),
        f"{prefix}time_pos_embed": t(1, 8, 1, 63), f"{prefix}freq_pos_embed": t(1, 8, 4, 1),
        f"{prefix}blocks.0.attn.qkv.weight": t(24, 8), f"{prefix}blocks.0.mlp.fc2.bias": t(8),
        f"{prefix}norm.weight": t(8), f"{prefix}norm.bias": t(8),
    }  # fmt: skip


EXPECTED = {
    "backbone.init_bn.weight", "backbone.init_bn.bias", "backbone.init_bn.running_mean",
    "backbone.init_bn.running_var", "backbone.init_bn.num_batches_tracked",
    "backbone.patch_embed.weight", "backbone.patch_embed.bias", "backbone.time_pos_embed",
    "backbone.freq_pos_embed", "backbone.blocks.0.attn.qkv.weight",
    "backbone.blocks.0.mlp.fc2.bias", "backbone.norm.weight", "backbone.norm.bias",
}  # fmt: skip
HEAD = {"outputlayer.0.weight", "outputlayer.0.bias", "outputlayer.1.weight", "outputlayer.1.bias"}


@pytest.mark.parametrize(
    "form", ["ced_zenodo", "ced_hub", "dasheng_pip", "dasheng_hub", "dasheng_as"]
)
def test_converter_reads_every_upstream_form(form):
    convert = converters.get("audio_transformer")
    head = {k: torch.zeros(1) for k in HEAD}
    front = {"front_end.0.spectrogram.window": torch.zeros(512),
             "front_end.0.mel_scale.fb": torch.zeros(257, 64)}  # fmt: skip
    checkpoint = {
        "ced_zenodo": {**front, **_encoder_keys("", "init_bn.1"), **head},
        "ced_hub": {**_encoder_keys("encoder.", "init_bn"), **head},
        "dasheng_pip": {"model": {**front, **_encoder_keys("", "init_bn.1")},
                        "config": {"embed_dim": 8, "depth": 1}},
        "dasheng_hub": _encoder_keys("encoder.", "init_bn.1"),
        "dasheng_as": {**front, **_encoder_keys("", "init_bn.1"), **head},
    }[form]  # fmt: skip
    out = convert(checkpoint)
    with_head = form in ("ced_zenodo", "ced_hub", "dasheng_as")
    heads = {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}
    assert set(out) == EXPECTED | (heads if with_head else set())


def test_converter_rejects_unknown_keys():
    convert = converters.get("audio_transformer")
    with pytest.raises(CheckpointError, match=r"decoder\.blocks\.0"):
        convert(
            {**_encoder_keys("", "init_bn.1"), "decoder.blocks.0.attn.qkv.weight": torch.zeros(1)}
        )
    with pytest.raises(CheckpointError, match="cls_token"):
        convert({**_encoder_keys("", "init_bn.1"), "cls_token": torch.zeros(1, 1, 8)})
