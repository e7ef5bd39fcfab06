"""The figures the docs build renders (docs/scripts/): their data, without matplotlib."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "docs" / "scripts"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"audiozoo_docs_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sed_figure_detects_most_reference_events():
    """The SED guide's figure shows a classifier that works: detect_events on its probabilities
    finds most of the clip's reference events (same class, onset within 0.2 s)."""
    fig = _load("sed_figure")
    test, probs, events = fig.predictions()
    assert probs.shape == (250, len(fig.CLASSES))
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    references = test.events(fig.TEST_INDEX)
    assert len({k for _, _, k in references}) >= 3  # the figure shows several classes
    found = [
        any(e.label == fig.CLASSES[k] and abs(e.onset - onset) <= 0.2 for e in events)
        for onset, _, k in references
    ]
    assert sum(found) >= len(references) / 2, (references, events)
    assert all(0.0 <= e.onset < e.offset <= fig.SECONDS for e in events)
    assert torch.equal(probs, fig.predictions()[1])  # deterministic: the same figure every build
