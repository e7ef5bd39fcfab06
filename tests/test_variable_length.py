"""Variable-length batches: every family, a batch with ``lengths=`` (or a list of clips) gives
what each clip gives alone.

The reference is the model itself called on one clip at a time (the path every other test
checks against upstream); the batch must equal it within float tolerance. One architecture of
every registered family runs (the first registered name of each ``family``, in its small
``test_kwargs`` configuration), so a new family is covered without an edit here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo import AudioTypeError, InvalidAudioError

SECONDS = (1.0, 3.3, 10.0)
RTOL = 1e-4  # max |batch - alone| / max |alone|


def _families() -> dict[str, str]:
    first: dict[str, str] = {}
    for arch in audiozoo.list_models():
        first.setdefault(audiozoo.get_architecture(arch).family, arch)
    return first


FAMILIES = _families()


def _model(arch: str, head: str = "linear") -> audiozoo.AudioModel:
    torch.manual_seed(0)
    kwargs = dict(audiozoo.get_architecture(arch).test_kwargs)
    return audiozoo.create(arch, pretrained=False, head=head, num_classes=3, **kwargs).eval()


def _clips(model: audiozoo.AudioModel, seconds=SECONDS, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(round(s * model.sample_rate), generator=g) for s in seconds]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batch_with_lengths_equals_each_clip_alone(family: str) -> None:
    arch = FAMILIES[family]
    model, frame_model = _model(arch), _model(arch, "frame")
    clips = _clips(model)
    n = max(c.shape[0] for c in clips)
    padded = torch.stack([torch.nn.functional.pad(c, (0, n - c.shape[0])) for c in clips])
    lengths = torch.tensor([c.shape[0] for c in clips])
    with torch.no_grad():
        logits = model(padded, lengths=lengths)
        emb = model.embed(clips)
        seq = model.embed(padded, lengths=lengths, frames=True)
        frames = frame_model(clips)
        for i, clip in enumerate(clips):
            assert rel(logits[i], model(clip)) < RTOL, (arch, i)
            assert rel(emb[i], model.embed(clip)) < RTOL, (arch, i)
            assert rel(seq[i], model.embed(clip, frames=True)) < RTOL, (arch, i)
            assert rel(frames[i], frame_model(clip)) < RTOL, (arch, i)
    assert isinstance(seq, list) and isinstance(frames, list)
    assert logits.shape == (3, 3) and emb.shape == (3, model.num_features)


@pytest.mark.parametrize("arch", ["passt_s", "mn01"])
def test_long_and_short_clips_in_one_batch(arch: str) -> None:
    """Windowed (long), padded (very short) and ordinary clips mixed, in any order."""
    model = _model(arch)
    clips = _clips(model, (23.7, 0.05, 1.0, 0.05), seed=2)
    with torch.no_grad():
        emb = model.embed(clips)
        seq = model.embed(clips, frames=True)
        for i, clip in enumerate(clips):
            assert rel(emb[i], model.embed(clip)) < RTOL
            assert rel(seq[i], model.embed(clip, frames=True)) < RTOL


def test_equal_lengths_are_the_ordinary_batch() -> None:
    model = _model("mn01")
    clips = _clips(model, (1.0, 1.0))
    with torch.no_grad():
        assert torch.equal(model(clips), model(torch.stack(clips)))
        assert torch.equal(model.embed(clips), model.embed(torch.stack(clips)))


def test_numpy_clips_stereo_items_and_sample_rate() -> None:
    model = _model("mn01")
    a = np.random.default_rng(0).standard_normal(44100).astype(np.float32) * 0.1
    stereo = np.stack([a[:30000], a[:30000] * 0.5])  # (channels, N): mixed to mono
    with torch.no_grad():
        out = model.embed([a, stereo], sample_rate=44100)
        alone = model.embed(torch.from_numpy(stereo).mean(0), sample_rate=44100)
    assert rel(out[1], alone) < RTOL


def test_bad_lengths_raise() -> None:
    model = _model("mn01")
    wave = torch.zeros(2, 1000)
    with pytest.raises(InvalidAudioError, match="one entry per clip"):
        model(wave, lengths=[1000])
    with pytest.raises(InvalidAudioError, match=r"lengths\[1\] = 1001"):
        model(wave, lengths=[10, 1001])
    with pytest.raises(InvalidAudioError, match=r"lengths\[0\] = 0"):
        model(wave, lengths=[0, 10])
    with pytest.raises(AudioTypeError, match="integers"):
        model(wave, lengths=[1.5, 10])
    with pytest.raises(InvalidAudioError, match=r"waveform\[1\]"):
        model([torch.zeros(100), torch.zeros(1, 2, 100)])
    with pytest.raises(InvalidAudioError, match=r"NaN.*"):
        model([torch.zeros(100), torch.full((50,), float("nan"))])


def test_masked_backbones_declare_it() -> None:
    """The transformers with a masked path say so; the masked path agrees with grouping."""
    model = _model("passt_s")
    assert model.backbone.supports_lengths
    spec = torch.randn(3, 1, 128, 300)
    lengths = torch.tensor([300, 57, 11])
    with torch.no_grad():
        feats = model.backbone.forward_lengths(spec, lengths)
        for i, t in enumerate(lengths.tolist()):
            alone = model.backbone(spec[i : i + 1, ..., :t])
            frames = model.backbone.num_output_frames(t)
            assert rel(feats.token[i], alone.token[0]) < RTOL
            assert rel(feats.grid[i, ..., :frames], alone.grid[0]) < RTOL


def test_training_through_a_variable_length_batch() -> None:
    model = _model("passt_s")
    model.train()
    clips = _clips(model, (0.5, 1.2))
    loss = model(clips).square().mean() + sum(
        f.square().mean() for f in model.embed(clips, frames=True)
    )
    loss.backward()
    assert model.backbone.cls_token.grad is not None and model.head.fc.weight.grad is not None
