"""Batched training-time augmentations for waveforms and spectrograms.

Every function works on a batch (batch axis first) on any device, takes an optional
``torch.Generator`` for reproducible draws, applies itself to each example independently with
probability ``p``, and returns its input unchanged (the same tensor, no random numbers drawn) when
``p == 0``.

Random numbers are drawn on the generator's device (a seeded CPU generator therefore also drives
CUDA inputs) or, without a generator, on the input's device from torch's global generator, and
then moved to the input's device.

Example, one training step with mixup and SpecAugment-style masks on spectrograms::

    from audiozoo import augment

    g = torch.Generator().manual_seed(0)
    spec = model.frontend(wave)                                 # (B, 1, F, T)
    spec = augment.freq_mask(spec, 48, generator=g)
    spec = augment.time_mask(spec, 192, generator=g)
    spec, target = augment.mixup(spec, labels, num_classes=10, alpha=0.3, generator=g)
    logits = model.head(model.backbone(spec))
    loss = torch.nn.functional.cross_entropy(logits, target)   # soft targets

The frontends have their own train-time augmentation (filterbank edge jitter, frequency and
time masks), switched on from :func:`audiozoo.create`::

    model = audiozoo.create("mn10", head="linear", num_classes=10,
                            frontend={"augment": True, "freqm": 48, "timem": 192})
    model.frontend.generator = torch.Generator().manual_seed(0)  # reproducible draws

It only runs in ``model.train()`` mode.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "apply_mixup",
    "freq_mask",
    "mixup",
    "mixup_weights",
    "random_gain",
    "time_mask",
    "time_roll",
]


def _draw_device(generator: torch.Generator | None, x: torch.Tensor) -> torch.device:
    return generator.device if generator is not None else x.device


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the probability p must be in [0, 1], got {p}")


def _apply_mask(
    batch: int, p: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(B,) bool on ``device``: which examples an augmentation applies to (all when ``p == 1``)."""
    if p >= 1.0:
        return torch.ones(batch, dtype=torch.bool, device=device)
    draw = generator.device if generator is not None else device
    u = torch.rand(batch, generator=generator, device=draw)
    return (u < p).to(device)


def _per_example(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1), broadcastable against ``x``."""
    return values.reshape(-1, *([1] * (x.ndim - 1)))


# ---------------------------------------------------------------------------------------------
# Mixup


def mixup_weights(
    batch_size: int,
    *,
    alpha: float = 0.3,
    p: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw mixup weights and partners for a batch (as EfficientAT and PaSST do).

    Example ``i`` is mixed as ``lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]`` with
    ``lam ~ Beta(alpha, alpha)`` folded to ``max(lam, 1 - lam)``, so every mixed example keeps
    its own label as the larger part. Examples not selected (probability ``1 - p``) get
    ``lam = 1``: they stay as they are.

    The Beta draw uses NumPy, seeded by one integer drawn from ``generator``, because torch's
    Beta/Gamma sampling does not accept a generator.

    Args:
        batch_size: ``B``.
        alpha: Beta distribution parameter (> 0); small values mix little.
        p: probability that an example is mixed.
        generator: source of randomness (None: torch's global generator).
        device: device of the returned tensors (default: the generator's, else CPU); without a
            generator the draws happen there too.

    Returns:
        ``lam`` (B,) float32 in [0.5, 1] and ``perm`` (B,) int64, a permutation of the batch.
    """
    _check_p(p)
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    out = (
        torch.device(device)
        if device is not None
        else (generator.device if generator is not None else torch.device("cpu"))
    )
    draw = generator.device if generator is not None else out
    perm = torch.randperm(batch_size, generator=generator, device=draw).to(out)
    seed = int(torch.randint(2**62, (1,), generator=generator, device=draw))
    lam_np = np.random.default_rng(seed).beta(alpha, alpha, batch_size).astype(np.float32)
    lam = torch.from_numpy(np.maximum(lam_np, 1.0 - lam_np)).to(out)
    if p < 1.0:
        selected = _apply_mask(batch_size, p, generator, out)
        lam = torch.where(selected, lam, torch.ones_like(lam))
    return lam, perm


