"""create(): heads, num_classes, freezing, loading checkpoints strictly, errors."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from audiozoo import CheckpointError, PretrainedUnavailableError, RegistryError
from tests.conftest import require_fixtures


def test_issue_example_frame_head_frozen_one_step_changes_only_the_head():
    torch.manual_seed(0)
    model = audiozoo.create("mn10", head="frame", num_classes=10, freeze=True, pretrained=False)
    wave = torch.randn(2, 96000) * 0.1
    out = model(wave)
    expected_t = model.backbone.num_output_frames(model.frontend.num_frames(96000))
    assert out.shape == (2, expected_t, 10)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert not model.backbone.training and not model.frontend.training  # frozen stays eval
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(wave).logsumexp(-1).mean()
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head.") for k in changed), changed
    # BatchNorm running statistics did not move although the model was in train mode
    assert not any("running_" in k for k in changed)
    assert all(not p.requires_grad for p in model.backbone.parameters())


def test_unfrozen_train_mode_moves_batchnorm():
    model = audiozoo.create("mn01", pretrained=False).train()
    before = model.backbone.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    model(torch.randn(2, 16000))
    moved = [k for k, v in model.backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert any("running_mean" in k for k in moved)


def test_partial_freeze_by_stages():
    model = audiozoo.create("mn01", pretrained=False, freeze=2)
    stages = model.backbone.stages()
    assert all(not p.requires_grad for s in stages[:2] for p in s.parameters())
    assert all(p.requires_grad for s in stages[2:] for p in s.parameters())
    model.train()
    assert not stages[0].training and stages[-1].training
    with pytest.raises(ValueError, match="stages"):
        audiozoo.create("mn01", pretrained=False, freeze=len(stages) + 1)


def test_embed_and_frame_hop():
    model = audiozoo.create("mn01", pretrained=False)
    wave = torch.randn(3, 32000 * 3) * 0.1
    emb = model.embed(wave)
    assert emb.shape == (3, model.num_features)
    seq = model.embed(wave, frames=True)
    assert seq.shape[0] == 3 and seq.shape[2] == model.num_features
    duration = wave.shape[1] / model.sample_rate
    assert abs(seq.shape[1] - math.ceil(duration / model.frame_hop)) <= 1
    assert model.frame_hop == pytest.approx(320 * 32 / 32000)
    # model(x) with the identity head is the clip embedding
    ident = audiozoo.create("mn01", pretrained=False, head="identity")
    ident.load_state_dict(model.state_dict(), strict=False)
    torch.testing.assert_close(ident(wave), emb)


def test_head_and_num_classes_errors():
    with pytest.raises(RegistryError, match="num_classes"):
        audiozoo.create("mn01", pretrained=False, head="linear")
    with pytest.raises(RegistryError, match="head="):
        audiozoo.create("mn01", pretrained=False, num_classes=5)
    with pytest.raises(RegistryError, match="head="):
        audiozoo.create("cnn", pretrained=False, num_classes=5)


def test_custom_head_module():
    class MaxHead(torch.nn.Module):
        def forward(self, features):
            return features.grid.amax(dim=(2, 3))

    model = audiozoo.create("mn01", pretrained=False, head=MaxHead())
    assert model(torch.randn(2, 8000)).shape == (2, model.num_features)


def test_pretrained_true_without_weights_or_network():
    with pytest.raises(PretrainedUnavailableError, match="pretrained=False"):
        audiozoo.create("cnn", head="linear", num_classes=3)
    # HF_HUB_OFFLINE=1 and an empty cache (conftest): a clear message with the two ways out
    with pytest.raises(PretrainedUnavailableError, match=r"audiozoo download.*pretrained=PATH"):
        audiozoo.create("mn01")


def test_load_upstream_file_and_replace_head():
    path = require_fixtures("efficientat", "mn01_as.pt")
    model = audiozoo.create("mn01.as", pretrained=str(path))
    ref = torch.load(path, weights_only=True)
    torch.testing.assert_close(model.head.fc2.weight, ref["classifier.5.weight"])

    replaced = audiozoo.create("mn01.as", pretrained=str(path), head="frame", num_classes=4)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, replaced.backbone.state_dict()[k]), k


def test_wrong_checkpoint_for_architecture_raises():
    path = require_fixtures("efficientat", "mn01_as.pt")
    with pytest.raises(CheckpointError, match=r"wrong shape"):
        audiozoo.create("mn10.as", pretrained=str(path))


def test_replaced_head_requires_exactly_the_old_head_keys(tmp_path):
    path = require_fixtures("efficientat", "mn01_as.pt")
    sd = torch.load(path, weights_only=True)
    del sd["classifier.5.bias"]  # the old head is incomplete: not the checkpoint we think
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(CheckpointError, match=r"classifier|head"):
        audiozoo.create("mn01.as", pretrained=str(bad), head="linear", num_classes=3)


def test_native_checkpoint_roundtrip(tmp_path):
    from safetensors.torch import save_file

    model = audiozoo.create("mn01", pretrained=False)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    again = audiozoo.create("mn01", pretrained=str(path))
    wave = torch.randn(1, 16000)
    torch.testing.assert_close(again(wave), model(wave), rtol=0, atol=0)


def test_create_returns_eval_mode():
    assert not audiozoo.create("mn01", pretrained=False).training
