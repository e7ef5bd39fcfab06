"""EfficientAT parity: audiozoo vs. outputs of the upstream implementation on the same weights.

Fixtures (``$AUDIOZOO_FIXTURES/efficientat/NAME.{pt,safetensors,json}``, see their README) hold
an upstream-format checkpoint with random but "alive" weights and what upstream computed from
it: the eval-mode mel spectrogram, the logits and the pooled embedding. Tests skip with the
reason when the folder is absent.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import audiozoo
from audiozoo.backbones.mobilenet import WIDTHS
from audiozoo.heads import MLPHead
from tests.conftest import require_fixtures
from tests.parity_report import record_parity

FIXTURES = ["mn10_as", "mn01_as"]


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| relative to the scale of ``expected``."""
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def load_fixture(name: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    folder = require_fixtures("efficientat")
    for suffix in (".pt", ".safetensors", ".json"):
        require_fixtures("efficientat", name + suffix)
    checkpoint = torch.load(folder / f"{name}.pt", weights_only=True, map_location="cpu")
    reference = load_file(folder / f"{name}.safetensors")
    meta = json.loads((folder / f"{name}.json").read_text())
    return checkpoint, reference, meta


def model_name(name: str) -> str:
    return name.replace("_", ".", 1)  # mn10_as -> mn10.as


@pytest.mark.parametrize("name", FIXTURES)
def test_backbone_and_head_match_upstream(name):
    """Converter + MobileNetV3 + MLPHead composed by hand, fed upstream's own mel."""
    checkpoint, ref, meta = load_fixture(name)
    arch, tag = model_name(name).split(".")
    cfg = audiozoo.get_architecture(arch).cfg(tag)
    assert float(meta["width"]) == WIDTHS[arch]  # the fixture is the width we think it is
    n_mels = audiozoo.build_frontend(cfg.frontend).n_mels
    assert meta["head_type"] == "mlp" and int(meta["n_mels"]) == n_mels
    model = nn.ModuleDict(
        {"backbone": audiozoo.get_architecture(cfg.arch).builder(**cfg.backbone_kwargs)}
    )
    head_kwargs = {k: v for k, v in cfg.head_config().items() if k != "name"}
    model["head"] = MLPHead(model["backbone"].num_features, **head_kwargs)
    model.load_state_dict(audiozoo.get_converter(cfg.converter)(checkpoint), strict=True)
    model.eval()
    with torch.no_grad():
        features = model["backbone"](ref["mel"].unsqueeze(1))  # (2, 128, 1000) -> (2, 1, 128, 1000)
        logits = model["head"](features)
    assert logits.shape == ref["logits"].shape
    assert features.pooled().shape == ref["embedding"].shape
    assert rel_err(logits, ref["logits"]) < 1e-3
    assert rel_err(features.pooled(), ref["embedding"]) < 1e-3


@pytest.mark.parametrize("name", FIXTURES)
def test_create_end_to_end_matches_upstream(name):
    """audiozoo.create with the upstream file: frontend, backbone and head from the weight table."""
    _, ref, _ = load_fixture(name)
    path = require_fixtures("efficientat", f"{name}.pt")
    model = audiozoo.create(model_name(name), pretrained=path)
    assert not model.training
    with torch.no_grad():
        mel = model.frontend(ref["waveform"])
        logits_from_mel = model.head(model.backbone(ref["mel"].unsqueeze(1)))
        logits = model(ref["waveform"])
        embedding = model.embed(ref["waveform"])
    assert mel.shape == (2, 1, *ref["mel"].shape[1:])
    report = {
        "mel abs": (mel[:, 0] - ref["mel"]).abs().max().item(),
        "logits rel": rel_err(logits, ref["logits"]),
        "embed rel": rel_err(embedding, ref["embedding"]),
        "logits from upstream mel rel": rel_err(logits_from_mel, ref["logits"]),
    }
    record_parity(f"{model_name(name)} vs EfficientAT (shared fixture)", "10 s", report)
    assert report["mel abs"] < 1e-4, report
    assert all(v < 1e-3 for k, v in report.items() if k.endswith("rel")), report


def test_wrong_width_checkpoint_is_refused():
    """mn01 weights do not load into mn10: a CheckpointError naming the problem, not a silent mess."""
    path = require_fixtures("efficientat", "mn01_as.pt")
    with pytest.raises(audiozoo.CheckpointError):
        audiozoo.create("mn10.as", pretrained=path)
