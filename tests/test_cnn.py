"""The course CNN: shapes, output length arithmetic, gradients, registration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import audiozoo
from audiozoo._errors import InvalidAudioError
from audiozoo.backbones.cnn import CNN


def naive_frames(t: int) -> int:
    """Stem conv (5x5, stride 2, pad 2) and stride-2 blocks halve rounding up; max-pools round down."""
    t = -(-t // 2)  # stem
    t //= 2  # max-pool after layer1
    t //= 2  # max-pool after layer2
    t = -(-t // 2)  # layer3
    return -(-t // 2)  # layer4


def test_shapes_default():
    torch.manual_seed(0)
    model = CNN().eval()
    with torch.no_grad():
        grid = model(torch.randn(2, 1, 128, 1000)).grid
    assert grid.shape == (2, 128, 4, 32)
    assert model.num_features == 128 and model.time_stride == 32


@pytest.mark.parametrize(("base", "multiplier"), [(8, 3), (4, 1)])
def test_channel_progression(base, multiplier):
    model = CNN(base, multiplier)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    outs = sorted({c.out_channels for c in convs})
    assert outs == sorted({base, base * multiplier, base * multiplier**2, base * multiplier**3})
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).grid.shape[1] == base * multiplier**3


def test_num_output_frames_matches_forward():
    torch.manual_seed(0)
    model = CNN(base=4).eval()
    for t in (7, 8, 13, 15, 16, 31, 32, 33, 100, 1001):
        with torch.no_grad():
            grid = model(torch.randn(1, 1, 16, t)).grid
        assert grid.shape[-1] == model.num_output_frames(t) == naive_frames(t), t
    assert model.min_frames == 7 and naive_frames(6) == 0


def test_too_short_input_raises():
    with pytest.raises(InvalidAudioError, match="at least 7"):
        CNN()(torch.randn(1, 1, 64, 6))
    with pytest.raises(InvalidAudioError, match=r"\(B, 1, F, T\)"):
        CNN()(torch.randn(1, 64, 100))


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = CNN(base=4).train()
    spec = torch.randn(2, 1, 32, 40, requires_grad=True)
    model(spec).pooled().pow(2).sum().backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_stages_partition_the_parameters():
    model = CNN()
    ids = [id(p) for s in model.stages() for p in s.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert model.stages()[0] is model.stem


def test_registered_without_weights():
    arch = audiozoo.get_architecture("cnn")
    assert arch.weights == {} and arch.default_tag is None
    cfg = arch.cfg(None)
    assert cfg.head == {"name": "linear", "num_classes": 10}
    assert cfg.frontend["name"] == "mel" and not cfg.has_weights
    assert isinstance(arch.builder(base=8), CNN)
