"""Model statistics for ``audiozoo info`` and the docs: parameters, MACs, receptive field.

- Parameters: ``sum(p.numel())`` over all parameters (frontends have none).
- MACs: :class:`torch.utils.flop_counter.FlopCounterMode` counts the FLOPs of every matrix
  multiplication and convolution of backbone + head on the spectrogram of ``seconds`` of audio
  (batch 1, eval mode); MACs = FLOPs / 2. Like upstream's published numbers, the frontend (STFT
  and mel filterbank) is not counted, and neither are element-wise operations.
- Receptive field along time, in spectrogram frames, of CNN backbones: the ``Conv*`` and
  pooling layers are walked in the order they are registered (their forward order in
  audiozoo's sequential backbones) and combined with the standard recursion
  ``r += (k - 1) * d * j; j *= s`` (k kernel, d dilation, s stride along time, j the product of
  the earlier strides, r starting at 1). Parallel paths (residual connections) are never longer
  than the main path, and global operations (squeeze-excitation, global pooling) are left out,
  so the result is the receptive field of the convolutional path. In seconds it spans
  ``(r - 1) * hop + win_length`` samples. Transformers attend to the whole input: None.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["count_macs", "count_parameters", "receptive_field", "receptive_field_seconds"]


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: Any, seconds: float = 10.0) -> int:
    """Multiply-accumulates of ``model.backbone`` + ``model.head`` for ``seconds`` of audio.

    Args:
        model: an :class:`~audiozoo.AudioModel`.
        seconds: clip length.

    Returns:
        MACs (FLOPs / 2) for one clip.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        wave = torch.zeros(1, round(seconds * model.sample_rate), device=model.device)
        with torch.no_grad():
            spec = model.frontend(wave)
        # counting needs shapes only: backbone and head run with meta-device stand-ins of their
        # weights (no arithmetic: the same count, ~20x faster for the transformers; no copy of
        # the weights, which for dasheng_12b would be another 4.2 GiB)
        net = nn.Sequential(model.backbone, model.head)
        tensors = dict(net.named_parameters()) | dict(net.named_buffers())
        meta = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}
        counter = FlopCounterMode(display=False)
        # the math backend runs attention as matrix products the counter sees; the fused CPU
        # kernel (_scaled_dot_product_flash_attention_for_cpu) has no FLOP formula
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
            torch.func.functional_call(net, meta, (spec.to("meta"),))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def _time_params(module: nn.Module) -> tuple[int, int, int] | None:
    """(kernel, stride, dilation) along the last (time) axis, or None if not a local layer."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module.kernel_size[-1], module.stride[-1], module.dilation[-1]
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):

        def last(v: Any) -> int:
            return int(v[-1] if isinstance(v, (tuple, list)) else v)

        stride = module.stride if module.stride is not None else module.kernel_size
        dilation = getattr(module, "dilation", 1)
        return last(module.kernel_size), last(stride), last(dilation)
    return None


def _is_global(module: nn.Module) -> bool:
    name = type(module).__name__.lower()
    return isinstance(module, nn.MultiheadAttention) or "attention" in name or "transformer" in name


def receptive_field(backbone: nn.Module) -> int | None:
    """Receptive field along time in input (spectrogram) frames; None for backbones with
    attention (their receptive field is the whole input)."""
    if any(_is_global(m) for m in backbone.modules()):
        return None
    field, jump = 1, 1
    found = False
    for module in backbone.modules():
        params = _time_params(module)
        if params is None:
            continue
        kernel, stride, dilation = params
        found = True
        field += (kernel - 1) * dilation * jump
        jump *= stride
    return field if found else None


def receptive_field_seconds(frames: int, frontend: Any) -> float:
    """Seconds of audio that ``frames`` consecutive spectrogram frames depend on."""
    hop = frontend.hop_length
    win = getattr(frontend, "win_length", None) or getattr(frontend, "n_fft", None) or hop
    return ((frames - 1) * hop + win) / frontend.sample_rate
