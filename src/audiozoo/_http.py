"""One HTTP download attempt for :mod:`audiozoo.download`, guarded against stalls.

A socket timeout only bounds each read: a server that sends one byte a second never trips it.
So a watchdog thread checks, every ``window`` seconds, that at least ``min_speed * window``
bytes arrived, and otherwise shuts the connection's socket down, which ends a blocked read at
once. The first window includes connecting and the response headers. The body is hashed while
it is written; a ``Content-Encoding: gzip`` or ``deflate`` body (sent by some proxies and CDNs
although audiozoo asks for none) is decoded in bounded steps; an HTML page is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import sys
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from ._errors import PretrainedUnavailableError
from .integrity import describe_bytes, is_markup

__all__ = ["Fetched", "HostNotFound", "TransientError", "fetch"]

_CHUNK = 1 << 20
_SNIFF = 64  # bytes looked at to recognise an HTML page


class TransientError(Exception):
    """A failure worth retrying (network error, dropped connection, stall, 5xx, 429)."""


class HostNotFound(Exception):
    """The host name does not resolve: no network, or a wrong address. Not retried."""


@dataclass(frozen=True)
class Fetched:
    """What one successful attempt wrote: the address that answered (after redirects), the
    sha256 and size of the (decoded) body, and its Content-Type."""

    url: str
    sha256: str
    size: int
    content_type: str | None


class _Watchdog:
    """Shuts down the sockets of one attempt when fewer than ``min_speed * window`` bytes
    arrive in a window of ``window`` seconds."""

    def __init__(self, window: float, min_speed: float) -> None:
        self.window, self.min_speed = window, min_speed
        self.received = 0  # written by the reading thread only
        self.sockets: list[socket.socket] = []
        self.stalled: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audiozoo-download", daemon=True)

    def __enter__(self) -> _Watchdog:
        if self.min_speed > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        seen = 0
        while not self._stop.wait(self.window):
            got, seen = self.received - seen, self.received
            if got < self.min_speed * self.window:
                self.stalled = (
                    f"the server sent {got} B in {self.window:g} s, less than "
                    f"AUDIOZOO_DOWNLOAD_MIN_SPEED={self.min_speed:g} B/s"
                )
                for sock in list(self.sockets):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    def handler(self, base: type[urllib.request.AbstractHTTPHandler]) -> Any:
        """A urllib handler (``HTTPHandler`` or ``HTTPSHandler``) whose sockets we see (urllib
        drops the connection's reference to its socket once the response has it)."""
        watchdog = self

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
                def connection(host: str, **kw: Any) -> Any:
                    conn = http_class(host, **kw)
                    connect = conn.connect

                    def connect_and_watch() -> None:
                        connect()
                        watchdog.sockets.append(conn.sock)

                    conn.connect = connect_and_watch
                    return conn

                return super().do_open(connection, req, **kwargs)

        return Handler()


def _decoder(encoding: str | None, url: str) -> Any:
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    if enc == "deflate":
        return zlib.decompressobj()
    raise PretrainedUnavailableError(
        f"{url} answered with Content-Encoding: {encoding}, which audiozoo cannot decode"
    )


def _decoded(decoder: Any, chunk: bytes) -> Iterator[bytes]:
    """``chunk`` decoded at most _CHUNK bytes at a time (a small compressed body can expand
    a lot: memory stays bounded)."""
    if decoder is None:
        yield chunk
        return
    data = decoder.decompress(chunk, _CHUNK)
    while True:
        yield data
        if not decoder.unconsumed_tail:
            return
        data = decoder.decompress(decoder.unconsumed_tail, _CHUNK)


def _progress(total: int | None, desc: str) -> Any:
    """A tqdm bar on stderr, or None when disabled (not a terminal, or AUDIOZOO_NO_PROGRESS)."""
    if os.environ.get("AUDIOZOO_NO_PROGRESS") or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        leave=False,
    )


def _refuse_markup(url: str, head: bytes, size: int, content_type: str | None) -> None:
    if is_markup(head):
        raise PretrainedUnavailableError(
            f"{url} answered with {describe_bytes(head, size, content_type)} instead of the "
            "file: an error or login page, a captive portal, or a file that moved. Open the "
            "address in a browser to see what it says"
        )


def _stream(resp: Any, out: IO[bytes], watchdog: _Watchdog, url: str, desc: str) -> Fetched:
    length = resp.headers.get("Content-Length")
    expected = int(length) if length is not None and length.strip().isdigit() else None
    content_type = resp.headers.get("Content-Type")
    decoder = _decoder(resp.headers.get("Content-Encoding"), url)
    digest = hashlib.sha256()
    head, raw, size = b"", 0, 0
    bar = _progress(expected, desc)
    try:
        # read1: return what one socket read brings, so progress is counted as it arrives
        while chunk := resp.read1(_CHUNK):
            raw += len(chunk)
            watchdog.received = raw
            for data in _decoded(decoder, chunk):
                if len(head) < _SNIFF:
                    head += data[: _SNIFF - len(head)]
                    if len(head) == _SNIFF:
                        _refuse_markup(url, head, expected or raw, content_type)
                out.write(data)
                digest.update(data)
                size += len(data)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if watchdog.stalled:
        raise TransientError(watchdog.stalled)
    if expected is not None and raw != expected:
        raise TransientError(f"the connection closed after {raw} of {expected} bytes")
    if decoder is not None and not decoder.eof:
        raise TransientError(f"the {resp.headers.get('Content-Encoding')} body ended early")
    _refuse_markup(url, head, size, content_type)
    return Fetched(resp.geturl(), digest.hexdigest(), size, content_type)


def fetch(url: str, out_path: Path, *, timeout: float, min_speed: float, desc: str) -> Fetched:
    """Stream ``url`` into ``out_path``.

    Raises:
        TransientError: worth retrying.
        HostNotFound: the host name does not resolve.
        PretrainedUnavailableError: an answer that retrying will not change (HTTP 4xx, an HTML
            page, an unknown Content-Encoding).
    """
    request = urllib.request.Request(
        url, headers={"User-Agent": "audiozoo", "Accept-Encoding": "identity"}
    )
    with _Watchdog(timeout, min_speed) as watchdog:
        opener = urllib.request.build_opener(
            watchdog.handler(urllib.request.HTTPHandler),
            watchdog.handler(urllib.request.HTTPSHandler),
        )
        try:
            with opener.open(request, timeout=timeout) as resp, open(out_path, "wb") as out:
                return _stream(resp, out, watchdog, url, desc)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code in (408, 429):
                raise TransientError(f"HTTP {exc.code} {exc.reason}") from None
            raise PretrainedUnavailableError(
                f"could not download {url}: HTTP {exc.code} {exc.reason}"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            # IncompleteRead (a dropped connection) is an HTTPException; timeouts are OSErrors
            if watchdog.stalled:
                raise TransientError(watchdog.stalled) from None
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, socket.gaierror):
                host = urlsplit(url).hostname
                raise HostNotFound(f"cannot resolve the host name {host!r} ({reason})") from None
            if urlsplit(url).scheme == "file" and isinstance(
                reason, (FileNotFoundError, PermissionError, IsADirectoryError)
            ):  # a local mirror's missing file does not appear by retrying
                raise PretrainedUnavailableError(
                    f"could not read {url}: {reason.strerror or reason}"
                ) from None
            raise TransientError(f"{type(reason).__name__}: {reason}") from None
