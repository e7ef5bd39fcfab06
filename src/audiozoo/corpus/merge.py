"""Checking a run's outputs against its manifest and joining the shards of several processes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .inputs import Input
from .writers import MANIFEST, PerFileWriter, Record, read_records, shard_files, write_records

__all__ = ["MergeReport", "merge_shards"]


@dataclasses.dataclass
class MergeReport:
    """The check of a run's outputs against its manifest."""

    expected: int
    found: int
    missing: list[str]
    duplicates: dict[str, int]
    unexpected: list[str]
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    merged: Path | None = None

    @property
    def ok(self) -> bool:
        """Every input is present exactly once, or failed to decode with a recorded reason."""
        return not (self.missing or self.duplicates or self.unexpected)

    @property
    def complete(self) -> bool:
        """Every input is present exactly once."""
        return self.ok and not self.failed

    def text(self) -> str:
        head = (
            f"{self.found} of {self.expected} inputs present"
            + (f", {len(self.failed)} failed (reasons in summary-*.json)" if self.failed else "")
            + (f"; merged into {self.merged}" if self.merged else "")
            + ("" if self.ok else "; NOT COMPLETE")
        )
        lines = [head]
        lines += [f"missing: {k}" for k in self.missing[:20]]
        if len(self.missing) > 20:
            lines.append(f"... and {len(self.missing) - 20} more missing")
        lines += [f"duplicate ({n} times): {k}" for k, n in sorted(self.duplicates.items())]
        lines += [f"not in the manifest: {k}" for k in self.unexpected[:20]]
        return "\n".join(lines)


def merge_shards(
    output: str | os.PathLike[str], *, inputs: Iterable[str] | None = None, write: bool = True
) -> MergeReport:
    """Check that every input is present exactly once in ``output``; join the shards.

    Args:
        output: the output folder of a run (all processes).
        inputs: the expected keys; default: the run's ``manifest.txt``.
        write: write ``embeddings.npz`` / ``embeddings.parquet`` (shards, in manifest order) when
            the check passes.
    """
    out = Path(output)
    if inputs is None:
        manifest = out / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: is {out} the output of audiozoo embed?")
        expected = [k for k in manifest.read_text(encoding="utf-8").splitlines() if k]
    else:
        expected = list(inputs)
    # joined shards and the parts of a run that was stopped (not an earlier merge's output)
    shards = shard_files(out)
    counts: dict[str, int] = {}
    records: dict[str, Record] = {}
    if shards:
        for path in shards:
            keys, recs = read_records(path, keys_only=not write)
            for k in keys:
                counts[k] = counts.get(k, 0) + 1
            records.update({r["file"]: r for r in recs})
    else:  # per-file outputs: one file per key, by construction at most once
        items = [Input(k, k) for k in expected]
        for suffix in (".npz", ".npy"):
            w = PerFileWriter(out, items, suffix)
            for k in w.done():
                counts[k] = counts.get(k, 0) + 1
    failed: dict[str, str] = {}
    for path in sorted(out.glob("summary-*-of-*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            failed.update(json.loads(path.read_text(encoding="utf-8"))["failures"])
    wanted = set(expected)
    report = MergeReport(
        expected=len(expected),
        found=len(wanted & set(counts)),
        missing=[k for k in expected if k not in counts and k not in failed],
        duplicates={k: n for k, n in counts.items() if n > 1},
        unexpected=sorted(set(counts) - wanted),
        failed={k: v for k, v in failed.items() if k in wanted and k not in counts},
    )
    if write and shards and report.ok:
        if len(shards) == 1:  # one process: its shard is the whole run, no second copy
            report.merged = shards[0]
        else:
            report.merged = out / f"embeddings{shards[0].suffix}"
            write_records(report.merged, [records[k] for k in expected if k in records])
    return report
