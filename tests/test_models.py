"""Registry-wide tests: every registered architecture and every head.

Each architecture runs in the small configuration its family declares
(``register_backbone(..., test_kwargs=...)``: transformers at reduced width and depth); the full
models are exercised by the parity tests. A new family needs no edit here.
"""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo

SECONDS = 1.5


def _small(arch: str) -> dict[str, object]:
    return dict(audiozoo.get_architecture(arch).test_kwargs)


ARCHS = audiozoo.list_models()
HEADS = audiozoo.list_heads()


def _build(arch: str, head: str) -> audiozoo.AudioModel:
    torch.manual_seed(0)
    num_classes = 3 if audiozoo.get_head_class(head).needs_num_classes else None
    return audiozoo.create(
        arch, pretrained=False, head=head, num_classes=num_classes, **_small(arch)
    )


def test_every_family_is_registered():
    assert "cnn" in ARCHS
    assert {
        f"mn{w}"
        for w in ("01", "02", "04", "05", "06", "08", "10", "12", "14", "16", "20", "30", "40")
    } <= set(ARCHS)
    assert {
        "passt_s",
        "passt_s_s12",
        "passt_s_s14",
        "passt_s_s16",
        "passt_s_hop100",
        "passt_s_hop160",
        "passt_s_20s",
        "passt_s_30s",
        "passt_l",
    } <= set(ARCHS)
    assert {"ast", "ast_s12", "ast_s14", "ast_s16"} <= set(ARCHS)


def _head_grid() -> list[tuple[str, str]]:
    """Every architecture with its default head and the frame head; every head with one
    architecture of each backbone kind.

    Heads meet a backbone only through its output (feature map or tokens, channels, frame hop), so
    within a family the architectures differ in shapes, which the default and frame heads cover,
    and each head's own logic needs one architecture per kind. A kind is a family plus the
    arguments its test size sets: PretrainedSED's frame_mn (width_mult) and fPaSST (embed_dim, …)
    are two kinds. The full cross product was 387 cases and a third of the suite's time.
    """
    grid: dict[tuple[str, str], None] = {}
    kinds: dict[tuple[str, tuple[str, ...]], str] = {}
    for arch in ARCHS:
        entry = audiozoo.get_architecture(arch)
        default = (entry.cfg(None).head or {}).get("name", "linear")
        grid[(arch, default)] = grid[(arch, "frame")] = None
        kinds.setdefault((entry.family, tuple(sorted(entry.test_kwargs))), arch)
    for arch in kinds.values():
        for head in HEADS:
            grid[(arch, head)] = None
    return sorted(grid)


def test_head_grid_covers_every_architecture_and_every_head():
    grid = _head_grid()
    assert {arch for arch, _ in grid} == set(ARCHS)
    assert {head for _, head in grid} == set(HEADS)
    per_family: dict[str, set[str]] = {}
    for arch, head in grid:
        per_family.setdefault(audiozoo.get_architecture(arch).family, set()).add(head)
    assert all(heads == set(HEADS) for heads in per_family.values()), per_family


@pytest.mark.parametrize(("arch", "head"), _head_grid())
def test_forward_backward(arch: str, head: str):
    model = _build(arch, head)
    if getattr(model.head, "window_seconds", None):  # fixed-window heads (sed): 2 s windows of
        model.head.window_seconds, model.head.seq_len = 2.0, 50  # 50 frames keep the test fast
    n = int(SECONDS * model.sample_rate)
    wave = torch.randn(2, n, generator=torch.Generator().manual_seed(1)) * 0.1

    model.eval()
    with torch.no_grad():
        out = model(wave)
        frames = model.embed(wave, frames=True)
        clip = model.embed(wave)
    assert torch.isfinite(out).all() and torch.isfinite(frames).all()
    c = model.num_features
    assert clip.shape == (2, c)
    t = frames.shape[1]
    assert frames.shape == (2, t, c)
    assert abs(t - math.ceil(SECONDS / model.frame_hop)) <= 1, (t, model.frame_hop)
    kind = model.head.output
    expected = {"clip": (2, 3), "frame": (2, t, 3), "embedding": (2, c)}[kind]
    assert out.shape == expected

    model.train()
    if callable(getattr(model.head, "clip", None)):  # frame + clip outputs (sed): train both
        both = model.frame_and_clip_logits(wave)
        loss = both.frames.float().square().mean() + both.clip.float().square().mean()
    else:
        loss = model(wave).float().square().mean()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("arch", ARCHS)
def test_default_head_matches_pretrained_cfg(arch: str):
    entry = audiozoo.get_architecture(arch)
    cfg = entry.cfg(None)
    model = audiozoo.create(arch, pretrained=False, **_small(arch))
    if cfg.head:
        assert model.head.config()["name"] == cfg.head["name"]
    assert model.sample_rate == cfg.frontend.get("sample_rate", model.sample_rate)


def _one_per_family() -> list[str]:
    first: dict[str, str] = {}
    for arch in ARCHS:
        first.setdefault(audiozoo.get_architecture(arch).family, arch)
    return sorted(first.values())


@pytest.mark.parametrize("arch", _one_per_family())
def test_count_macs_runs_on_every_family(arch: str):
    # count_macs runs backbone and head on meta tensors (the zoo page and `audiozoo info` use it):
    # a family that asks the device something meta cannot answer fails here, not in the docs build
    from audiozoo.stats import count_macs

    model = _build(arch, "linear")
    assert count_macs(model, seconds=1.0) > 0
