"""The model zoo page (docs/hooks/zoo.py): every tag listed, numbers checked against the models.

The expected parameter and MAC counts come from independent computations: closed-form counts for
a ViT (AST) and forward hooks on every convolution and linear layer (MobileNet), not from
``torch.utils.flop_counter``, which the page uses.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import audiozoo

ZOO_PY = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "zoo.py"


@pytest.fixture(scope="module")
def zoo():
    spec = importlib.util.spec_from_file_location("audiozoo_docs_zoo", ZOO_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _fake_measure(zoo, calls: list[str]):
    def measure(name: str):
        calls.append(name)
        return zoo.Measured(params=1, macs=2, sample_rate=32000, frame_hop=0.01, embed_dim=3)

    return measure


def test_page_lists_every_tag_once_and_measures_each_model_once(zoo):
    calls: list[str] = []
    rows = zoo.zoo_rows(measure=_fake_measure(zoo, calls))
    tags = audiozoo.list_models(pretrained=True)
    assert [r.name for r in rows] == tags
    page = zoo.render_page(rows)
    for tag in tags:
        assert page.count(f"| `{tag}` |") == 1, tag
    # weights that build the same model share one measurement (mn40.as, mn40.as_2, ...)
    assert len(calls) == len(set(calls)) < len(tags)
    assert "mn40.as" in calls and "mn40.as_2" not in calls
    assert "mn10.as_hop_5" in calls  # another frontend: measured separately


def test_formatting(zoo):
    assert zoo.fmt_count(4_881_000) == "4.88 M"
    assert zoo.fmt_count(86_200_000) == "86.2 M"
    assert zoo.fmt_count(1_120_000_000) == "1.12 G"
    assert zoo.fmt_count(950) == "950"
    assert zoo.fmt_metric({"audioset_mAP": 0.471}) == "AudioSet mAP 0.471"
    assert (
        zoo.fmt_metric({"speech_commands_accuracy": 0.9812}) == "Speech Commands V2 accuracy 0.9812"
    )
    assert zoo.fmt_metric({}) == "–"


def test_sed_metrics_are_named(zoo):
    """PretrainedSED reports PSDS1 on AudioSet-Strong and DESED (keys in either case)."""
    assert zoo.fmt_metric({"audioset_strong_psds1": 0.458, "desed_psds1": 0.504}) == (
        "AudioSet-Strong PSDS1 0.458<br>DESED PSDS1 0.504"
    )
    assert zoo.fmt_metric({"audioset_strong_PSDS1": 0.454}) == "AudioSet-Strong PSDS1 0.454"


def test_sed_rows_show_the_40ms_grid_and_447_classes(zoo):
    strong = audiozoo.list_models("*.as_strong", pretrained=True)
    assert {"frame_mn06.as_strong", "frame_mn10.as_strong", "fpasst.as_strong"} <= set(strong)
    rows = zoo.zoo_rows(strong, measure=_fake_measure(zoo, []))
    assert all(row.num_classes == 447 for row in rows)
    (row,) = zoo.zoo_rows(["frame_mn06.as_strong"])  # measured on the built model
    line = zoo.render_row(row)
    assert "| 16 kHz | 40 ms | 576 | 447 |" in line, line


def _hooked_macs(model: audiozoo.AudioModel, seconds: float) -> int:
    """MACs of backbone + head from forward hooks: conv = out elements × (C_in / groups) × kernel
    area, linear = out elements × in_features."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = math.prod(module.kernel_size)
            total += out.numel() * (module.in_channels // module.groups) * kernel
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            spec = model.frontend(torch.zeros(1, round(seconds * model.sample_rate)))
            model.head(model.backbone(spec))
    finally:
        for h in handles:
            h.remove()
    return total


@pytest.mark.parametrize("name", ["mn01.as", "mn10.as_hop_5"])
def test_mobilenet_numbers_match_the_model(zoo, name):
    (row,) = zoo.zoo_rows([name])
    model = audiozoo.create(name, pretrained=False)
    buffers = {n for n, _ in model.named_buffers()}
    expected_params = sum(t.numel() for n, t in model.state_dict().items() if n not in buffers)
    assert row.measured.params == expected_params
    assert row.measured.macs == _hooked_macs(model, zoo.SECONDS)
    assert row.measured.sample_rate == 32000
    assert row.measured.frame_hop == pytest.approx(model.frontend.hop_length / 32000 * 32)
    assert row.measured.embed_dim == model.backbone.num_features
    assert row.measured.window is None  # MobileNets take any length at once
    line = zoo.render_row(row)
    assert f"| {zoo.fmt_count(expected_params)} |" in line
    assert "32 kHz" in line and "MIT" in line


@pytest.mark.slow
def test_ast_numbers_match_the_closed_form(zoo):
    # the Speech Commands AST: 128 input frames, so the ViT runs on 12 x 12 patches (cheap)
    (row,) = zoo.zoo_rows(["ast.speech_commands"])
    d, depth, k, patch, stride = 768, 12, 35, 16, 10
    nf = nt = (128 - patch) // stride + 1
    n = nf * nt + 2  # patches + class token + distillation token
    patch_embed = d * patch * patch + d  # conv weight + bias
    tokens = 2 * d + n * d  # class/distillation tokens, positional table
    block = 12 * d * d + 13 * d  # 2 LayerNorms, qkv, proj, MLP d -> 4d -> d
    head = 2 * d + d * k + k  # LayerNorm + Linear
    params = patch_embed + tokens + depth * block + 2 * d + head  # 2 * d: final LayerNorm
    macs = (
        d * nf * nt * patch * patch  # patch embedding
        + depth * (12 * n * d * d + 2 * n * n * d)  # projections + MLP, then QK^T and AV
        + d * k  # classifier on the pooled token
    )
    assert row.measured.params == params
    assert row.measured.macs == macs
    assert row.measured.sample_rate == 16000
    assert row.measured.frame_hop == pytest.approx(0.1)
    assert row.measured.embed_dim == d
    assert row.measured.window == pytest.approx(128 * 160 / 16000)  # one input: 128 frames
    line = zoo.render_row(row)
    assert (
        f"| {zoo.fmt_count(params)} | {zoo.fmt_count(macs)} per 1.28 s window | 16 kHz | 100 ms "
        "| 768 | 35 |" in line
    )
    assert "Speech Commands V2 accuracy" in line and "BSD-3-Clause" in line
