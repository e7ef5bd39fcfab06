"""What a corpus run did (:class:`Summary`) and its progress bar."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any

__all__ = ["Progress", "Summary"]


@dataclasses.dataclass
class Summary:
    """What a run did. ``failures``: key -> reason (those files are retried by the next run)."""

    shard: tuple[int, int]
    total: int = 0
    skipped: int = 0
    done: int = 0
    audio_seconds: float = 0.0
    wall_s: float = 0.0
    decode_s: float = 0.0
    model_s: float = 0.0
    write_s: float = 0.0
    workers: int = 0
    threads: int = 1
    background: bool = False  # the workers run at the lowest priority beside the model
    failures: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def decode_share(self) -> float:
        """Decoding time (summed over workers) / (decoding + model) time."""
        busy = self.decode_s + self.model_s
        return self.decode_s / busy if busy > 0 else 0.0

    def text(self) -> str:
        i, n = self.shard
        lines = [
            f"shard {i}/{n}: {self.done} files embedded, {self.skipped} already done, "
            f"{len(self.failures)} failed (of {self.total})",
            f"audio: {self.audio_seconds:.1f} s in {self.wall_s:.1f} s wall: "
            f"{self.files_per_s:.2f} files/s, {self.audio_seconds / max(self.wall_s, 1e-9):.1f}x "
            "real time",
            f"time: decoding {self.decode_s:.1f} s (in {self.workers} workers"
            f"{' at low priority' if self.background else ''}), model "
            f"{self.model_s:.1f} s ({self.threads} threads), writing {self.write_s:.1f} s; "
            f"decoding {100 * self.decode_share:.0f} % of decoding + model",
        ]
        lines += [f"failed: {k}: {why}" for k, why in sorted(self.failures.items())]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(files_per_s=self.files_per_s, decode_share=self.decode_share)
        return out


class Progress:
    """A one-line progress bar on a terminal (stderr), silent otherwise."""

    def __init__(self, total: int, enabled: bool | None) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        width = 30
        filled = int(width * done / max(self.total, 1))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} files, "
            f"{failed} failed, {rate:.1f} files/s, ETA {eta:.0f} s "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
