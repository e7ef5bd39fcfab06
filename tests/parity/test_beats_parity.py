"""BEATs at full size against upstream implementations, on identical seeded weights.

- speechbrain's port (``speechbrain.lobes.models.beats.BEATs``, pip) loads a checkpoint in the
  unilm release format (``{"cfg", "model", "label_dict"}``, ``weight_g``/``weight_v``, the
  relative position table under every layer) that audiozoo reads through ``create(...,
  pretrained=path)``: frontend, token embeddings, clip and frame embeddings, and the fine-tuned
  predictor, at 10 s, 3.3 s and 23 s.
- PretrainedSED (fschmid56/PretrainedSED ``models/beats/`` + ``PredictionsWrapper``, not
  pip-installable): outputs stored in ``tests/fixtures/beats/`` (see its README), weights
  regenerated from ``tests/beats_weights.py``; the strong (SED) tag including upstream's pooling of
  the 496 time-major tokens to 250 frames and its 10 s chunking.

Tolerances: frontend <= 1e-4 absolute, logits and embeddings <= 1e-3 relative to the largest
reference value.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

import audiozoo
from audiozoo.labels import get_label_set
from tests.beats_weights import (
    UNILM_CFG,
    checksum,
    seeded_heads,
    seeded_state_dict,
    to_pretrainedsed,
)
from tests.parity_report import record_parity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "beats"
FRONTEND_ATOL = 1e-4
RTOL = 1e-3
LENGTHS = {"10s": 10.0, "3.3s": 3.3, "23s": 23.0}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def waves(seconds: float, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seconds * 10))
    n = round(16000 * seconds)
    t = torch.arange(n) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t) * (t % 1.0 < 0.5)
    return torch.stack([tone + 0.05 * torch.randn(n, generator=g) for _ in range(batch)])


@pytest.fixture(scope="module")
def speechbrain_pair(tmp_path_factory):
    """speechbrain's BEATs and audiozoo's ``beats.iter3`` loading one unilm-format file."""
    sbm = pytest.importorskip("speechbrain.lobes.models.beats", reason="needs speechbrain")
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    path = tmp_path_factory.mktemp("beats") / "BEATs_seeded.pt"
    torch.save({"cfg": UNILM_CFG, "model": seeded_state_dict(UNILM_CFG, seed=1)}, path)
    upstream = sbm.BEATs(ckp_path=str(path), freeze=True).eval()
    ours = audiozoo.create("beats.iter3", pretrained=str(path)).eval()
    return upstream, ours


@pytest.mark.parametrize("case", list(LENGTHS))
def test_beats_matches_speechbrain(speechbrain_pair, case):
    upstream, ours = speechbrain_pair
    wave = waves(LENGTHS[case])
    with torch.no_grad():
        fbank_up = upstream.preprocess(wave)  # (B, T, 128)
        (tokens_up,) = upstream.extract_features(wave, torch.ones(2))  # full lengths: no mask
        spec = ours.frontend(wave)
        feats = ours.backbone(spec)
        clip = ours.embed(wave)
        frames = ours.embed(wave, frames=True)
    b, n, d = tokens_up.shape
    t = n // 8
    frames_up = tokens_up.view(b, t, 8, d).mean(2)  # mean over the 8 frequency patches
    report = {
        "frontend abs": (spec[:, 0] - fbank_up.transpose(1, 2)).abs().max().item(),
        "tokens rel": rel(feats.grid.permute(0, 3, 2, 1).reshape(b, n, d), tokens_up),
        "embed rel": rel(clip, tokens_up.mean(1)),
        "embed(frames) rel": rel(frames, frames_up),
    }
    record_parity("beats.iter3 vs speechbrain BEATs", case, report)
    assert spec.shape[-1] == fbank_up.shape[1] and frames.shape == (2, t, 768)
    assert report["frontend abs"] <= FRONTEND_ATOL, report
    assert all(v <= RTOL for k, v in report.items() if k.endswith("rel")), report
    assert rel(tokens_up[0], tokens_up[1]) > 10 * RTOL  # informative weights
    assert ours.frame_hop == pytest.approx(0.16)


def test_beats_finetuned_matches_speechbrain(tmp_path):
    """A fine-tuned checkpoint (predictor + label_dict in unilm's own, non-canonical order)."""
    sbm = pytest.importorskip("speechbrain.lobes.models.beats", reason="needs speechbrain")
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    cfg = {**UNILM_CFG, "finetuned_model": True}
    mids = get_label_set("audioset").ids
    assert mids is not None
    perm = torch.randperm(527, generator=torch.Generator().manual_seed(2)).tolist()
    label_dict = {row: mids[perm[row]] for row in range(527)}
    path = tmp_path / "BEATs_finetuned_seeded.pt"
    torch.save(
        {"cfg": cfg, "model": seeded_state_dict(cfg, seed=2), "label_dict": label_dict}, path
    )
    upstream = sbm.BEATs(ckp_path=str(path), freeze=True).eval()
    ours = audiozoo.create("beats.iter3_plus_as2m_cpt2", pretrained=str(path)).eval()
    assert ours.labels is not None and ours.labels[0] == "Speech"
    for case in ("10s", "3.3s"):
        wave = waves(LENGTHS[case])
        with torch.no_grad():
            tokens_up, probs_up, _ = upstream.extract_features(wave, torch.ones(2))
            logits_up = upstream.predictor(tokens_up).mean(1)  # before upstream's sigmoid
            logits = ours(wave)
        # our output k is canonical class k = upstream row perm.index(k)
        canonical_up = logits_up[:, torch.tensor([perm.index(k) for k in range(527)])]
        probs_canonical = probs_up[:, torch.tensor([perm.index(k) for k in range(527)])]
        report = {
            "logits rel": rel(logits, canonical_up),
            "sigmoid abs": (torch.sigmoid(logits) - probs_canonical).abs().max().item(),
        }
        record_parity("beats.iter3_plus_as2m_cpt2 vs speechbrain BEATs (fine-tuned)", case, report)
        assert report["logits rel"] <= RTOL and report["sigmoid abs"] <= 1e-4, report
        assert rel(logits_up[0], logits_up[1]) > 10 * RTOL


@pytest.fixture(scope="module")
def pretrainedsed():
    if os.environ.get("AUDIOZOO_PARITY_STRICT") != "1":  # full-size BEATs: ~30 s per run
        pytest.skip("full-size BEATs vs PretrainedSED: run with nox -s parity")
    meta_path = FIXTURES / "pretrainedsed_strong.json"
    if not meta_path.is_file():
        pytest.skip(f"{meta_path} is missing")
    from safetensors.torch import load_file

    meta = json.loads(meta_path.read_text())
    return meta, load_file(FIXTURES / "pretrainedsed_strong.safetensors")


@pytest.fixture(scope="module")
def strong_model(pretrainedsed, tmp_path_factory):
    meta, _ = pretrainedsed
    sd = seeded_state_dict(UNILM_CFG, seed=meta["seed"])
    heads = seeded_heads(447, 768, seed=meta["seed"])
    drift = abs(checksum({**sd, **heads}) - meta["checksum"])
    assert drift < 1e-6 * meta["checksum"], "torch's RNG changed: regenerate the fixtures"
    path = tmp_path_factory.mktemp("beats_sed") / "BEATs_strong_seeded.pt"
    torch.save(to_pretrainedsed(sd, heads), path)  # PretrainedSED's file layout
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    return audiozoo.create("beats.as_strong", pretrained=str(path)).eval()


@pytest.mark.parametrize("case", ["10s", "3p3s", "23s"])
def test_beats_strong_matches_pretrainedsed(pretrainedsed, strong_model, case):
    _, ref = pretrainedsed
    wave = ref[f"{case}.wave"]  # (1, N)
    frames = math.ceil(wave.shape[-1] / 640)  # 40 ms frames covering the clip
    with torch.no_grad():
        strong = strong_model(wave)  # (1, T, 447)
        weak = strong_model.clip_logits(wave)
    strong_up = ref[f"{case}.strong"].T[:frames]  # (T, 447), chunks concatenated, cut
    report = {
        "strong rel": rel(strong[0], strong_up),
        "weak rel": rel(weak[0], ref[f"{case}.weak"].mean(0)),
    }
    if case == "10s":
        with torch.no_grad():
            spec = strong_model.frontend(wave)
            seq = strong_model.embed(wave, frames=True)
            clip = strong_model.embed(wave)
        report["frontend abs"] = (spec[0, 0] - ref["10s.mel"]).abs().max().item()
        report["embed(frames) rel"] = rel(seq[0], ref["10s.seq250"])
        report["embed rel"] = rel(clip[0], ref["10s.tokens_mean"])
        assert seq.shape == (1, 250, 768)
    record_parity("beats.as_strong vs PretrainedSED inference.py", case, report)
    assert strong.shape == (1, frames, 447)
    assert strong_model.frame_hop == pytest.approx(0.04)
    if "frontend abs" in report:
        assert report["frontend abs"] <= FRONTEND_ATOL, report
    assert all(v <= RTOL for k, v in report.items() if k.endswith("rel")), report
