"""audiozoo.augment: no-op at p=0, reproducibility, shapes/dtypes, mixup math, masks."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from audiozoo import augment

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _wave(b: int = 4, n: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, generator=torch.Generator().manual_seed(seed))


def _spec(b: int = 4, f: int = 16, t: int = 30, seed: int = 0) -> torch.Tensor:
    # strictly positive, so masked (zeroed) bins are recognisable
    return torch.rand(b, 1, f, t, generator=torch.Generator().manual_seed(seed)) + 1.0


CALLS = {
    "time_roll": lambda x, **kw: augment.time_roll(x, 20, **kw),
    "random_gain": lambda x, **kw: augment.random_gain(x, -6, 6, **kw),
    "freq_mask": lambda x, **kw: augment.freq_mask(x, 8, **kw),
    "time_mask": lambda x, **kw: augment.time_mask(x, 10, **kw),
    "mixup": lambda x, **kw: augment.mixup(x, torch.eye(x.shape[0]), **kw)[0],
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_probability_zero_is_an_exact_no_op(name: str) -> None:
    x = _spec()
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    out = CALLS[name](x, p=0.0, generator=g)
    assert out is x
    assert torch.equal(g.get_state(), state), "no random numbers may be drawn at p=0"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_generator_reproducibility(name: str) -> None:
    x = _spec()
    a = CALLS[name](x, generator=torch.Generator().manual_seed(1))
    b = CALLS[name](x, generator=torch.Generator().manual_seed(1))
    c = CALLS[name](x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_shapes_dtypes_devices(name: str, dtype: torch.dtype, device: str) -> None:
    g = torch.Generator().manual_seed(0)  # a CPU generator drives inputs on any device
    for x in (_spec(), _wave()):
        if name.endswith("mask") and x.ndim == 2:
            continue
        x = x.to(device=device, dtype=dtype)
        out = CALLS[name](x, generator=g)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert torch.isfinite(out).all()
    if device != "cpu":  # and the device's own generator
        x = _spec().to(device)
        out = CALLS[name](x, generator=torch.Generator(device).manual_seed(0))
        assert out.device == x.device


def test_masks_need_a_spectrogram() -> None:
    with pytest.raises(ValueError, match="spectrogram"):
        augment.freq_mask(_wave(), 4)


@pytest.mark.parametrize("fn", [augment.time_roll, augment.random_gain])
def test_probability_out_of_range(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="probability"):
        fn(_wave(), p=1.5)


# ---------------------------------------------------------------------------------------------
# mixup


def test_mixup_class_indices_match_a_manual_computation() -> None:
    b, k = 6, 4
    x = _spec(b)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    mixed_x, mixed_y = augment.mixup(x, y, alpha=0.4, num_classes=k, generator=g1)
    lam, perm = augment.mixup_weights(b, alpha=0.4, generator=g2)

    assert sorted(perm.tolist()) == list(range(b))
    assert ((lam >= 0.5) & (lam <= 1.0)).all()
    for i in range(b):
        j, w = int(perm[i]), float(lam[i])
        expected_y = [0.0] * k
        expected_y[int(y[i])] += w
        expected_y[int(y[j])] += 1.0 - w
        assert mixed_y[i].tolist() == pytest.approx(expected_y, abs=1e-6)
        torch.testing.assert_close(mixed_x[i], w * x[i] + (1.0 - w) * x[j])
    torch.testing.assert_close(mixed_y.sum(1), torch.ones(b))


def test_mixup_multi_label_and_frame_targets() -> None:
    b = 5
    x = _wave(b)
    y = (torch.rand(b, 3, 7, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    _, mixed = augment.mixup(x, y, generator=torch.Generator().manual_seed(2))
    lam, perm = augment.mixup_weights(b, generator=torch.Generator().manual_seed(2))
    for i in range(b):
        torch.testing.assert_close(mixed[i], lam[i] * y[i] + (1 - lam[i]) * y[perm[i]])


def test_mixup_one_hot_at_p_zero_and_errors() -> None:
    x = _wave(3)
    out_x, out_y = augment.mixup(x, torch.tensor([2, 0, 1]), p=0.0, num_classes=3)
    assert out_x is x
    assert torch.equal(out_y, torch.eye(3)[[2, 0, 1]])
    with pytest.raises(ValueError, match="num_classes"):
        augment.mixup(x, torch.tensor([2, 0, 1]))
    with pytest.raises(ValueError, match="batch size"):
        augment.mixup(x, torch.eye(4))


def test_mixup_weights_distribution() -> None:
    # alpha = 1: Beta(1, 1) is uniform, so max(u, 1 - u) is uniform on [0.5, 1] with mean 0.75.
    lam, _ = augment.mixup_weights(20000, alpha=1.0, generator=torch.Generator().manual_seed(0))
    assert abs(lam.mean().item() - 0.75) < 0.01
    assert abs((lam < 0.625).float().mean().item() - 0.25) < 0.02
    # p = 0.3: about 70 % of the examples are left alone (lam exactly 1)
    lam, _ = augment.mixup_weights(20000, p=0.3, generator=torch.Generator().manual_seed(0))
    assert abs((lam == 1.0).float().mean().item() - 0.7) < 0.02


# ---------------------------------------------------------------------------------------------
# masks, roll, gain


def _reference_bands(g: torch.Generator, batch: int, size: int, max_width: int) -> list[range]:
    """The documented sampling (torchaudio's iid masks), written as a plain loop."""
    u = torch.rand(2, batch, generator=g)
    bands = []
    for b in range(batch):
        width = float(u[0, b]) * min(max_width, size)
        start = math.floor(float(u[1, b]) * (size - width))
        bands.append(range(start, start + math.floor(width)))
    return bands


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_masks_zero_exactly_the_drawn_bins(axis: str) -> None:
    x = _spec(b=64, f=16, t=30)
    size, max_width = (16, 9) if axis == "freq" else (30, 12)
    fn = augment.freq_mask if axis == "freq" else augment.time_mask
    out = fn(x, max_width, generator=torch.Generator().manual_seed(7))
    bands = _reference_bands(torch.Generator().manual_seed(7), 64, size, max_width)
    for b in range(64):
        zero = out[b, 0] == 0  # (F, T)
        expected = torch.zeros(size, dtype=torch.bool)
        expected[list(bands[b])] = True
        expected = expected[:, None].expand(16, 30) if axis == "freq" else expected.expand(16, 30)
        assert torch.equal(zero, expected)
        assert torch.equal(out[b, 0][~zero], x[b, 0][~zero])
        assert len(bands[b]) < max_width


def test_mask_width_distribution_and_several_masks() -> None:
    x = _spec(b=4000, f=40, t=8)
    out = augment.freq_mask(x, 10, generator=torch.Generator().manual_seed(0))
    widths = (out[:, 0, :, 0] == 0).sum(1).float()
    # floor(U * 10) is uniform on {0, ..., 9}
    assert abs(widths.mean().item() - 4.5) < 0.15
    assert widths.max().item() == 9
    two = augment.time_mask(
        _spec(b=500, t=100), 10, num_masks=2, generator=torch.Generator().manual_seed(0)
    )
    counts = (two[:, 0, 0, :] == 0).sum(1)
    assert counts.max().item() > 9  # two bands can cover more than one band's maximum


def test_time_roll_is_a_circular_shift_per_example() -> None:
    x = _spec(b=8, t=30)
    out = augment.time_roll(x, 5, generator=torch.Generator().manual_seed(0))
    shifts = []
    for b in range(8):
        found = [s for s in range(-5, 6) if torch.equal(torch.roll(x[b], s, dims=-1), out[b])]
        assert found, "each example is a circular time shift of itself (all bins alike)"
        shifts.append(found[0])
    assert len(set(shifts)) > 1, "shifts are drawn per example"
    w = _wave(4, 50)
    full = augment.time_roll(w, generator=torch.Generator().manual_seed(1))
    for b in range(4):
        assert any(torch.equal(torch.roll(w[b], s), full[b]) for s in range(50))


def test_random_gain_range_and_partial_probability() -> None:
    x = _wave(2000, 10) + 5.0
    out = augment.random_gain(x, -6.0, 3.0, p=0.5, generator=torch.Generator().manual_seed(0))
    ratio = out / x
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))  # one gain per example
    db = 20 * ratio[:, 0].log10()
    assert db.min() >= -6.0 - 1e-4 and db.max() <= 3.0 + 1e-4
    unchanged = (db.abs() < 1e-6).float().mean().item()
    assert abs(unchanged - 0.5) < 0.05


# ---------------------------------------------------------------------------------------------
# the frontend's own augmentation, switched on from create()


def test_frontend_augmentation_from_create() -> None:
    plain = audiozoo.create("mn01", pretrained=False)
    aug = audiozoo.create(
        "mn01", pretrained=False, frontend={"augment": True, "freqm": 48, "timem": 20}
    )
    assert aug.frontend.config()["augment"] is True
    assert aug.frontend.config()["freqm"] == 48
    assert aug.frontend.config()["timem"] == 20
    wave = _wave(2, 16000)
    # eval mode: identical to the plain frontend; train mode: augmented and reproducible
    torch.testing.assert_close(aug.frontend(wave), plain.frontend(wave))
    aug.train()
    aug.frontend.generator = torch.Generator().manual_seed(0)
    a = aug.frontend(wave)
    aug.frontend.generator = torch.Generator().manual_seed(0)
    b = aug.frontend(wave)
    assert torch.equal(a, b)
    assert not torch.allclose(a, plain.frontend(wave))
