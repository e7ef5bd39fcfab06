"""Parity tests compare audiozoo with upstream implementations (torchaudio, hear21passt,
transformers). Outside the parity environment they skip with the reason; under
``nox -s parity`` (``AUDIOZOO_PARITY_STRICT=1``) a skip is a failure, so nothing passes by
not running."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.parity)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("AUDIOZOO_PARITY_STRICT") == "1" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"parity test skipped under nox -s parity: {report.longrepr}"
