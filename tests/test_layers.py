"""Features of any layer (``embed(layers=...)``) and the ``weighted`` head, for every family."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo

SECONDS = 2.0


def _model(arch: str, head: str = "linear") -> audiozoo.AudioModel:
    torch.manual_seed(0)
    kwargs = dict(audiozoo.get_architecture(arch).test_kwargs)
    return audiozoo.create(arch, pretrained=False, head=head, num_classes=3, **kwargs).eval()


def _families() -> list[str]:
    first: dict[str, str] = {}
    for arch in audiozoo.list_models():
        first.setdefault(audiozoo.get_architecture(arch).family, arch)
    return sorted(first.values())


@pytest.mark.parametrize("arch", _families())
def test_every_layer_of_every_family(arch: str) -> None:
    model = _model(arch)
    names = model.layer_names
    assert len(names) == len(model.backbone.stages()) == len(set(names))
    wave = 0.1 * torch.randn(2, int(SECONDS * model.sample_rate))
    with torch.no_grad():
        clip = model.embed(wave, layers="all")
        frames = model.embed(wave, layers="all", frames=True)
        last = model.embed(wave)
    assert list(clip) == list(frames) == names
    torch.testing.assert_close(clip[names[-1]], last, rtol=0, atol=0)
    hops = model.layer_frame_hops
    for name in names:
        c = clip[name].shape[-1]
        assert clip[name].shape == (2, c) and torch.isfinite(clip[name]).all()
        t = frames[name].shape[1]
        assert frames[name].shape == (2, t, c)
        # each layer's frames are layer_frame_hops[name] apart: the count fits the duration
        assert abs(t - math.ceil(SECONDS / hops[name])) <= 1, (name, t, hops[name])


def test_names_indices_and_errors() -> None:
    model = _model("passt_s")
    names = model.layer_names
    assert names[0] == "embed" and names[-1] == "norm" and names[1] == "blocks.0"
    wave = 0.1 * torch.randn(1, 32000)
    with torch.no_grad():
        by_index = model.embed(wave, layers=[0, -1])
        by_name = model.embed(wave, layers=["embed", "norm"])
        single = model.embed(wave[0], layers="blocks.0")
    assert list(by_index) == ["embed", "norm"]
    for k in by_index:
        torch.testing.assert_close(by_index[k], by_name[k], rtol=0, atol=0)
    assert single["blocks.0"].shape == (model.num_features,)  # an (N,) clip: no batch axis
    with pytest.raises(ValueError, match=r"unknown layer 'blocks\.9'"):
        model.embed(wave, layers="blocks.9")
    with pytest.raises(IndexError, match="out of range"):
        model.embed(wave, layers=7)


def test_cnn_layer_shapes_follow_the_stages() -> None:
    model = _model("mn01")
    wave = 0.1 * torch.randn(1, 10 * model.sample_rate)
    with torch.no_grad():
        out = model.embed(wave, layers="all", frames=True)
    assert {k: v.shape[1] for k, v in out.items()} == {
        "features.0": 500,
        "features.1": 500,
        "features.2-3": 250,
        "features.4-6": 125,
        "features.7-12": 63,
        "features.13-15": 32,
        "features.16": 32,
    }


def test_a_layer_equals_running_the_stages_by_hand() -> None:
    model = _model("cnn")
    wave = 0.1 * torch.randn(2, 32000)
    b = model.backbone
    with torch.no_grad():
        x = b.layer1(b.stem(model.frontend(wave)))
        got = model.embed(wave, layers="layer1")["layer1"]
    torch.testing.assert_close(got, x.mean(dim=(2, 3)))


def test_long_audio_layers_are_windowed_like_the_output() -> None:
    model = _model("passt_s")
    wave = 0.1 * torch.randn(1, int(23.1 * model.sample_rate))
    with torch.no_grad():
        frames = model.embed(wave, layers="all", frames=True)
        out = model.embed(wave, frames=True)
    torch.testing.assert_close(frames["norm"], out, rtol=0, atol=0)
    assert {v.shape[1] for v in frames.values()} == {out.shape[1]}


@pytest.mark.parametrize("arch", ["mn01", "passt_s"])
def test_weighted_head_trains_and_round_trips(arch: str, tmp_path) -> None:
    model = _model(arch, "weighted")
    head = model.head
    assert len(head.layer_dims) == len(model.layer_names)
    torch.testing.assert_close(
        head.weights, torch.full((len(head.layer_dims),), 1 / len(head.layer_dims))
    )
    wave = 0.1 * torch.randn(2, 20000)
    model.train()
    model(wave).square().mean().backward()
    assert head.layer_weights.grad is not None and head.layer_weights.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        head.layer_weights.copy_(torch.arange(len(head.layer_dims), dtype=torch.float32))
        out = model(wave)
        # by hand: the softmax-weighted sum of the (projected) clip embeddings of all layers
        layers = model.embed(wave, layers="all")
        w = torch.softmax(head.layer_weights, 0)
        mixed = sum(
            w[i] * p(v) for i, (p, v) in enumerate(zip(head.proj, layers.values(), strict=True))
        )
        torch.testing.assert_close(out, head.fc(head.norm(mixed)))
    model.save_pretrained(tmp_path / "m")
    loaded = audiozoo.create(f"local-dir:{tmp_path / 'm'}")
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave), out)


def test_the_layers_page_renders_every_family() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "layers.py"
    spec = importlib.util.spec_from_file_location("audiozoo_docs_layers", path)
    assert spec is not None and spec.loader is not None
    page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page)
    families = page.representatives()
    assert set(families) == {audiozoo.get_architecture(a).family for a in audiozoo.list_models()}
    text = page.render_page(families.items(), small=True)
    for family, arch in families.items():
        assert f"## {family}" in text
        for name in _model(arch).layer_names:
            assert f"| `{name}` |" in text
