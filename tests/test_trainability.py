"""Every backbone family with every head can overfit two examples (the "sanity check").

A small configuration of each family (same code paths as the released sizes) is trained on two
clips for a fixed number of Adam steps; every parameter must receive a gradient and the training
loss must fall below a threshold. Clip heads learn two labels (cross-entropy), frame heads frame
targets that differ between the clips and over time (binary cross-entropy), and the identity
head (embeddings, no parameters of its own) trains the backbone through a fixed random
projection of the embeddings.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiozoo.data import SyntheticAudio

from .test_finetune import small_model

HEADS = ["linear", "mlp", "conv", "attention", "frame", "rnn", "identity"]
FAMILIES = ["cnn", "mn", "passt", "ast"]
STEPS = 40
# The conv head ends in BatchNorm over the logits: with two clips their spread is bounded by the
# BatchNorm scale (initially 1), so cross-entropy stays near 0.3 until that scale has grown.
# Frame heads of the small transformers must learn *when* from positional embeddings that start
# tiny (std 0.02): their loss falls steadily but more slowly.
THRESHOLD = {"conv": 0.45, "frame": 0.2, "rnn": 0.2}
# transformers: no patchout, so frame heads see every frame of the targets
EXTRA = {"passt": {"s_patchout_t": 0, "s_patchout_f": 0}}


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread is faster than several, and much faster when other
    processes compete for the cores (idle OpenMP threads spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_overfits_two_examples(family: str, head: str) -> None:
    torch.manual_seed(0)
    model = small_model(family, head=head, **EXTRA.get(family, {}))
    ds = SyntheticAudio(
        2, sample_rate=model.sample_rate, duration=1.0, seed=0, classes=["tone", "chirp_up"]
    )
    wave = torch.stack([ds[0][0], ds[1][0]])
    g = torch.Generator().manual_seed(1)

    model.train()
    with torch.no_grad():
        out = model(wave)
    if head in ("frame", "rnn"):
        assert out.ndim == 3 and out.shape[2] == 3
        first_half = (torch.arange(out.shape[1]) < out.shape[1] / 2).float()
        target = torch.zeros(out.shape)
        target[0, :, 0], target[1, :, 0] = first_half, 1 - first_half  # class 0: when
        target[0, :, 1], target[1, :, 1] = 1 - first_half, first_half
        target[0, :, 2] = 1.0  # class 2: which clip

        def loss_fn(y: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(y, target)
    else:
        labels = torch.tensor([0, 1])
        proj = torch.randn(out.shape[1], 3, generator=g) if head == "identity" else None

        def loss_fn(y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(y if proj is None else y @ proj, labels)

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(STEPS):
        loss = loss_fn(model(wave))
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            no_grad = [
                n
                for n, p in model.named_parameters()
                if p.grad is None or not p.grad.abs().sum() > 0
            ]
            assert not no_grad, f"parameters without gradient: {no_grad}"
        optimizer.step()
        losses.append(loss.item())
    threshold = THRESHOLD.get(head, 0.1)
    assert losses[-1] < threshold, (
        f"loss went {losses[0]:.3f} -> {losses[-1]:.3f} in {STEPS} steps (threshold {threshold})"
    )
