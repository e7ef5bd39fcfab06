"""A loopback HTTP server that serves files the way GitHub releases and the Hugging Face Hub do.

- ``/gh/<path>``: GitHub-release-like files (GET), set with ``server.files[path] = bytes``.
  Point audiozoo at it with ``AUDIOZOO_URL_REWRITE=https://github.com/=<server.url>/gh/``.
- ``/hf/<org>/<repo>/resolve/<revision>/<file>``: Hub-like files, set with
  ``server.hub[("org/repo", "file")] = bytes``. HEAD answers with the headers
  ``huggingface_hub.hf_hub_download`` reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``),
  GET with the bytes. Point huggingface_hub at it with ``HF_ENDPOINT=<server.url>/hf``.
- Paths in ``server.drop`` announce their full ``Content-Length`` but close the connection
  after half of the body (a dropped download).
- ``server.drip[path] = (nbytes, seconds)`` sends the body ``nbytes`` at a time, one write every
  ``seconds`` (a stalled or slow server); the loop ends when the client goes away, the body is
  sent, or the server shuts down.
- ``server.headers[path] = {name: value}`` adds or replaces response headers (``Content-Type``,
  ``Content-Encoding``, ...).
- Every request is recorded in ``server.requests`` as ``(method, path)``.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hub: dict[tuple[str, str], bytes] = {}
        self.drop: set[str] = set()
        self.drip: dict[str, tuple[int, float]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self._closing = threading.Event()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append((self.command, path))
                data = server._lookup(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.end_headers()
                    return
                self.send_response(200)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(data)),
                    "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                    "X-Repo-Commit": COMMIT,
                    **server.headers.get(path, {}),
                }
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if not body:
                    return
                if path in server.drip:
                    step, pause = server.drip[path]
                    for start in range(0, len(data), step):
                        if server._closing.wait(pause):
                            return
                        try:
                            self.wfile.write(data[start : start + step])
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            return
                    return
                if path in server.drop:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _lookup(self, path: str) -> bytes | None:
        if path.startswith("/gh/"):
            return self.files.get(path[len("/gh/") :])
        if path.startswith("/hf/"):
            parts = path[len("/hf/") :].split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                return self.hub.get((f"{parts[0]}/{parts[1]}", "/".join(parts[4:])))
        return None

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