def apply_mixup(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``lam * x + (1 - lam) * x[perm]`` per example; any shape with the batch axis first.

    Use it for inputs and for float targets alike (clip targets (B, K), frame targets
    (B, T', K)); for class-index targets mix the losses instead:
    ``lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])`` (per example, then mean).

    Args:
        x: (B, ...) float tensor.
        lam: (B,) weights of the examples themselves.
        perm: (B,) index of each example's partner.

    Returns:
        (B, ...) mixed tensor, dtype of ``x``.
    """
    w = _per_example(lam.to(device=x.device, dtype=x.dtype), x)
    return x * w + x[perm.to(x.device)] * (1 - w)


def mixup(
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = 0.3,
    p: float = 1.0,
    num_classes: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch of inputs and their targets (waveforms, spectrograms or features).

    Args:
        x: (B, ...) inputs: waveforms (B, N), spectrograms (B, 1, F, T), ...
        targets: float targets (B, K) (multi-label or soft), (B, T', K) frame targets, or
            class indices (B,) int64, which are turned into one-hot (B, ``num_classes``) first.
        alpha: Beta distribution parameter (see :func:`mixup_weights`).
        p: probability that an example is mixed.
        num_classes: number of classes; required with class-index targets.
        generator: source of randomness.

    Returns:
        ``(mixed_x, mixed_targets)``; targets are float (one-hot for class indices, also at
        ``p == 0``), usable with ``cross_entropy`` (probabilities) or
        ``binary_cross_entropy_with_logits``. At ``p == 0`` ``x`` itself is returned.
        To get the weights and partners instead, use :func:`mixup_weights` and
        :func:`apply_mixup`.
    """
    _check_p(p)
    if targets.shape[0] != x.shape[0]:
        raise ValueError(
            f"inputs and targets need the same batch size, got {x.shape[0]} and {targets.shape[0]}"
        )
    if not targets.is_floating_point():
        if targets.ndim != 1:
            raise ValueError(
                f"integer targets must be class indices of shape (B,), got {tuple(targets.shape)}; "
                "pass multi-label targets as float"
            )
        if num_classes is None:
            raise ValueError("class-index targets need num_classes= to become one-hot vectors")
        targets = torch.nn.functional.one_hot(targets, num_classes).to(torch.float32)
    if p == 0.0:
        return x, targets
    lam, perm = mixup_weights(x.shape[0], alpha=alpha, p=p, generator=generator, device=x.device)
    return apply_mixup(x, lam, perm), apply_mixup(targets, lam, perm)


# ---------------------------------------------------------------------------------------------
# Time shifts and gain


def time_roll(
    x: torch.Tensor,
    max_shift: int | None = None,
    *,
    p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Circularly shift each example along its last axis (time) by a random amount.

    Args:
        x: (B, ..., N) waveforms (B, N) or spectrograms (B, 1, F, T).
        max_shift: shifts are uniform in ``[-max_shift, max_shift]``; None means any shift
            (``[0, N)``).
        p: probability that an example is shifted.
        generator: source of randomness.

    Returns:
        Tensor like ``x``; ``out[b, ..., t] = x[b, ..., (t - shift[b]) mod N]``.
    """
    _check_p(p)
    if p == 0.0:
        return x
    batch, n = x.shape[0], x.shape[-1]
    draw = _draw_device(generator, x)
    if max_shift is None:
        shift = torch.randint(n, (batch,), generator=generator, device=draw)
    else:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        shift = torch.randint(-max_shift, max_shift + 1, (batch,), generator=generator, device=draw)
    shift = shift.to(x.device)
    if p < 1.0:
        shift = shift * _apply_mask(batch, p, generator, x.device)
    src = (torch.arange(n, device=x.device) - shift[:, None]) % n  # (B, N)
    src = src.reshape(batch, *([1] * (x.ndim - 2)), n).expand_as(x)
    return torch.gather(x, -1, src)


def random_gain(
    x: torch.Tensor,
    min_db: float = -6.0,
    max_db: float = 6.0,
    *,
    p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scale each waveform by a gain drawn uniformly in decibels from ``[min_db, max_db]``.

    Args:
        x: (B, ...) waveforms.
        min_db: lower end of the gain range in dB (amplitude factor ``10 ** (dB / 20)``).
        max_db: upper end of the gain range in dB.
        p: probability that an example is scaled.
        generator: source of randomness.

    Returns:
        Tensor like ``x``.
    """
    _check_p(p)
    if min_db > max_db:
        raise ValueError(f"min_db ({min_db}) must not exceed max_db ({max_db})")
    if p == 0.0:
        return x
    batch = x.shape[0]
    u = torch.rand(batch, generator=generator, device=_draw_device(generator, x)).to(x.device)
    db = min_db + (max_db - min_db) * u
    if p < 1.0:
        db = db * _apply_mask(batch, p, generator, x.device)
    gain = torch.pow(10.0, db / 20.0).to(x.dtype)
    return x * _per_example(gain, x)


# ---------------------------------------------------------------------------------------------
# SpecAugment masks


def _mask(
    x: torch.Tensor,
    max_width: int,
    axis: int,
    num_masks: int,
    p: float,
    generator: torch.Generator | None,
    value: float,
) -> torch.Tensor:
    _check_p(p)
    if max_width < 0 or num_masks < 0:
        raise ValueError(f"max_width and num_masks must be >= 0, got {max_width}, {num_masks}")
    if x.ndim < 3:
        raise ValueError(
            f"masks need spectrograms (B, F, T) or (B, 1, F, T), got shape {tuple(x.shape)}"
        )
    if p == 0.0 or max_width == 0 or num_masks == 0:
        return x
    batch, size = x.shape[0], x.shape[axis]
    draw = _draw_device(generator, x)
    width_cap = min(max_width, size)
    band = torch.zeros(batch, size, dtype=torch.bool, device=x.device)
    idx = torch.arange(size, device=x.device)
    for _ in range(num_masks):
        # torchaudio's iid sampling: width = floor(u1 * W), start = floor(u2 * (size - u1 * W)).
        u = torch.rand(2, batch, generator=generator, device=draw).to(x.device)
        width = u[0] * width_cap
        start = (u[1] * (size - width)).long()
        end = start + width.long()
        band |= (idx >= start[:, None]) & (idx < end[:, None])
    if p < 1.0:
        band &= _apply_mask(batch, p, generator, x.device)[:, None]
    # (B, size) -> broadcast over every other axis of x
    shape = [batch] + [1] * (x.ndim - 1)
    shape[axis] = size
    return x.masked_fill(band.reshape(shape), value)


def freq_mask(
    spec: torch.Tensor,
    max_width: int,
    *,
    num_masks: int = 1,
    p: float = 1.0,
    generator: torch.Generator | None = None,
    value: float = 0.0,
) -> torch.Tensor:
    """Mask random frequency bands (SpecAugment), independently per example.

    Each of ``num_masks`` bands has a width ``floor(u * max_width)`` (0 to ``max_width - 1``
    bins, as ``torchaudio.transforms.FrequencyMasking(max_width, iid_masks=True)``) at a uniform
    start inside the spectrogram.

    Args:
        spec: (B, 1, F, T) or (B, F, T); frequency is axis -2.
        max_width: maximum band width (exclusive); 0 disables masking.
        num_masks: bands per example (they may overlap).
        p: probability that an example is masked.
        generator: source of randomness.
        value: value written into the bands.

    Returns:
        Masked copy of ``spec`` (or ``spec`` itself when nothing can be masked).
    """
    return _mask(spec, max_width, spec.ndim - 2, num_masks, p, generator, value)


def time_mask(
    spec: torch.Tensor,
    max_width: int,
    *,
    num_masks: int = 1,
    p: float = 1.0,
    generator: torch.Generator | None = None,
    value: float = 0.0,
) -> torch.Tensor:
    """Mask random time bands (SpecAugment), independently per example.

    Same sampling as :func:`freq_mask`, along time (axis -1).

    Args:
        spec: (B, 1, F, T) or (B, F, T).
        max_width: maximum band width in frames (exclusive); 0 disables masking.
        num_masks: bands per example.
        p: probability that an example is masked.
        generator: source of randomness.
        value: value written into the bands.

    Returns:
        Masked copy of ``spec``.
    """
    return _mask(spec, max_width, spec.ndim - 1, num_masks, p, generator, value)
