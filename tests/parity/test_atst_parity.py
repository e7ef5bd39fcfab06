"""ATST-Frame vs audiossl's ``FrameAST`` and PretrainedSED's ``models/atstframe/``, full size.

Neither upstream is pip-installable, so their outputs are committed fixtures
(``tests/fixtures/atst/``, see its README): identical random weights, generated here by
:func:`seeded_upstream_state_dict` (PretrainedSED key format) and read through audiozoo's
converters; the fixture stores only the inputs and what the upstream code computed. The frontend
is compared live against torchaudio (the parity environment has it): the ATST frontend of both
upstreams is four torchaudio/torch calls.

Tolerances: frontend in dB <= 1e-3 absolute; frames, clip embeddings and logits <= 1e-3 relative
to the largest value (``max|ours - ref| / max|ref|``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo._registry import converters
from audiozoo.backbones.atst import DB_MAX, DB_MIN, FRONTEND
from audiozoo.frontends import MelSpectrogram
from tests.parity_report import record_parity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "atst"
RTOL = 1e-3
DB_ATOL = 1e-3
DEPTH, WIDTH, CLASSES = 12, 768, 447


def seeded_upstream_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Full-size random ATST-Frame weights in PretrainedSED's file format (``ATST-F_*.pt``).

    Keys in this fixed order, values drawn one after another from ``torch.Generator(seed)``:
    ``model.atst.{mask_embed, pos_embed (1, 251, 768), patch_embed.patch_embed.{weight, bias},
    blocks.{0..11}.{norm1, attn.qkv (no bias), attn.proj, norm2, mlp.fc1, mlp.fc2}.*,
    norm_frame.*}``, ``strong_head.*``, ``weak_head.*`` (447 classes). LayerNorm weights are
    1 + 0.1 N(0, 1), biases 0.1 N(0, 1), matrices N(0, 1) / sqrt(fan_in), embeddings 0.5 N(0, 1):
    trained-model-like spread, so a wrong position, patch order or norm shows far above float
    tolerance. The README records the checksum (:func:`checksum`).
    """
    d = WIDTH
    shapes: dict[str, tuple[int, ...]] = {
        "model.atst.mask_embed": (1, 1, d),
        "model.atst.pos_embed": (1, 251, d),
        "model.atst.patch_embed.patch_embed.weight": (d, 64 * 4),
        "model.atst.patch_embed.patch_embed.bias": (d,),
    }
    for i in range(DEPTH):
        b = f"model.atst.blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (d,),
                b + "norm1.bias": (d,),
                b + "attn.qkv.weight": (3 * d, d),
                b + "attn.proj.weight": (d, d),
                b + "attn.proj.bias": (d,),
                b + "norm2.weight": (d,),
                b + "norm2.bias": (d,),
                b + "mlp.fc1.weight": (4 * d, d),
                b + "mlp.fc1.bias": (4 * d,),
                b + "mlp.fc2.weight": (d, 4 * d),
                b + "mlp.fc2.bias": (d,),
            }
        )
    shapes.update(
        {
            "model.atst.norm_frame.weight": (d,),
            "model.atst.norm_frame.bias": (d,),
            "strong_head.weight": (CLASSES, d),
            "strong_head.bias": (CLASSES,),
            "weak_head.weight": (CLASSES, d),
            "weak_head.bias": (CLASSES,),
        }
    )
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        r = torch.randn(shape, generator=g)
        norm = "norm" in key.rsplit(".", 2)[-2]
        if norm and key.endswith("weight"):
            out[key] = 1.0 + 0.1 * r
        elif key.endswith("bias"):
            out[key] = 0.1 * r
        elif "embed" in key and "patch_embed" not in key:
            out[key] = 0.5 * r
        else:
            out[key] = r / math.sqrt(shape[-1])
    return out


