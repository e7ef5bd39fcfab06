"""optimize_for_inference: BatchNorm folding, no autograd, the original untouched, same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import audiozoo
from audiozoo.optimize import fold_batch_norms, optimize_for_inference


def _alive_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and affine parameters (a fresh BN is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(n, generator=g))
                m.running_var.copy_(0.2 + torch.rand(n, generator=g))
                m.weight.copy_(1 + 0.3 * torch.randn(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))


def _reference_batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BatchNorm written out in float64: (x - mean) / sqrt(var + eps) * w + b."""
    shape = (1, -1, 1, 1)
    x = x.double()
    mean, var = bn.running_mean.double().view(shape), bn.running_var.double().view(shape)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.double().view(shape) + (
        bn.bias.double().view(shape)
    )


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("groups", [1, 4])
def test_fold_matches_conv_then_reference_batch_norm(bias: bool, groups: int) -> None:
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=groups, bias=bias), nn.BatchNorm2d(8, eps=1e-3)
    )
    _alive_batch_norms(seq)
    seq.eval()
    x = torch.randn(2, 8, 9, 11)
    with torch.no_grad():
        expected = _reference_batch_norm(seq[0](x), seq[1])
        assert fold_batch_norms(seq) == 1
        assert isinstance(seq[1], nn.Identity)
        assert seq[0].bias is not None
        torch.testing.assert_close(seq(x).double(), expected, atol=1e-5, rtol=1e-5)


def test_only_conv_directly_followed_by_its_batch_norm_is_folded() -> None:
    seq = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.BatchNorm2d(4),  # after an activation: not foldable
        nn.Conv1d(4, 4, 1),
        nn.BatchNorm2d(4),  # wrong dimensionality for a Conv1d
        nn.Conv2d(4, 4, 1),
        nn.BatchNorm2d(4, track_running_stats=False),  # batch statistics even in eval
    )
    assert fold_batch_norms(seq) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in seq) == 3


def test_mn10_optimized_matches_eager_and_leaves_the_original_alone() -> None:
    torch.manual_seed(0)
    model = audiozoo.create("mn10.as", pretrained=False)
    _alive_batch_norms(model)
    model.train()  # the copy must be in eval mode regardless
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    model.eval()

    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 40
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # every one folded
    assert not fast.training
    assert not any(p.requires_grad for p in fast.parameters())
    assert all(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k

    x = 0.1 * torch.randn(2, 32000)
    with torch.no_grad():
        expected = model(x)
    out = fast(x)
    assert out.grad_fn is None
    assert (out - expected).abs().max() <= 1e-4


@pytest.mark.parametrize("channels_last", [True, False])
def test_memory_format_option_gives_the_same_outputs(channels_last: bool) -> None:
    torch.manual_seed(1)
    model = audiozoo.create("mn01.as", pretrained=False)
    _alive_batch_norms(model, seed=1)
    model.eval()
    fast = audiozoo.optimize_for_inference(model, channels_last=channels_last)
    for conv in (m for m in fast.modules() if isinstance(m, nn.Conv2d)):
        _, c, h, w = conv.weight.shape
        nhwc = (h * w * c, 1, w * c, c)  # written out: is_contiguous() can't tell for c == 1
        assert (conv.weight.stride() == nhwc) == channels_last
    with torch.no_grad():
        spec = fast.frontend(0.1 * torch.randn(2, 16000))
        stem_out = fast.backbone.features[0](spec)
    assert (stem_out.stride()[1] == 1) == channels_last  # NHWC activations from the first conv
    x = 0.1 * torch.randn(2, 16000)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() <= 1e-4


def test_cnn_stem_and_shortcuts_are_folded() -> None:
    torch.manual_seed(2)
    model = audiozoo.create("cnn", pretrained=False)
    _alive_batch_norms(model, seed=2)
    model.eval()
    fast = optimize_for_inference(model)
    assert isinstance(fast.backbone.stem[1], nn.Identity)
    x = 0.1 * torch.randn(2, model.sample_rate)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() <= 1e-4
