"""The Concepts page figure: one clip through two checkpoints' frontends.

The clip is synthetic (a rising chirp, a few clicks and a little noise) so the figure needs no
data files. It goes through EfficientAT's ``stft_mel`` frontend (32 kHz, what ``mn10.as`` was
trained with) and AST's ``kaldi_fbank`` frontend (16 kHz, normalised, padded to 1024 frames),
built from the tags' own configurations.

The docs build renders it (``docs/hooks/figures.py``); to write the PNG yourself::

    python docs/scripts/frontend_figure.py frontends.png
"""

from __future__ import annotations

import io
import math
import sys

import torch

import audiozoo

SECONDS = 4.0
TAGS = ("mn10.as", "ast.as")


def clip(sample_rate: int, seconds: float = SECONDS) -> torch.Tensor:
    """(1, N) test signal: chirp 200 Hz → 6 kHz, clicks every 0.5 s, noise at -40 dB."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    f0, f1 = 200.0, 6000.0
    # exponential chirp: phase = 2π f0 T/ln(f1/f0) (exp(t ln(f1/f0)/T) - 1)
    k = math.log(f1 / f0) / seconds
    wave = 0.5 * torch.sin(2 * math.pi * f0 * (torch.exp(k * t) - 1) / k)
    clicks = (t * 2 % 1.0) < (2.0 / sample_rate)
    wave = wave + clicks.double() * 0.8
    gen = torch.Generator().manual_seed(0)
    wave = wave + 0.01 * torch.randn(t.shape, generator=gen, dtype=torch.float64)
    return wave.float().unsqueeze(0)


def spectrograms() -> list[tuple[str, torch.Tensor, float]]:
    """(title, (F, T) spectrogram, frames per second) for each tag in :data:`TAGS`."""
    out = []
    for name in TAGS:
        cfg = audiozoo.get_pretrained_cfg(name)
        frontend = audiozoo.build_frontend(cfg.frontend).eval()
        with torch.no_grad():
            spec = frontend(clip(frontend.sample_rate))[0, 0]
        fps = frontend.sample_rate / frontend.hop_length
        title = (
            f"{name}: {cfg.frontend['name']}, {frontend.sample_rate // 1000} kHz, "
            f"{frontend.n_mels} mels, {fps:g} frames/s"
        )
        out.append((title, spec, fps))
    return out


def render() -> bytes:
    """The figure as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = spectrograms()
    fig, axes = plt.subplots(len(specs), 1, figsize=(9, 3.0 * len(specs)), layout="constrained")
    for ax, (title, spec, fps) in zip(axes, specs, strict=True):
        frames = spec.shape[1]
        image = ax.imshow(
            spec.numpy(),
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0.0, frames / fps, 0, spec.shape[0]),
        )
        ax.axvline(SECONDS, color="white", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time (s); dashed: end of the clip, the rest is the frontend's padding")
        ax.set_ylabel("mel bin")
        fig.colorbar(image, ax=ax, label="value fed to the backbone")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "frontends.png"
    with open(path, "wb") as f:
        f.write(render())
