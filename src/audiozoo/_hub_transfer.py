"""One huggingface_hub download under audiozoo's stall rule, for :mod:`audiozoo.download`.

huggingface_hub bounds each socket read (``HF_HUB_DOWNLOAD_TIMEOUT``) but not a transfer: a
server that sends a byte a second never trips it, and it reads the body in 10 MB chunks, so
progress cannot be watched byte by byte either. The download therefore runs in a daemon thread,
and the caller gives up at a deadline:

- while no body arrives (the metadata request, waiting for another process's lock, the response
  headers): ``AUDIOZOO_LOCK_TIMEOUT`` plus one ``AUDIOZOO_DOWNLOAD_TIMEOUT`` window;
- once the body starts, whose size huggingface_hub hands its progress bar: one window plus the
  time the rest of the file takes at ``AUDIOZOO_DOWNLOAD_MIN_SPEED`` (with no size known: one
  window plus one chunk at that speed after each chunk).

A transfer given up on is left to its thread, which ends when the server does or the process
exits; huggingface_hub resumes its partial file on the next call. Until that thread ends, it
holds huggingface_hub's lock of the file, so a new call for the same file in this process fails
at once instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._errors import PretrainedUnavailableError
from .cache import DownloadSettings

__all__ = ["guarded_hub_download"]

_POLL = 0.1  # seconds between checks of the deadline
_abandoned: dict[str, threading.Thread] = {}  # key -> the thread of a transfer given up on
_abandoned_lock = threading.Lock()


class _Transfer:
    """What the progress bar of one download has seen, and until when it may take."""

    def __init__(self, settings: DownloadSettings, chunk: int) -> None:
        self.settings, self.chunk = settings, chunk  # progress comes in chunks of this size
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.body_started: float | None = None
        self.total: int | None = None
        self.received = 0
        self.deadline = self.started + settings.lock_timeout + settings.timeout

    def body(self, total: int | None, initial: int) -> None:
        with self.lock:
            if self.body_started is None:  # a retry reuses the bar: keep the first start
                self.body_started = time.monotonic()
            self.total, self.received = total, initial
            self._extend()

    def update(self, n: int) -> None:
        with self.lock:
            self.received += n
            if self.total is None:
                self._extend()

    def _extend(self) -> None:
        s = self.settings
        if s.min_speed <= 0:
            self.deadline = float("inf")
        elif self.total is not None:
            assert self.body_started is not None
            self.deadline = self.body_started + s.timeout + self.total / s.min_speed
        else:
            self.deadline = time.monotonic() + s.timeout + self.chunk / s.min_speed


def _bar_class(transfer: _Transfer) -> type:
    """huggingface_hub's own progress bar (same display, same switches), reporting to
    ``transfer``."""
    from huggingface_hub.utils import tqdm

    class Bar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            transfer.body(kwargs.get("total"), int(kwargs.get("initial") or 0))

        def update(self, n: float | None = 1) -> bool | None:
            transfer.update(int(n or 0))
            return super().update(n)  # type: ignore[no-any-return]

    return Bar


def _late(transfer: _Transfer, what: str, settings: DownloadSettings) -> PretrainedUnavailableError:
    """The error for a transfer past its deadline: what it waited for, and the setting."""
    now = time.monotonic()
    with transfer.lock:
        got, total, body = transfer.received, transfer.total, transfer.body_started
    if body is None:
        return PretrainedUnavailableError(
            f"could not fetch {what}: no file data after {now - transfer.started:.0f} s "
            f"(waiting for the Hub's answer or another process's lock; AUDIOZOO_LOCK_TIMEOUT="
            f"{settings.lock_timeout:g} s plus AUDIOZOO_DOWNLOAD_TIMEOUT={settings.timeout:g} s)."
            " Try again later, or raise those settings."
        )
    window = f"AUDIOZOO_DOWNLOAD_TIMEOUT={settings.timeout:g} s"
    speed = f"AUDIOZOO_DOWNLOAD_MIN_SPEED={settings.min_speed:g} B/s"
    if total is not None:  # progress comes in 10 MB steps: what arrived since is unknown
        late_by = f"its {total} B did not arrive in {now - body:.1f} s"
        allowed = f"one {window} window plus its size at {speed}"
    else:
        late_by = f"{got} B in {now - body:.1f} s, then no more for too long"
        allowed = f"one {window} window plus {transfer.chunk} B at {speed}"
    return PretrainedUnavailableError(
        f"could not fetch {what}: {late_by} ({allowed}). The server stalls or drips; try "
        "again later, or set AUDIOZOO_DOWNLOAD_MIN_SPEED lower (0: no minimum)."
    )


def guarded_hub_download(
    download: Callable[[type], Path], what: str, settings: DownloadSettings, *, key: str
) -> Path:
    """``download(tqdm_class)`` (a call of ``hf_hub_download``) in a daemon thread; its result,
    or its exception re-raised here. ``key`` names the file and the cache it goes to.

    Raises:
        PretrainedUnavailableError: the deadline passed (a stalled or dripping server, or a
            lock held too long), or an earlier transfer of the same file in this process was
            given up on and still runs; the message names the file and the settings.
    """
    with _abandoned_lock:
        earlier = _abandoned.get(key)
        if earlier is not None and earlier.is_alive():
            raise PretrainedUnavailableError(
                f"could not fetch {what}: an earlier download of it in this process stalled "
                "and still holds the file's lock. Try again when it ends (the server closes "
                "it), or in a new process."
            )
        _abandoned.pop(key, None)
    from huggingface_hub import constants

    transfer = _Transfer(settings, constants.DOWNLOAD_CHUNK_SIZE)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["path"] = download(_bar_class(transfer))
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="audiozoo-hub-download", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(_POLL)
        with transfer.lock:
            late = thread.is_alive() and time.monotonic() > transfer.deadline
        if late:
            with _abandoned_lock:
                _abandoned[key] = thread
            raise _late(transfer, what, settings)
    if "error" in outcome:
        raise outcome["error"]
    return Path(outcome["path"])
