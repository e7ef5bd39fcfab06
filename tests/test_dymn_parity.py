"""DyMN parity: audiozoo vs. outputs of the upstream implementation on the same weights.

Shared fixture ``$AUDIOZOO_FIXTURES/dymn/dymn04_as.{pt,safetensors,json}`` (see its README): a checkpoint
in the format of EfficientAT's ``dymn04_as.pt`` with random but conditioned weights, and what
upstream's ``models/dymn`` computed from it at temperature 1.0: the eval-mode mel spectrogram, the
logits, the pooled embedding and the last feature map. Tests skip with the reason when the folder
is absent (and fail in CI, where ``AUDIOZOO_REQUIRE_FIXTURES=1``). Two small width-0.1 cases
committed under ``tests/fixtures/dymn`` (README there) cover odd sizes with strides (2, 2, 2, 1) and
the ``replace_se`` variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import audiozoo
from audiozoo._registry import backbones, converters
from audiozoo.backbones.dymn import WIDTHS, DyMN
from audiozoo.heads import MLPHead
from tests.conftest import require_fixtures
from tests.parity_report import record_parity

NAME = "dymn04_as"


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| relative to the largest absolute value of ``expected``."""
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(scope="module")
def fixture() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    folder = require_fixtures("dymn")
    for suffix in (".pt", ".safetensors", ".json"):
        require_fixtures("dymn", NAME + suffix)
    checkpoint = torch.load(folder / f"{NAME}.pt", weights_only=True, map_location="cpu")
    reference = load_file(folder / f"{NAME}.safetensors")
    meta = json.loads((folder / f"{NAME}.json").read_text())
    return checkpoint, reference, meta


def test_fixture_is_what_the_tag_describes(fixture):
    _, _, meta = fixture
    cfg = audiozoo.get_pretrained_cfg("dymn04.as")
    assert meta["width_mult"] == WIDTHS["dymn04"] and meta["use_dy_blocks"] == "all"
    assert meta["dyconv_temperature"] == 1.0 and meta["dyconv_k"] == 4 and meta["dyrelu_k"] == 2
    assert meta["head_type"] == "mlp" and meta["num_classes"] == cfg.num_classes
    assert meta["mel"]["n_mels"] == 128 and meta["mel"]["hop_length"] == 320


def test_backbone_and_head_match_upstream(fixture):
    """Converter + DyMN + MLPHead composed by hand, fed upstream's own mel."""
    checkpoint, ref, meta = fixture
    cfg = audiozoo.get_pretrained_cfg("dymn04.as")
    model = nn.ModuleDict({"backbone": backbones.get(cfg.arch).builder(**cfg.backbone_kwargs)})
    head_kwargs = {k: v for k, v in cfg.head.items() if k != "name"}
    model["head"] = MLPHead(model["backbone"].num_features, cfg.num_classes, **head_kwargs)
    converted = converters.get(cfg.converter)(checkpoint)
    model.load_state_dict(converted, strict=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == meta["checkpoint"]["n_params"]
    model.eval()
    with torch.no_grad():
        features = model["backbone"](ref["mel"].unsqueeze(1))  # (2, 128, 1000) -> (2, 1, 128, 1000)
        logits = model["head"](features)
    assert features.grid.shape == ref["feature_map"].shape
    assert rel_err(features.grid, ref["feature_map"]) < 1e-3
    assert rel_err(features.pooled(), ref["embedding"]) < 1e-3
    assert rel_err(logits, ref["logits"]) < 1e-3


def test_create_end_to_end_matches_upstream(fixture):
    """audiozoo.create with the upstream file: frontend, backbone and head from the weight table."""
    _, ref, _ = fixture
    path = require_fixtures("dymn", f"{NAME}.pt")
    model = audiozoo.create("dymn04.as", pretrained=path)
    assert not model.training and model.sample_rate == 32000
    with torch.no_grad():
        mel = model.frontend(ref["waveform"])
        grid = model.backbone(mel).grid
        logits = model(ref["waveform"])
        embedding = model.embed(ref["waveform"])
    assert mel.shape == (2, 1, *ref["mel"].shape[1:])
    report = {
        "mel abs": (mel[:, 0] - ref["mel"]).abs().max().item(),
        "feature map rel": rel_err(grid, ref["feature_map"]),
        "logits rel": rel_err(logits, ref["logits"]),
        "embed rel": rel_err(embedding, ref["embedding"]),
    }
    record_parity("dymn04.as vs EfficientAT models/dymn (shared fixture)", "10 s", report)
    assert report["mel abs"] < 1e-4, report
    assert all(v < 1e-3 for k, v in report.items() if k.endswith("rel")), report


def test_temperature_matters(fixture):
    """At upstream's training-start temperature 30 the same weights give other outputs: the
    fixture pins the temperature down."""
    checkpoint, ref, _ = fixture
    model = nn.ModuleDict({"backbone": backbones.get("dymn04").builder(temperature=30.0)})
    model["head"] = MLPHead(model["backbone"].num_features, 527, hidden=512)
    model.load_state_dict(converters.get("dymn")(checkpoint), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model["head"](model["backbone"](ref["mel"].unsqueeze(1)))
    assert rel_err(logits, ref["logits"]) > 1e-2


def test_wrong_width_checkpoint_is_refused(fixture):
    path = require_fixtures("dymn", f"{NAME}.pt")
    with pytest.raises(audiozoo.CheckpointError):
        audiozoo.create("dymn10.as", pretrained=path)


# --- committed width-0.1 cases: odd sizes with strides (2, 2, 2, 1), and replace_se ------------

LOCAL = Path(__file__).parent / "fixtures" / "dymn"
LOCAL_CASES = ["dymn01_s2221", "dymn01_replace_se"]


@pytest.mark.parametrize("name", LOCAL_CASES)
def test_committed_cases_match_upstream(name):
    meta = json.loads((LOCAL / f"{name}.json").read_text())
    checkpoint = torch.load(LOCAL / f"{name}.pt", weights_only=True, map_location="cpu")
    ref = load_file(LOCAL / f"{name}.safetensors")
    backbone = DyMN(
        width_mult=meta["width_mult"],
        use_dy_blocks=meta["use_dy_blocks"],
        strides=meta["strides"],
    )
    model = nn.ModuleDict({"backbone": backbone})
    model["head"] = MLPHead(backbone.num_features, 527, hidden=backbone.last_channel)
    model.load_state_dict(converters.get("dymn")(checkpoint), strict=True)
    assert sum(p.numel() for p in model.parameters()) == meta["n_params"]
    model.eval()
    with torch.no_grad():
        features = backbone(ref["mel"].unsqueeze(1))
        logits = model["head"](features)
    assert features.grid.shape == ref["feature_map"].shape
    assert rel_err(features.grid, ref["feature_map"]) < 1e-3
    assert rel_err(features.pooled(), ref["embedding"]) < 1e-3
    assert rel_err(logits, ref["logits"]) < 1e-3
