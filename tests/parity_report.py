"""Measurements collected as the tests run and printed as tables at the end of the run.

A parity test calls :func:`record_parity` with its case and the differences it measured (before
asserting the tolerances), so ``nox -s parity`` ends with the whole table instead of leaving the
numbers in captured output; the download fault tests call :func:`record_fault` with the time to
the error and what was left on disk. ``AUDIOZOO_PARITY_REPORT=PATH`` also writes the parity rows
as JSON lines.

The rows travel in the test reports (``report.user_properties``), so the tables are the same
whether the run is serial or spread over pytest-xdist workers: :func:`take_pending` empties what a
test recorded into its report, and the controller's :func:`collect` keeps it.
"""

from __future__ import annotations

import json
import os

PARITY_KEY, FAULT_KEY = "audiozoo_parity", "audiozoo_fault"
_pending: list[tuple[str, object]] = []  # recorded by the test now running (in this process)
ROWS: list[tuple[str, str, dict[str, float]]] = []  # collected from the reports of the run
FAULTS: list[tuple[str, str, float, str]] = []


def record_parity(comparison: str, case: str, report: dict[str, float]) -> None:
    """Remember ``report`` (metric -> max difference) of one case of one comparison."""
    row = (comparison, case, {k: float(v) for k, v in report.items()})
    _pending.append((PARITY_KEY, row))
    path = os.environ.get("AUDIOZOO_PARITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"comparison": row[0], "case": row[1], **row[2]}) + "\n")


def record_fault(fault: str, settings: str, seconds: float, left_on_disk: str) -> None:
    """Remember how one download fault ended: seconds to the error (or the repair) and what
    the cache holds afterwards."""
    _pending.append((FAULT_KEY, (fault, settings, float(seconds), left_on_disk)))


def take_pending() -> list[tuple[str, object]]:
    """What the running test recorded so far, as ``user_properties`` items; forgets it here."""
    items = list(_pending)
    _pending.clear()
    return items


def collect(user_properties: list[tuple[str, object]]) -> None:
    """Keep the rows carried by one test report (in the controller of an xdist run)."""
    for key, value in user_properties:
        if key == PARITY_KEY:
            comparison, case, report = value  # type: ignore[misc]
            ROWS.append((comparison, case, dict(report)))
        elif key == FAULT_KEY:
            fault, settings, seconds, left = value  # type: ignore[misc]
            FAULTS.append((fault, settings, seconds, left))


def table() -> list[str]:
    """The parity rows as Markdown lines (empty when nothing was recorded); rows of the same
    comparison and case (parametrised lengths, batch items) are merged into their maximum."""
    merged: dict[tuple[str, str], tuple[int, dict[str, float]]] = {}
    for comparison, case, report in ROWS:
        count, worst = merged.get((comparison, case), (0, {}))
        for k, v in report.items():
            worst[k] = max(worst.get(k, v), v)
        merged[(comparison, case)] = (count + 1, worst)
    if not merged:
        return []
    lines = ["| comparison | case | runs | max differences |", "|---|---|---|---|"]
    for (comparison, case), (count, worst) in merged.items():
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        lines.append(f"| {comparison} | {case} | {count} | {diffs} |")
    return lines


def fault_table() -> list[str]:
    """The download fault rows as Markdown lines (empty when none was recorded)."""
    if not FAULTS:
        return []
    lines = ["| fault | settings | time to error | left on disk |", "|---|---|---|---|"]
    lines += [f"| {f} | {s} | {t:.2f} s | {left} |" for f, s, t, left in FAULTS]
    return lines
