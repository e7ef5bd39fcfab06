"""audiozoo.finetune.param_groups: layer-wise learning rates, coverage, freezing, weight decay."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import audiozoo
from audiozoo.finetune import param_groups, recalibrate_batchnorm, stage_lr_scales

# One small configuration per backbone family (the stage definitions do not depend on size).
FAMILIES: dict[str, dict[str, Any]] = {
    "cnn": {"name": "cnn", "base": 4},
    "mn": {"name": "mn01"},
    "passt": {"name": "passt_s", "embed_dim": 32, "depth": 3, "num_heads": 2, "input_tdim": 100},
    "ast": {
        "name": "ast",
        "embed_dim": 32,
        "depth": 3,
        "num_heads": 2,
        "input_tdim": 100,
        "frontend": {"target_frames": 100},
    },
}


def small_model(family: str, head: str = "linear", **kwargs: Any) -> audiozoo.AudioModel:
    cfg = dict(FAMILIES[family])
    return audiozoo.create(
        cfg.pop("name"), pretrained=False, head=head, num_classes=3, **cfg, **kwargs
    )


def _lr_by_param(groups: list[dict[str, Any]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in out, "a parameter is in two groups"
            out[id(p)] = g["lr"]
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_learning_rates_decay_per_stage(family: str) -> None:
    model = small_model(family)
    lr, decay = 1e-3, 0.5
    groups = param_groups(model, lr, layer_decay=decay)
    got = _lr_by_param(groups)

    # Expected, walked independently: stage i of S gets lr * decay ** (S - i), the head lr.
    stages = model.backbone.stages()
    expected: dict[int, float] = {}
    for i, stage in enumerate(stages):
        for p in stage.parameters():
            expected[id(p)] = lr * decay ** (len(stages) - i)
    for p in model.head.parameters():
        expected[id(p)] = lr
    for p in model.frontend.parameters():
        expected[id(p)] = lr * decay ** (len(stages) + 1)

    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)
    # every trainable parameter exactly once (no duplicates was checked while collecting)
    assert set(got) == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(stages) > 1, "every family splits its backbone into several stages"
    torch.optim.AdamW(groups)  # torch accepts the groups (extra keys included)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_frozen_parameters_are_left_out(family: str) -> None:
    model = small_model(family, freeze=2)
    stages = model.backbone.stages()
    frozen = {id(p) for s in stages[:2] for p in s.parameters()}
    got = _lr_by_param(param_groups(model, 1e-3))
    assert frozen and not (frozen & set(got))
    assert set(got) == {id(p) for p in model.parameters() if p.requires_grad}

    head_only = small_model(family, freeze=True)
    groups = param_groups(head_only, 1e-3)
    assert {g["name"].split(".")[0] for g in groups} == {"head"}
    assert set(_lr_by_param(groups)) == {id(p) for p in head_only.head.parameters()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_no_weight_decay_for_norms_biases_and_embeddings(family: str) -> None:
    model = small_model(family)
    decay_of = {}
    for g in param_groups(model, 1e-3, weight_decay=0.05):
        for p in g["params"]:
            decay_of[id(p)] = g["weight_decay"]
    for name, p in model.named_parameters():
        exempt = p.ndim <= 1 or any(k in name for k in ("pos_embed", "cls_token", "dist_token"))
        assert decay_of[id(p)] == (0.0 if exempt else 0.05), name


def test_group_names_and_custom_no_decay() -> None:
    model = small_model("cnn")
    groups = param_groups(model, 1.0, layer_decay=0.5, no_decay=lambda name, p: "head" in name)
    names = [g["name"] for g in groups]
    assert names[-1] == "head.no_decay" and "head" not in names
    assert names[0].startswith("backbone.stage0")
    assert [g["lr_scale"] for g in groups] == sorted(g["lr_scale"] for g in groups)


def test_uniform_learning_rate_with_decay_one() -> None:
    groups = param_groups(small_model("mn"), 2e-3, layer_decay=1.0)
    assert {g["lr"] for g in groups} == {2e-3}


def test_stage_lr_scales() -> None:
    assert stage_lr_scales(3, 0.5) == [0.0625, 0.125, 0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(small_model("cnn"), 1e-3, layer_decay=0.0)


class _Broken(nn.Module):
    """Stands in for a model whose backbone's stages() are wrong."""

    def __init__(self, stages: list[nn.Module]) -> None:
        super().__init__()
        self.frontend = nn.Identity()
        self.backbone = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        self.backbone.stages = lambda: stages  # type: ignore[assignment]
        self.head = nn.Linear(2, 1)


def test_stages_must_cover_the_backbone_exactly_once() -> None:
    m = _Broken([])
    m.backbone.stages = lambda: [m.backbone[0]]  # type: ignore[assignment]
    with pytest.raises(ValueError, match="misses parameters"):
        param_groups(m, 1e-3)
    m.backbone.stages = lambda: [m.backbone, m.backbone[1]]  # type: ignore[assignment]
    with pytest.raises(ValueError, match="two stages"):
        param_groups(m, 1e-3)


def test_recalibrate_batchnorm_gives_exact_statistics() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.BatchNorm1d(4))
    frozen = net[3]
    frozen.eval()  # stands in for a frozen stage: its statistics must not change
    frozen.train = lambda mode=True: frozen  # type: ignore[assignment, method-assign]
    before = frozen.running_mean.clone()
    batches = [torch.randn(16, 3) * 3 + 1 for _ in range(4)]
    net.eval()
    used = recalibrate_batchnorm(net, [(b, None) for b in batches], max_batches=3)
    assert used == 3 and not net.training and net[1].momentum == 0.1
    # reference: the mean over batches of the per-batch statistics of the first layer's output
    with torch.no_grad():
        acts = [net[0](b) for b in batches[:3]]
    torch.testing.assert_close(net[1].running_mean, torch.stack([a.mean(0) for a in acts]).mean(0))
    torch.testing.assert_close(
        net[1].running_var, torch.stack([a.var(0, unbiased=True) for a in acts]).mean(0)
    )
    assert torch.equal(frozen.running_mean, before)
    assert recalibrate_batchnorm(net, []) == 0
    torch.testing.assert_close(net[1].running_mean, torch.stack([a.mean(0) for a in acts]).mean(0))
