"""ATST-Frame: backbone, chunking, padding masks, converters, model-level use.

Small models (width 64, 2 blocks) keep the default run fast; full-size parity against audiossl
and PretrainedSED is in ``tests/parity/test_atst_parity.py``. Expected values come from a naive
re-implementation below (einops patching, explicit attention matrices with audiossl's -10000
key mask, chunks run one after another in a Python loop as audiossl's embedding functions do),
not from the backbone itself.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

import audiozoo
from audiozoo._errors import CheckpointError, InvalidAudioError
from audiozoo.backbones.atst import FRONTEND, MEL_MEAN, MEL_STD, ATSTFrame
from audiozoo.converters.atst import ATST_FRAME, ATST_FRAME_SED

SMALL = {"embed_dim": 64, "depth": 2, "num_heads": 4}
HEADS = SMALL["num_heads"]


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Weights with a larger spread than the init, so every parameter visibly matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 1.0 / math.sqrt(p.shape[-1]) if p.ndim > 1 and "embed" not in name else 0.3
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def small(**kw) -> ATSTFrame:
    m = ATSTFrame(**{**SMALL, **kw})
    randomize(m)
    return m.eval()


def naive_tokens(sd: dict[str, torch.Tensor], spec: torch.Tensor, length: int | None = None):
    """audiossl's FrameAST.get_intermediate_layers(n=1, scene=False) on one chunk (B, 1, 64, T)."""
    t = spec.shape[-1] // 4 * 4
    patches = rearrange(spec[..., :t], "b c (h p1) (w p2) -> b (w h) (p1 p2 c)", p1=64, p2=4)
    x = patches @ sd["patch_embed.weight"].T + sd["patch_embed.bias"]
    x = x + sd["pos_embed"][:, : x.shape[1]]
    n, d = x.shape[1], x.shape[2]
    valid = n if length is None else length // 4
    mask = torch.zeros(n)
    mask[valid:] = -10000.0
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for i in range(depth):
        w = {k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (d,), w["norm1.weight"], w["norm1.bias"], 1e-6)
        assert "attn.qkv.bias" not in w  # ATST has no qkv bias
        q, k, v = (h @ w["attn.qkv.weight"].T).split(d, dim=-1)
        q, k, v = (rearrange(a, "b n (h e) -> b h n e", h=HEADS) for a in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // HEADS) + mask, dim=-1)
        o = rearrange(att @ v, "b h n e -> b n (h e)")
        x = x + o @ w["attn.proj.weight"].T + w["attn.proj.bias"]
        h = F.layer_norm(x, (d,), w["norm2.weight"], w["norm2.bias"], 1e-6)
        x = x + F.gelu(h @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"]) @ w["mlp.fc2.weight"].T
        x = x + w["mlp.fc2.bias"]
    return F.layer_norm(x, (d,), sd["norm.weight"], sd["norm.bias"], 1e-6), valid


def naive_chunked(sd: dict[str, torch.Tensor], spec: torch.Tensor, chunk: int = 1001):
    """audiossl's get_timestamp_embedding / get_scene_embedding loop: (frames, clip embedding)."""
    frames, means = [], []
    for start in range(0, spec.shape[-1], chunk):
        piece = spec[..., start : start + chunk]
        if piece.shape[-1] < 4:
            continue
        tokens, _ = naive_tokens(sd, piece)
        frames.append(tokens)
        means.append(tokens.mean(1))
    return torch.cat(frames, 1), torch.stack(means).mean(0)


def as_frames(features) -> torch.Tensor:
    return features.grid[:, :, 0].transpose(1, 2)  # (B, T', D)


# ----------------------------------------------------------------------------- backbone


@pytest.mark.parametrize("t", [4, 7, 331, 1001, 1003])
def test_forward_matches_naive_reference(t: int):
    model = small()
    spec = torch.randn(2, 1, 64, t)
    with torch.no_grad():
        feats = model(spec)
    ref, _ = naive_tokens(model.state_dict(), spec)
    assert feats.grid.shape == (2, 64, 1, t // 4) and model.num_output_frames(t) == t // 4
    torch.testing.assert_close(as_frames(feats), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats.token, ref.mean(1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("t", [1002, 1005, 2002, 2301, 3004])
def test_long_input_runs_in_audiossl_chunks(t: int):
    model = small()
    spec = torch.randn(1, 1, 64, t)
    with torch.no_grad():
        feats = model(spec)
    ref, ref_mean = naive_chunked(model.state_dict(), spec)
    assert feats.grid.shape[-1] == model.num_output_frames(t) == ref.shape[1]
    torch.testing.assert_close(as_frames(feats), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats.token, ref_mean, atol=1e-5, rtol=1e-5)


def test_num_output_frames_per_chunk():
    model = small()
    assert model.max_frames is None
    assert model.num_output_frames(1001) == 250
    assert model.num_output_frames(2301) == 250 + 250 + 74  # 23 s: 574, not 2301 // 4 = 575
    assert model.num_output_frames(2003) == 500  # a 1-frame last chunk gives no token


def test_padded_batch_masks_padding_like_audiossl():
    model = small()
    spec = torch.randn(3, 1, 64, 600)
    lengths = torch.tensor([600, 417, 5])
    with torch.no_grad():
        feats = model(spec, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        ref, valid = naive_tokens(model.state_dict(), spec[i : i + 1], n)
        # every position is computed (as upstream); only keys after `valid` are masked
        torch.testing.assert_close(as_frames(feats)[i : i + 1], ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(feats.token[i], ref[0, :valid].mean(0), atol=1e-5, rtol=1e-5)
        with torch.no_grad():  # the valid frames equal the clip run alone, unpadded
            alone = model(spec[i : i + 1, ..., :n])
        torch.testing.assert_close(
            as_frames(feats)[i, :valid], as_frames(alone)[0], atol=1e-5, rtol=1e-5
        )


def test_padded_batch_of_long_clips():
    model = small()
    spec = torch.randn(2, 1, 64, 2301)
    lengths = torch.tensor([2301, 1500])
    with torch.no_grad():
        feats = model(spec, lengths=lengths)
        alone = model(spec[1:, ..., :1500])
    ref, ref_mean = naive_chunked(model.state_dict(), spec[1:, ..., :1500])
    torch.testing.assert_close(as_frames(alone), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(as_frames(feats)[1, :374], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats.token[1], ref_mean[0], atol=1e-5, rtol=1e-5)


def test_no_chunking_bounds_the_input():
    model = small(chunk_frames=None)
    assert model.max_frames == 1003  # (1003 // 4) == 250 positions
    model(torch.randn(1, 1, 64, 1003))
    with pytest.raises(InvalidAudioError, match="at most 1003 frames"):
        model(torch.randn(1, 1, 64, 1004))


def test_bad_inputs_raise():
    model = small()
    with pytest.raises(InvalidAudioError, match=r"\(B, 1, 64, T\)"):
        model(torch.randn(1, 1, 128, 100))
    with pytest.raises(InvalidAudioError, match="at least 4"):
        model(torch.randn(1, 1, 64, 3))
    with pytest.raises(InvalidAudioError, match="lengths"):
        model(torch.randn(2, 1, 64, 100), lengths=torch.tensor([100.0, 50.0]))
    with pytest.raises(ValueError, match="chunk_frames"):
        ATSTFrame(**SMALL, chunk_frames=1005)


def test_backward_reaches_every_parameter():
    model = small().train()
    spec = torch.randn(2, 1, 64, 1500, requires_grad=True)
    feats = model(spec, lengths=torch.tensor([1500, 1200]))
    (feats.grid.sum() + feats.token.sum()).backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all()
    assert all(p.grad is not None for p in model.parameters())


# ----------------------------------------------------------------------------- converters


def _upstream_encoder(d: int = 8, depth: int = 2, positions: int = 250) -> dict[str, torch.Tensor]:
    """A synthetic FrameAST state dict (upstream key names, distinct values per key)."""
    g = torch.Generator().manual_seed(1)
    shapes = {
        "mask_embed": (1, 1, d),
        "pos_embed": (1, positions + 1, d),
        "patch_embed.patch_embed.weight": (d, 256),
        "patch_embed.patch_embed.bias": (d,),
        "norm_frame.weight": (d,),
        "norm_frame.bias": (d,),
    }
    for i in range(depth):
        for name, shape in {
            "norm1.weight": (d,),
            "norm1.bias": (d,),
            "attn.qkv.weight": (3 * d, d),
            "attn.proj.weight": (d, d),
            "attn.proj.bias": (d,),
            "norm2.weight": (d,),
            "norm2.bias": (d,),
            "mlp.fc1.weight": (4 * d, d),
            "mlp.fc1.bias": (4 * d,),
            "mlp.fc2.weight": (d, 4 * d),
            "mlp.fc2.bias": (d,),
        }.items():
            shapes[f"blocks.{i}.{name}"] = shape
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def _expected_native(enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in enc.items():
        if k == "mask_embed":
            continue
        if k == "pos_embed":
            out["backbone.pos_embed"] = v[:, 1:]
        elif k.startswith("patch_embed.patch_embed."):
            out["backbone.patch_embed." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("norm_frame."):
            out["backbone.norm." + k.rsplit(".", 1)[1]] = v
        else:
            out["backbone." + k] = v
    return out


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_converter_reads_pretrainedsed_files():
    enc = _upstream_encoder()
    heads = {
        "strong_head.weight": torch.randn(447, 8),
        "strong_head.bias": torch.randn(447),
        "weak_head.weight": torch.randn(447, 8),
        "weak_head.bias": torch.randn(447),
    }
    mel = {
        "model.atst_mel.mel_transform.spectrogram.window": torch.hann_window(1024),
        "model.atst_mel.mel_transform.mel_scale.fb": torch.rand(513, 64),
    }
    ckpt = {**{f"model.atst.{k}": v for k, v in enc.items()}, **mel, **heads}
    _assert_same(ATST_FRAME(ckpt), _expected_native(enc))
    sed = ATST_FRAME_SED(ckpt)
    assert torch.equal(sed.pop("head.strong.weight"), heads["strong_head.weight"])
    assert torch.equal(sed.pop("head.strong.bias"), heads["strong_head.bias"])
    assert torch.equal(sed.pop("head.weak.weight"), heads["weak_head.weight"])
    assert torch.equal(sed.pop("head.weak.bias"), heads["weak_head.bias"])
    _assert_same(sed, _expected_native(enc))
    assert ATST_FRAME(ckpt)["backbone.pos_embed"].shape == (1, 250, 8)


def test_converter_reads_audiossl_lightning_checkpoints():
    enc = _upstream_encoder()
    student = {f"model.student.encoder.{k}": v + 1 for k, v in enc.items()}
    mlps = {
        "model.student.projector.0.weight": torch.randn(16, 8),
        "model.student.projector.1.running_mean": torch.randn(16),
        "model.student.projector.1.num_batches_tracked": torch.tensor(7),
        "model.student.predictor.0.weight": torch.randn(16, 8),
        "model.teacher.projector.0.weight": torch.randn(16, 8),
    }
    ckpt = {
        "epoch": 12,
        "hyper_parameters": {"arch": "base"},
        "state_dict": {
            **{f"model.teacher.encoder.{k}": v for k, v in enc.items()},
            **student,
            **mlps,
        },
    }
    _assert_same(ATST_FRAME(ckpt), _expected_native(enc))  # the teacher, not the student
    _assert_same(ATST_FRAME(enc), _expected_native(enc))  # a bare FrameAST state dict


def test_converter_rejects_unknown_keys():
    enc = {f"model.atst.{k}": v for k, v in _upstream_encoder().items()}
    with pytest.raises(CheckpointError, match=r"model\.atst\.blocks\.0\.attn\.qkv\.bias"):
        ATST_FRAME({**enc, "model.atst.blocks.0.attn.qkv.bias": torch.zeros(24)})
    with pytest.raises(CheckpointError, match="seq_model"):
        ATST_FRAME_SED({**enc, "seq_model.rnn.weight_ih_l0": torch.zeros(3, 8)})


def test_converted_checkpoint_loads_strictly():
    model = ATSTFrame(embed_dim=8, depth=2, num_heads=2)
    sd = ATST_FRAME({f"model.atst.{k}": v for k, v in _upstream_encoder().items()})
    model.load_state_dict({k[len("backbone.") :]: v for k, v in sd.items()}, strict=True)


# ----------------------------------------------------------------------------- model level


def test_frontend_config_is_audiossl_minmax():
    assert (FRONTEND["mean"], FRONTEND["std"]) == (MEL_MEAN, MEL_STD)
    x = torch.linspace(-50.0, 80.0, 11)
    upstream = (x - -79.6482) / (50.6842 - -79.6482) * 2.0 - 1.0  # audiossl's MinMax
    torch.testing.assert_close((x - MEL_MEAN) / MEL_STD, upstream, atol=1e-6, rtol=0)


def test_create_embeddings_and_frame_hop():
    model = audiozoo.create("atst_frame", pretrained=False, head="identity", **SMALL)
    assert model.sample_rate == 16000 and model.frame_hop == pytest.approx(0.04)
    wave = torch.randn(2, 16000 * 3)
    frames = model.embed(wave, frames=True)
    assert frames.shape == (2, 75, 64)  # 301 frames -> 75 tokens
    assert model.embed(wave).shape == (2, 64)
    long = model.embed(torch.randn(1, 16000 * 23), frames=True)
    assert long.shape == (1, 574, 64)


def test_create_linear_head_fine_tunes_frozen():
    model = audiozoo.create(
        "atst_frame", pretrained=False, head="linear", num_classes=10, freeze=True, **SMALL
    )
    model.train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = F.cross_entropy(model(torch.randn(2, 16000)), torch.tensor([1, 7]))
    loss.backward()
    opt.step()
    assert model(torch.randn(2, 16000)).shape == (2, 10)
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in before.items())
    assert all(not p.requires_grad for p in model.backbone.parameters())


def test_as_strong_frame_logits_every_40_ms():
    model = audiozoo.create("atst_frame.as_strong", pretrained=False, **SMALL)
    assert model.labels is not None and len(model.labels) == 447
    assert model.frame_hop == pytest.approx(0.04)
    assert model(torch.randn(2, 160000)).shape == (2, 250, 447)
    assert model(torch.randn(1, 368000)).shape == (1, 575, 447)  # 10 s windows, cut to 23 s


def test_mel_clamp_options_round_trip():
    from audiozoo.frontends import MelSpectrogram

    kwargs = {k: v for k, v in FRONTEND.items() if k not in ("name", "mean", "std")}
    fe = MelSpectrogram(**kwargs).eval()
    loud = torch.rand(1, 16000) * 2000 - 1000  # far above 80 dB
    quiet = torch.rand(1, 16000) * 2e-4 - 1e-4  # far below -50 dB
    assert fe(loud).max() == 80.0 and fe(quiet).min() == -50.0
    unclamped = MelSpectrogram(**{**kwargs, "clamp_min": None, "clamp_max": None}).eval()
    torch.testing.assert_close(fe(loud), unclamped(loud).clamp(-50, 80))
    assert MelSpectrogram(**fe.config()).config() == fe.config()
    with pytest.raises(ValueError, match="clamp_min"):
        MelSpectrogram(log="db", clamp_min=10.0, clamp_max=0.0)
