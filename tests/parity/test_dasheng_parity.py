"""Dasheng vs the pip ``dasheng`` package: identical random weights, saved in the package's
checkpoint format (``{"model": state dict, "config": ...}``) and read through audiozoo's
``audio_transformer`` converter. Mel spectrograms must agree to 1e-3 dB, frame and clip
embeddings and logits to 1e-3 relative to the largest value, at 10 s, 3.3 s and 25 s (25 s
exercises the 252-step chunks: 252 + 252 + 121 frames).

The weights and waveforms follow the seeded scheme of ``tests/_ced_fixtures.py``.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import pytest
import torch

pytest.importorskip("torchaudio", reason="torchaudio (parity extra) is not installed")
pytest.importorskip("dasheng", reason="dasheng (parity extra) is not installed")

from dasheng.pretrained.pretrained import Dasheng

import audiozoo
from tests._ced_fixtures import CASES, seeded_tensor, waveforms
from tests.parity_report import record_parity

RTOL = 1e-3
MEL_ATOL = 1e-3  # dB


def quiet(fn, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def seeded(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Load the seeded weights into an upstream module (its torchaudio buffers stay)."""
    sd = module.state_dict()
    new = {
        k: v if k.startswith("front_end.") else seeded_tensor(k, list(v.shape), str(v.dtype)[6:])
        for k, v in sd.items()
    }
    module.load_state_dict(new)
    return new


def upstream_and_ours(tmp_path, arch: str, *, embed_dim: int, depth: int, num_heads: int):
    up = quiet(Dasheng, embed_dim=embed_dim, depth=depth, num_heads=num_heads).eval()
    sd = seeded(up)
    path = tmp_path / f"{arch}.pt"
    config = {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}
    torch.save({"model": sd, "config": config}, path)  # the package's checkpoint format
    ours = audiozoo.create(arch, pretrained=str(path), depth=depth).eval()
    return up, ours


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    tmp = tmp_path_factory.mktemp("dasheng")
    return upstream_and_ours(tmp, "dasheng_base", embed_dim=768, depth=12, num_heads=12)


@pytest.mark.parametrize("case", list(CASES))
def test_dasheng_base_matches_the_dasheng_package(base, case):
    up, ours = base
    wave = waveforms(case)
    with torch.no_grad():
        mel_up = quiet(up.front_end, wave)  # (B, 64, T) dB, torchaudio
        frames_up = quiet(up, wave)  # (B, T', D), chunks of 252 time steps concatenated
        mel = ours.frontend(wave)[:, 0]
        frames = ours.embed(wave, frames=True)
        clip = ours.embed(wave)
        out = ours(wave)  # identity head: the clip embedding
    mel_diff = (mel - mel_up).abs().max().item()
    report = (case, mel_diff, rel(frames, frames_up), rel(clip, frames_up.mean(1)))
    record_parity(
        "dasheng_base vs the dasheng package",
        case,
        {"mel abs dB": report[1], "embed(frames) rel": report[2], "embed rel": report[3]},
    )
    assert frames.shape == frames_up.shape, (frames.shape, frames_up.shape)
    assert mel_diff <= MEL_ATOL, report
    assert report[2] <= RTOL and report[3] <= RTOL, report
    assert torch.equal(out, clip)
    assert rel(frames_up[0], frames_up[1]) > 10 * RTOL  # the weights are informative
    assert ours.frame_hop == pytest.approx(0.04)


def test_done_means_shape(base):
    _, ours = base
    wave = torch.randn(1, 16000 * 25, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert ours.embed(wave, frames=True).shape == (1, 625, 768)


@pytest.mark.parametrize("case", ["3.3s", "25s"])
def test_dasheng_base_audioset_matches_the_readme_classifier(tmp_path, base, case):
    """``dasheng_base.as``: the dasheng README's ``DashengAudiosetClassifier`` is
    ``sigmoid(Linear(LayerNorm(dasheng(x).mean(1))))``; its checkpoint is a plain state dict
    of the encoder plus ``outputlayer.{0,1}``."""
    up, _ = base
    head = torch.nn.Sequential(torch.nn.LayerNorm(768), torch.nn.Linear(768, 527))
    head_sd = {f"outputlayer.{k}": seeded_tensor(f"outputlayer.{k}", list(v.shape), "float32")
               for k, v in head.state_dict().items()}  # fmt: skip
    head.load_state_dict({k[len("outputlayer.") :]: v for k, v in head_sd.items()})
    path = tmp_path / "dasheng_as.pt"
    torch.save({**up.state_dict(), **head_sd}, path)
    ours = audiozoo.create("dasheng_base.as", pretrained=str(path)).eval()
    wave = waveforms(case)
    with torch.no_grad():
        probs_up = torch.sigmoid(head(quiet(up, wave).mean(1)))
        logits = ours(wave)
    report = (case, rel(torch.sigmoid(logits), probs_up))
    record_parity("dasheng_base.as vs dasheng + README classifier", case, {"probs rel": report[1]})
    assert logits.shape == (2, 527) and report[1] <= RTOL, report


@pytest.mark.parametrize(
    ("arch", "width", "heads"), [("dasheng_06b", 1280, 16), ("dasheng_12b", 1536, 24)]
)
def test_dasheng_large_widths_and_heads(tmp_path, arch, width, heads):
    """The 0.6 B and 1.2 B configurations at full width and head count, two blocks deep (the
    full models are 32 and 40 such blocks; their size is checked without running upstream)."""
    up, ours = upstream_and_ours(tmp_path, arch, embed_dim=width, depth=2, num_heads=heads)
    wave = waveforms("3.3s")
    with torch.no_grad():
        report = (arch, rel(ours.embed(wave, frames=True), quiet(up, wave)))
    record_parity(
        f"{arch} (2 blocks, full width) vs dasheng", "3.3s", {"embed(frames) rel": report[1]}
    )
    assert report[1] <= RTOL, report


def test_top_db_floor_is_per_clip(base):
    """torchaudio's ``AmplitudeToDB(top_db=120)`` floors a (B, F, T) batch 120 dB below the
    *batch* maximum; audiozoo floors each clip below its own maximum, i.e. gives what
    torchaudio gives for each clip alone. A loud and a very quiet clip make the two differ."""
    up, ours = base
    g = torch.Generator().manual_seed(5)
    wave = torch.randn(2, 16000 * 2, generator=g) * torch.tensor([[1.0], [1e-6]])
    with torch.no_grad():
        batch_up = quiet(up.front_end, wave)
        alone_up = torch.cat([quiet(up.front_end, w[None]) for w in wave])
        mel = ours.frontend(wave)[:, 0]
    assert (batch_up - alone_up).abs().max() > 1.0  # the batch floor binds for the quiet clip
    assert (mel - alone_up).abs().max() <= MEL_ATOL
