"""DyMN at full width (dymn10, dymn20) against upstream EfficientAT ``models/dymn``.

Upstream (fschmid56/EfficientAT, not pip-installable) ran on seeded weights; its outputs are
fixtures (``tests/fixtures/dymn_full``, see its README) and the release-format checkpoint is
rebuilt here (:mod:`tests.seeded_fixtures`) and read through ``create(tag, pretrained=path)``, as
a downloaded ``dymn10_as.pt`` would be. dymn04 and the width-0.1 cases are covered by
``tests/test_dymn_parity.py``. Tolerances: mel <= 1e-4 absolute, logits and embeddings <= 1e-3
relative to the largest reference value. dymn10 runs in the default test run, dymn20 only under
``nox -s parity``.
"""

from __future__ import annotations

import os

import pytest
import torch

import audiozoo
from tests.parity_report import record_parity
from tests.seeded_fixtures import DYMN_FULL as fx
from tests.seeded_fixtures import checksum

RTOL = 1e-3
ONLY_IN_PARITY = {"dymn20"}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module", params=list(fx.models))
def model(request, tmp_path_factory):
    name = request.param
    if name in ONLY_IN_PARITY and os.environ.get("AUDIOZOO_PARITY_STRICT") != "1":
        pytest.skip(f"full-size {name} parity: run with nox -s parity (AUDIOZOO_PARITY_STRICT=1)")
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    expected = fx.keys()[name]["weights_checksum"]
    assert abs(fx.seeded_checksum(name) - expected) <= 1e-9 * expected, "torch's RNG changed"
    path = tmp_path_factory.mktemp(name) / f"{name}_as.pt"
    torch.save(fx.upstream_state_dict(name), path)  # the release file's format
    return name, audiozoo.create(fx.models[name], pretrained=str(path)).eval()


@pytest.mark.parametrize("case", list(fx.cases))
def test_dymn_matches_efficientat(model, case):
    name, ours = model
    ref = fx.reference(name)
    wave = fx.waveform(case)
    assert checksum([wave]) == pytest.approx(fx.keys()["inputs_checksum"][case], rel=1e-9)
    with torch.no_grad():
        logits = ours(wave)
        emb = ours.embed(wave)
        mel = ours.frontend(wave)
    report = {"logits rel": rel(logits[0], ref[f"{case}.logits"])}
    report["embed rel"] = rel(emb[0], ref[f"{case}.embedding"])
    if case == "10s":
        report["mel abs"] = (mel[0, 0] - ref["10s.mel"]).abs().max().item()
    record_parity(f"{fx.models[name]} vs EfficientAT models/dymn", case, report)
    assert report.get("mel abs", 0.0) <= 1e-4, report
    assert report["logits rel"] <= RTOL and report["embed rel"] <= RTOL, report
    logits_10s, logits_3s = ref["10s.logits"], ref["3.3s.logits"]
    assert rel(logits_10s, logits_3s) > 10 * RTOL  # the weights are informative
