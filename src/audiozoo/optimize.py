"""An inference-optimized copy of a model: BatchNorm folded into convolutions, channels-last
convolution weights, no autograd.

In eval mode a BatchNorm after a convolution is a fixed per-channel affine map, so it can be
merged into the convolution's weight and bias: one kernel instead of two passes over the
activations. :func:`optimize_for_inference` does this on a copy (the original model is left
untouched and keeps training as usual)::

    import audiozoo
    model = audiozoo.create("mn10.as")
    fast = audiozoo.optimize_for_inference(model)
    logits = fast(waveform)  # same outputs as model(waveform), to float32 rounding (<= 1e-4)

Which BatchNorms are folded: every ``BatchNorm{1,2,3}d`` with running statistics that directly
follows a ``Conv{1,2,3}d`` of the same dimensionality and channel count inside an
``nn.Sequential`` (there the convolution's output goes to the BatchNorm and nowhere else, so
folding cannot change any other path). This covers EfficientAT's MobileNets (every conv of every
block) and the stems and shortcuts of the course CNN; convolutions that are wired to their
BatchNorm in a hand-written ``forward`` are left as they are.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = ["fold_batch_norms", "optimize_for_inference"]

M = TypeVar("M", bound=nn.Module)

_CONV_BN = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))


def optimize_for_inference(model: M, *, channels_last: bool = True) -> M:
    """A copy of ``model`` for fast inference; ``model`` itself is not changed.

    The copy is in eval mode, has every foldable BatchNorm merged into the convolution before it
    (see the module docstring) and all parameters with ``requires_grad=False``, so calling it
    never builds an autograd graph. Outputs equal the eager model's in eval mode up to float32
    rounding (within 1e-4 for the released CNNs).

    The copy is meant for inference only: its folded layers have no BatchNorm statistics left to
    train. Transformers (PaSST, AST) have no BatchNorm; for them the copy only differs by not
    tracking gradients.

    Args:
        model: any ``nn.Module``, typically an :class:`~audiozoo.AudioModel` from
            :func:`audiozoo.create`.
        channels_last: run the 2-D convolutions in channels-last (NHWC) layout: their weights
            are stored that way and their inputs restrided on the way in. On by default: on CPU
            it makes EfficientAT's mn10 about 1.5x faster than NCHW with the same folding, with
            identical outputs (``docs/benchmarks.md``); pass False to keep NCHW.

    Returns:
        The optimized copy, same class as ``model``.
    """
    optimized = copy.deepcopy(model).eval()
    fold_batch_norms(optimized)
    for p in optimized.parameters():
        p.requires_grad_(False)
    if channels_last:
        for m in optimized.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data = _channels_last(m.weight.data)
                m.register_forward_pre_hook(_channels_last_input)
    return optimized


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` (4-D) with exactly channels-last strides.

    ``Tensor.contiguous(memory_format=torch.channels_last)`` is not enough: for one input channel
    (the spectrogram, depthwise and 1x1 kernels) the NCHW strides already count as channels-last
    and the tensor is returned unchanged, so the convolutions would silently stay in NCHW.
    """
    _, c, h, w = t.shape
    if t.stride() == (h * w * c, 1, w * c, c):
        return t
    return torch.empty_like(t, memory_format=torch.channels_last).copy_(t)


def _channels_last_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[Any, ...]:
    # Convolutions keep their input's layout: the first one gets the spectrogram restrided, the
    # others already receive channels-last activations (a cheap stride check, no copy).
    return (_channels_last(args[0]), *args[1:])


def fold_batch_norms(module: nn.Module) -> int:
    """Fold, in place, each BatchNorm that directly follows a convolution in an ``nn.Sequential``.

    The convolution gets the BatchNorm's eval-mode affine map merged into its weight and bias
    (a bias is added when it had none); the BatchNorm is replaced by ``nn.Identity``, so the
    Sequential keeps its indices. BatchNorms without running statistics
    (``track_running_stats=False``) normalise with batch statistics and are left alone.

    Args:
        module: the module to change in place (call it on an eval-mode copy).

    Returns:
        The number of BatchNorms folded.
    """
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for name, next_name in itertools.pairwise(names):
            conv, bn = seq._modules[name], seq._modules[next_name]
            if _foldable(conv, bn):
                _fold_into(conv, bn)  # type: ignore[arg-type]
                seq._modules[next_name] = nn.Identity()
                folded += 1
    return folded


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    if not any(type(conv) is c and type(bn) is b for c, b in _CONV_BN):
        return False
    assert isinstance(conv, _ConvNd) and isinstance(bn, _BatchNorm)
    return (
        bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.out_channels
    )


@torch.no_grad()
def _fold_into(conv: _ConvNd, bn: _BatchNorm) -> None:
    """conv ← bn ∘ conv: ``w' = w · g / sqrt(v + eps)``, ``b' = (b - m) · g / sqrt(v + eps) + β``."""
    assert bn.running_mean is not None and bn.running_var is not None
    dtype = conv.weight.dtype
    # float64 for the folding itself, so the merged weights carry no extra rounding error
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + conv.bias.double() * scale
    view = (-1,) + (1,) * (conv.weight.dim() - 1)
    conv.weight.copy_((conv.weight.double() * scale.view(view)).to(dtype))
    conv.bias = nn.Parameter(shift.to(dtype=dtype, device=conv.weight.device))
