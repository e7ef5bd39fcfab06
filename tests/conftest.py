"""Shared test fixtures: the parity fixtures folder and small deterministic waveforms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    """``$AUDIOZOO_FIXTURES`` or ``<repo>/../shared/fixtures``."""
    return Path(os.environ.get("AUDIOZOO_FIXTURES", REPO.parent / "shared" / "fixtures"))


def require_fixtures(*parts: str) -> Path:
    """Path inside the fixtures folder; skips (visibly) when it is absent. In CI
    (``AUDIOZOO_REQUIRE_FIXTURES=1``) a missing fixture is a failure instead."""
    path = fixtures_dir().joinpath(*parts)
    if not path.exists():
        msg = f"parity fixture {path} not found (set AUDIOZOO_FIXTURES)"
        if os.environ.get("AUDIOZOO_REQUIRE_FIXTURES") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets an empty audiozoo cache and no network: nothing leaks between tests.
    huggingface_hub's own offline switch (read from HF_HUB_OFFLINE once, when it is first
    imported, perhaps during an earlier test) is off, so the variable alone decides."""
    from huggingface_hub import constants

    monkeypatch.setenv("AUDIOZOO_CACHE", str(tmp_path_factory.mktemp("azcache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The measurements of this run (:mod:`tests.parity_report`) as tables."""
    from tests.parity_report import fault_table, table

    for title, lines in (
        ("parity: max differences (audiozoo vs upstream)", table()),
        ("download faults: time to error, what the cache holds after", fault_table()),
    ):
        if lines:
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)
