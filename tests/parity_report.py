"""Parity measurements, collected as the tests run and printed as one table at the end.

A parity test calls :func:`record_parity` with its case and the differences it measured (before
asserting the tolerances), so ``nox -s parity`` ends with the whole table instead of leaving the
numbers in captured output. ``AUDIOZOO_PARITY_REPORT=PATH`` also writes them as JSON lines.
"""

from __future__ import annotations

import json
import os

ROWS: list[tuple[str, str, dict[str, float]]] = []


def record_parity(comparison: str, case: str, report: dict[str, float]) -> None:
    """Remember ``report`` (metric -> max difference) of one case of one comparison."""
    row = (comparison, case, {k: float(v) for k, v in report.items()})
    ROWS.append(row)
    path = os.environ.get("AUDIOZOO_PARITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"comparison": row[0], "case": row[1], **row[2]}) + "\n")


def table() -> list[str]:
    """The recorded rows as Markdown lines (empty when nothing was recorded); rows of the same
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
