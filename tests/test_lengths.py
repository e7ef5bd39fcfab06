"""Any length for every family: short clips padded, long clips windowed and merged, sample rates.

Expected values come from a naive reference written here: windows cut with Python slicing and
run one by one through frontend → backbone → head, merged by an explicit per-frame loop.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import audiozoo
from audiozoo import _windows
from audiozoo.backbones.base import Features

SMALL = {"embed_dim": 32, "depth": 1, "num_heads": 2}
FAMILIES = {"cnn": {}, "mn01": {}, "passt_s": SMALL, "ast": SMALL}
DURATIONS = (0.3, 10.0, 61.7)


def _model(arch: str, head: str, **kwargs) -> audiozoo.AudioModel:
    torch.manual_seed(0)
    return audiozoo.create(
        arch, pretrained=False, head=head, num_classes=3, **{**FAMILIES.get(arch, {}), **kwargs}
    ).eval()


def _noise(n: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(seed)) * 0.1


def _frame_hop_samples(model: audiozoo.AudioModel) -> int:
    return model.frontend.hop_length * model.backbone.time_stride


@pytest.fixture(scope="module")
def models() -> dict[tuple[str, str], audiozoo.AudioModel]:
    return {(a, h): _model(a, h) for a in FAMILIES for h in ("linear", "frame")}


@pytest.mark.slow
@pytest.mark.parametrize("seconds", DURATIONS)
@pytest.mark.parametrize("arch", list(FAMILIES))
def test_every_family_any_length(models, arch: str, seconds: float) -> None:
    clip_model, frame_model = models[arch, "linear"], models[arch, "frame"]
    n = round(seconds * clip_model.sample_rate)
    wave = _noise(n)
    with torch.no_grad():
        logits = clip_model(wave)
        frames = frame_model(wave)
        emb = frame_model.embed(wave)
        seq = frame_model.embed(wave, frames=True)
    assert logits.shape == (1, 3) and emb.shape == (1, frame_model.num_features)
    expected = math.ceil(seconds / frame_model.frame_hop)
    t = frames.shape[1]
    assert frames.shape == (1, t, 3) and seq.shape == (1, t, frame_model.num_features)
    assert abs(t - expected) <= 1, (arch, seconds, t, expected)
    for out in (logits, frames, emb, seq):
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["passt_s", "ast"])
def test_long_clip_has_ceil_frames(models, arch: str) -> None:
    """A windowed clip gives exactly ceil(duration / frame_hop) frames."""
    model = models[arch, "frame"]
    window = _windows.window_samples(model.frontend, model.backbone)
    assert window is not None
    n = 3 * window + 1234
    with torch.no_grad():
        out = model.embed(_noise(n), frames=True)
    assert out.shape[1] == math.ceil(n / _frame_hop_samples(model))


def _direct(model: audiozoo.AudioModel, wave: torch.Tensor) -> Features:
    return model.backbone(model.frontend(wave))


@pytest.mark.parametrize("arch", ["passt_s", "ast"])
def test_trained_length_is_one_window(models, arch: str) -> None:
    """Audio of exactly the window length runs once, unchanged: same as calling the parts."""
    model, frame_model = models[arch, "linear"], models[arch, "frame"]
    window = _windows.window_samples(model.frontend, model.backbone)
    assert window == model.backbone.max_frames * model.frontend.hop_length
    wave = _noise(window, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(model(wave), model.head(_direct(model, wave)), rtol=0, atol=0)
        feats = _direct(frame_model, wave)
        torch.testing.assert_close(frame_model(wave), frame_model.head(feats), rtol=0, atol=0)
        torch.testing.assert_close(frame_model.embed(wave), feats.token, rtol=0, atol=0)


def _naive_windows(model: audiozoo.AudioModel, wave: torch.Tensor) -> tuple[list, int, int]:
    """Window starts and per-window features, one window at a time, with Python slicing."""
    window = model.backbone.max_frames * model.frontend.hop_length
    hop = _frame_hop_samples(model)
    step = (window // 2) // hop * hop
    n = wave.shape[-1]
    starts = [0]
    while starts[-1] + window < n:
        starts.append(starts[-1] + step)
    feats = []
    for s in starts:
        piece = wave[:, s : s + window]
        piece = F.pad(piece, (0, window - piece.shape[-1]))
        feats.append(_direct(model, piece))
    return feats, step // hop, math.ceil(n / hop)


def _naive_stitch(feats: list[Features], step_frames: int, num_frames: int) -> torch.Tensor:
    """(B, T, C) frames: frame t from the window whose centre is nearest (ties: either)."""
    per_window = feats[0].grid.shape[-1]
    columns = []
    for t in range(num_frames):
        best = None
        for k, f in enumerate(feats):
            j = t - k * step_frames
            if 0 <= j < per_window:
                dist = abs(j - (per_window - 1) / 2)
                if best is None or dist < best[0]:
                    best = (dist, f.frames()[:, j])
        assert best is not None, f"frame {t} is in no window"
        columns.append(best[1])
    return torch.stack(columns, dim=1)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["passt_s", "ast"])
def test_windowed_equals_naive_reference(models, arch: str) -> None:
    model, frame_model = models[arch, "linear"], models[arch, "frame"]
    seconds = 26.3
    wave = _noise(round(seconds * model.sample_rate), batch=2, seed=3)
    with torch.no_grad():
        feats, step_frames, num_frames = _naive_windows(model, wave)
        clip_ref = torch.stack([model.head(f) for f in feats]).mean(dim=0)
        emb_ref = torch.stack([f.pooled() for f in feats]).mean(dim=0)
        seq_ref = _naive_stitch(feats, step_frames, num_frames)
        torch.testing.assert_close(model(wave), clip_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.embed(wave), emb_ref, rtol=1e-5, atol=1e-5)
        seq = model.embed(wave, frames=True)
        assert seq.shape[1] == num_frames == math.ceil(seconds / model.frame_hop)
        torch.testing.assert_close(seq, seq_ref, rtol=1e-5, atol=1e-5)
        # The frame head runs once on the stitched frames: a per-frame Linear of seq_ref.
        fm_feats, _, _ = _naive_windows(frame_model, wave)
        frame_ref = frame_model.head.fc(_naive_stitch(fm_feats, step_frames, num_frames))
        torch.testing.assert_close(frame_model(wave), frame_ref, rtol=1e-5, atol=1e-5)


def test_window_frames_sit_on_one_time_grid(models) -> None:
    """Windows start on multiples of the output frame hop, so frame t is at t * frame_hop."""
    model = models["passt_s", "frame"]
    window = _windows.window_samples(model.frontend, model.backbone)
    plan = _windows.plan_windows(model.frontend, model.backbone, 4 * window)
    assert plan.count > 1 and plan.step % plan.frame_hop == 0
    assert 0.4 * window <= plan.step <= 0.5 * window  # ~50 % overlap
    # A click at sample s shows up in the frame that contains s, wherever the windows start.
    hop = plan.frame_hop
    for frame in (5, 77, 151, 260):
        wave = torch.zeros(1, 4 * window)
        wave[0, frame * hop + hop // 2] = 1.0
        with torch.no_grad():
            seq = model.embed(wave, frames=True)[0]
            silence = model.embed(torch.zeros(1, 4 * window), frames=True)[0]
        changed = (seq - silence).abs().amax(dim=-1)
        assert int(changed.argmax()) in (frame - 1, frame), (frame, int(changed.argmax()))


@pytest.fixture(scope="module")
def parts() -> dict[str, tuple]:
    """Frontend and backbone of each windowed family (PaSST, AST, time-SE MobileNet)."""
    out = {}
    for arch, kw in (
        ("passt_s", SMALL),
        ("passt_s_s12", SMALL),
        ("ast", SMALL),
        ("mn01", {"se_dims": "ct", "input_dim_t": 100}),
    ):
        m = audiozoo.create(arch, pretrained=False, **kw)
        out[arch] = (m.frontend, m.backbone)
    return out


@settings(max_examples=60, deadline=None)
@given(
    arch=st.sampled_from(["passt_s", "passt_s_s12", "ast", "mn01"]),
    n=st.integers(min_value=1, max_value=3_000_000),
)
def test_plan_covers_the_clip_and_stitches_timestamps(parts, arch: str, n: int) -> None:
    """For any length: windows cover every sample; stitched frame t is global time index t."""
    frontend, backbone = parts[arch]
    plan = _windows.plan_windows(frontend, backbone, n)
    hop = plan.frame_hop
    assert (plan.count - 1) * plan.step + plan.length >= n
    assert frontend.num_frames(plan.length) <= backbone.max_frames
    assert frontend.num_frames(plan.length) >= backbone.min_frames
    if plan.windowed:
        assert plan.out_frames == math.ceil(n / hop)
        assert plan.step % hop == 0
    # Encode each window's frame j as its global time index k * step_frames + j, then stitch.
    s = plan.step // hop if plan.windowed else 0
    k = torch.arange(plan.count)[:, None]
    j = torch.arange(plan.window_frames)[None, :]
    grid = (k * s + j).float().repeat(2, 1)[:, None, None, :]  # (2 * count, 1, 1, Tw)
    stitched = _windows.stitch(grid, plan)[:, 0, 0]
    assert stitched.shape[-1] == plan.out_frames
    assert torch.equal(stitched, torch.arange(plan.out_frames).float().expand(2, -1))


@pytest.mark.filterwarnings("ignore:.*shorter than one analysis window")  # the point here
@pytest.mark.parametrize("arch", list(FAMILIES))
def test_short_clip_is_zero_padded(models, arch: str) -> None:
    """Shorter than the frontend/backbone minimum: same as zero-padding by hand to the minimum."""
    model, frame_model = models[arch, "linear"], models[arch, "frame"]
    need = _windows.min_samples(model.frontend, model.backbone)
    for n in (1, 7, 300):
        wave = _noise(n, batch=2)
        padded = F.pad(wave, (0, max(need - n, 0)))
        with torch.no_grad():
            torch.testing.assert_close(model(wave), model.head(_direct(model, padded)))
            frames = frame_model(wave)
        assert frames.shape[1] == 1  # trimmed to the clip's duration: ceil(n / frame_hop) = 1
        assert torch.isfinite(frames).all()


def test_cnn_minimum_is_seven_frames() -> None:
    model = _model("cnn", "linear")
    need = _windows.min_samples(model.frontend, model.backbone)
    assert model.frontend.num_frames(need) == model.backbone.min_frames == 7
    assert model.frontend.num_frames(need - 1) < 7


def test_fixed_length_mobilenet_is_windowed_and_padded() -> None:
    """MobileNets with time squeeze-excitation take exactly input_dim_t frames."""
    model = _model("mn01", "frame", se_dims="ct", input_dim_t=100)  # 1 s windows
    hop = _frame_hop_samples(model)
    for n in (5000, 32000, 83000):
        with torch.no_grad():
            out = model(_noise(n))
        assert out.shape[1] == math.ceil(n / hop) and torch.isfinite(out).all()


@pytest.mark.slow
def test_windowed_training_step() -> None:
    """Training on long audio with patchout (fewer frames per window) still runs and backprops."""
    model = _model("passt_s", "linear", s_patchout_t=3, s_patchout_f=2).train()
    loss = model(_noise(int(23.5 * model.sample_rate), batch=2)).square().mean()
    loss.backward()
    assert model.backbone.cls_token.grad is not None
    frame_model = _model("passt_s", "frame", s_patchout_t=3).train()
    out = frame_model(_noise(int(23.5 * model.sample_rate)))
    assert out.ndim == 3 and torch.isfinite(out).all()


# --------------------------------------------------------------------------- sample rates


def test_sample_rate_resamples(models) -> None:
    from audiozoo.resample import resample

    model = models["mn01", "linear"]
    t = torch.arange(int(1.5 * 44100)) / 44100
    sine = (0.5 * torch.sin(2 * math.pi * 440.0 * t))[None]
    with torch.no_grad():
        ref = model(resample(sine, 44100, model.sample_rate))
        torch.testing.assert_close(model(sine, sample_rate=44100), ref, rtol=0, atol=0)
        # A 16 kHz model (AST) resamples the same input to its own rate.
        ast = models["ast", "linear"]
        torch.testing.assert_close(
            ast(sine, sample_rate=44100), ast(resample(sine, 44100, 16000)), rtol=0, atol=0
        )


def test_without_sample_rate_the_model_rate_is_assumed(models) -> None:
    model = models["mn01", "linear"]
    wave = _noise(20000)
    with torch.no_grad():
        same = model(wave, sample_rate=model.sample_rate)
        torch.testing.assert_close(model(wave), same, rtol=0, atol=0)
        assert not torch.equal(model(wave, sample_rate=16000), same)
    assert "assumed" in (type(model).forward.__doc__ or "")
