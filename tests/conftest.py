"""Shared test fixtures: the parity fixtures folder and small deterministic waveforms."""

from __future__ import annotations

import os
from collections.abc import Generator
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


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its share of the cores: torch would otherwise start
    one thread per core in every worker, workers × cores threads on a many-core machine. (On 2
    cores and 2 workers the suite took the same time either way.)"""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator:
    """Measurements a test recorded (:mod:`tests.parity_report`) ride in its report, which
    xdist sends to the controller."""
    from tests.parity_report import take_pending

    outcome = yield
    outcome.get_result().user_properties.extend(take_pending())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    from tests.parity_report import collect

    collect(report.user_properties)


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