def checksum(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over the float32 bytes of every tensor in key order."""
    h = hashlib.sha256()
    for key, value in sd.items():
        h.update(key.encode())
        h.update(value.to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


# --------------------------------------------------------------------------- frontend


torchaudio = pytest.importorskip("torchaudio", reason="parity tests need torchaudio")


def upstream_db(wave: torch.Tensor) -> torch.Tensor:
    """audiossl's / PretrainedSED's ATST frontend up to the clamp, in dB: torchaudio
    MelSpectrogram -> AmplitudeToDB(power, top_db=80) -> clamp(-50, 80). (B, 64, T)."""
    mel = torchaudio.transforms.MelSpectrogram(
        16000, f_min=60, f_max=7800, hop_length=160, win_length=1024, n_fft=1024, n_mels=64
    )(wave)
    return torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80)(mel).clamp(-50, 80)


def minmax(db: torch.Tensor) -> torch.Tensor:
    return (db - DB_MIN) / (DB_MAX - DB_MIN) * 2.0 - 1.0  # audiossl's MinMax


def ours_db() -> MelSpectrogram:
    kwargs = {k: v for k, v in FRONTEND.items() if k not in ("name", "mean", "std")}
    return MelSpectrogram(**kwargs).eval()


def _clips(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    noise = torch.rand(2, n, generator=g) * 2 - 1
    return noise * torch.tensor([[1.0], [0.03]])  # a loud and a quiet clip


@pytest.mark.parametrize("seconds", [10, 3.3, 23])
def test_frontend_where_the_floor_does_not_bind(seconds: float) -> None:
    x = _clips(int(seconds * 16000))
    ref = upstream_db(x)
    assert (ref.amax(dim=(1, 2)) - ref.amin(dim=(1, 2)) < 80).all()  # floor does not bind
    ours = ours_db()(x)[:, 0]
    diff = (ours - ref).abs().max().item()
    record_parity(
        "ATST-Frame frontend vs torchaudio (dB, floor not binding)",
        f"{seconds} s",
        {"dB abs": diff},
    )
    assert diff <= DB_ATOL
    full = audiozoo.frontends.MelSpectrogram(**{k: v for k, v in FRONTEND.items() if k != "name"})
    assert (full.eval()(x)[:, 0] - minmax(ref)).abs().max() <= DB_ATOL / (DB_MAX - DB_MIN) * 2


@pytest.mark.parametrize("seconds", [10, 23])
def test_frontend_one_clip_where_floor_and_clamp_bind(seconds: float) -> None:
    n = int(seconds * 16000)
    x = _clips(n)[:1].clone()
    x[:, n // 3 : n // 2] = 0.0  # digital silence: -100 dB, floored at max - 80
    x[:, : n // 10] *= 1e3  # very loud start: above 80 dB, clamped
    ref = upstream_db(x)
    assert (ref == 80).any() and (ref > -100).all()  # clamped above, floored below
    assert (ours_db()(x)[:, 0] - ref).abs().max() <= DB_ATOL


def test_frontend_floors_each_clip_not_the_batch() -> None:
    """torchaudio's AmplitudeToDB floors (B, F, T) at the batch maximum - 80 dB, so a quiet clip
    depends on its batch mates; audiozoo floors each clip (documented difference)."""
    n = 16000 * 4
    x = _clips(n)
    x[1, n // 2 :] = 0.0  # the quiet clip: its silence sits more than 80 dB below the loud clip
    ours = ours_db()(x)[:, 0]
    batched = upstream_db(x)
    alone = torch.cat([upstream_db(x[i : i + 1]) for i in range(2)])
    assert (ours - alone).abs().max() <= DB_ATOL  # per clip == torchaudio one clip at a time
    assert (ours - batched).abs().max() > 1.0  # torchaudio's batch floor differs


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fixture() -> dict[str, torch.Tensor]:
    meta = json.loads((FIXTURES / "meta.json").read_text())
    sd = seeded_upstream_state_dict(meta["seed"])
    got = checksum(sd)
    assert got == meta["weights_sha256"], (
        "the seeded weights differ from those the fixture was made with (torch RNG drift?): "
        f"{got} != {meta['weights_sha256']}"
    )
    with np.load(FIXTURES / "atst_frame.npz") as data:
        arrays = {k: torch.from_numpy(data[k]) for k in data.files}
    arrays["state_dict"] = sd  # type: ignore[assignment]
    return arrays


@pytest.fixture(scope="module")
def audiossl_encoder(fixture):
    """The encoder with audiossl's own frontend (no clamp to [-50, 80] dB)."""
    model = audiozoo.create(
        "atst_frame",
        pretrained=False,
        head="identity",
        frontend={"clamp_min": None, "clamp_max": None},
    )
    sd = converters.get("atst_frame")(fixture["state_dict"])
    model.load_state_dict({**model.state_dict(), **sd}, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def as_strong(fixture):
    """``atst_frame.as_strong`` (PretrainedSED's frontend and SED head) on the seeded weights."""
    model = audiozoo.create("atst_frame.as_strong", pretrained=False)
    sd = converters.get("atst_frame_sed")(fixture["state_dict"])
    model.load_state_dict({**model.state_dict(), **sd}, strict=True)
    return model.eval()


CASES = ["10s", "3s", "23s"]  # batch 2 x 10 s, 1 x 3.3 s, 1 x 23 s


def wave(fixture, case: str) -> torch.Tensor:
    return fixture[f"wave_{case}"].to(torch.float32)  # stored as float16: exact inputs


@pytest.mark.parametrize("case", CASES)
def test_frames_vs_audiossl(fixture, audiossl_encoder, case: str) -> None:
    with torch.no_grad():
        frames = audiossl_encoder.embed(wave(fixture, case), frames=True)
        clip = audiossl_encoder.embed(wave(fixture, case))
    report = {
        "embed(frames) rel": rel(frames, fixture[f"audiossl_frames_{case}"]),
        "embed rel": rel(clip, fixture[f"audiossl_scene_{case}"]),
    }
    record_parity("atst_frame vs audiossl FrameAST", case, report)
    assert all(v <= RTOL for v in report.values()), report


@pytest.mark.parametrize("case", CASES)
def test_as_strong_vs_pretrainedsed(fixture, as_strong, case: str) -> None:
    """Strong and weak logits against PretrainedSED's inference.py way of running a file."""
    with torch.no_grad():
        strong, weak = as_strong.frame_and_clip_logits(wave(fixture, case))
    ref = fixture[f"pretrainedsed_strong_{case}"].transpose(1, 2)  # (B, T', 447)
    assert strong.shape == ref.shape
    report = {
        "strong rel": rel(strong, ref),
        "weak rel": rel(weak, fixture[f"pretrainedsed_weak_{case}"]),
    }
    record_parity("atst_frame.as_strong vs PretrainedSED inference.py", case, report)
    assert all(v <= RTOL for v in report.values()), report


def test_done_means(fixture, audiossl_encoder, as_strong) -> None:
    frames = audiossl_encoder.embed(wave(fixture, "10s"), frames=True)
    assert frames.shape == (2, 250, 768) and audiossl_encoder.frame_hop == pytest.approx(0.04)
    assert as_strong(wave(fixture, "10s")).shape == (2, 250, 447)
    assert as_strong.frame_hop == pytest.approx(0.04)
