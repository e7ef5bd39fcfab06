"""Timing, agreement checks and the result table."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

__all__ = [
    "Row",
    "cpu_burners",
    "fmt_time",
    "machine_description",
    "max_abs_diff",
    "max_rel_diff",
    "render",
    "time_pair",
]


def time_pair(
    ours: Callable[[], object], theirs: Callable[[], object], *, warmup: int, repeats: int
) -> tuple[float, float]:
    """Median wall time (s) of ``ours`` and ``theirs``, measured interleaved in this process.

    Both run ``warmup`` times first (allocator, caches, lazy initialisation); then each of the
    ``repeats`` rounds times one call of each, alternating which goes first, so load drifting on
    a shared machine hits both sides alike.
    """
    for _ in range(warmup):
        ours()
        theirs()
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for i in range(repeats):
        pair = ((ours, t_ours), (theirs, t_theirs))
        for fn, times in pair if i % 2 == 0 else reversed(pair):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(t_ours), statistics.median(t_theirs)


@contextlib.contextmanager
def cpu_burners(count: int = 1) -> Iterator[None]:
    """``count`` processes that spin a core each (``while True: pass``) while the block runs:
    a busy machine, reproducibly."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them get going
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b|`` (inf when the shapes differ)."""
    if a.shape != b.shape:
        return math.inf
    return float((a.double() - b.double()).abs().max())


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|``: the error relative to the output's scale (inf on shape mismatch)."""
    if a.shape != b.shape:
        return math.inf
    return max_abs_diff(a, b) / max(float(b.double().abs().max()), 1e-12)


@dataclass
class Row:
    """One line of the table.

    ``ours`` and ``theirs`` are already formatted (times, memory); ``ratio`` is a number compared
    with ``target`` in the direction ``higher`` says; ``check`` is the agreement check
    (None: no outputs to compare); ``skipped`` gives the reason a row could not run.
    """

    case: str
    batch: str = ""
    threads: str = ""
    ours: str = ""
    theirs: str = ""
    ratio: float | None = None
    ratio_text: str = ""
    target: float | None = None
    higher: bool = True
    check: str = ""
    agree: bool | None = None
    skipped: str = ""

    @property
    def status(self) -> str:
        if self.skipped:
            return f"SKIPPED ({self.skipped})"
        if self.agree is False:
            return "FAILED (outputs differ)"
        if self.target is None or self.ratio is None:
            return "ok"
        met = self.ratio >= self.target if self.higher else self.ratio <= self.target
        return "ok" if met else "MISSED"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.higher else '<='} {self.target:g}"


def render(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    header = ("case", "batch", "threads", "ours", "theirs", "ratio", "target", "check", "status")
    lines = [header] + [
        (
            r.case,
            r.batch,
            r.threads,
            r.ours,
            r.theirs,
            r.ratio_text,
            r.target_text,
            r.check,
            r.status,
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines[1:]]
    return "\n".join(out)


def machine_description() -> str:
    """CPU model, logical cores, OS, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} logical cores usable; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; torch {torch.__version__} "
        f"(default threads {torch.get_num_threads()})"
    )


def fmt_time(seconds: float) -> str:
    """Milliseconds below 1 s, else seconds."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
