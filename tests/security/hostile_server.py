"""A hostile ``jwks_uri`` / back-channel logout endpoint on 127.0.0.1: a real threaded HTTP
server that trickles bytes, redirects, sends a huge body, and counts what reached it."""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TRICKLE_SECONDS = 20  # longer than any deadline: the old per-read timeout never fired on it
PADDING_BYTES = 1024 * 1024


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.jwks = jwks
        self.hits: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.open_connections = self.most_connections = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_address[1]}{path}"

    def count(self, delta: int) -> None:
        with self.lock:
            self.open_connections += delta
            self.most_connections = max(self.most_connections, self.open_connections)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: HostileServer

    def handle(self) -> None:
        self.server.count(+1)
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what we want it to do
        finally:
            self.server.count(-1)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.hits[self.path] += 1
        routes = {"/jwks": self.jwks, "/padded-jwks": self.padded_jwks, "/redirect": self.redirect,
                  "/trickle": self.trickle, "/declared-huge": self.declared_huge, "/error": self.error}
        routes.get(self.path, self.error)()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.do_GET()

    def jwks(self) -> None:
        self.reply(json.dumps(self.server.jwks).encode())

    def padded_jwks(self) -> None:
        """A valid JWK Set, 1 MiB long, sent without Content-Length (read until the connection closes)."""
        self.reply(json.dumps(self.server.jwks | {"padding": "x" * PADDING_BYTES}).encode(), length=False)

    def declared_huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(100 * PADDING_BYTES))
        self.end_headers()
        self.wfile.write(b"{" * PADDING_BYTES)

    def redirect(self) -> None:
        self.send_response(302)
        self.send_header("Location", "/jwks")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def trickle(self) -> None:
        """A status line, then one header byte every 0.1 s: each read gets a byte, none times out."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        started = time.monotonic()
        while time.monotonic() - started < TRICKLE_SECONDS:
            self.wfile.write(b"X")
            self.wfile.flush()
            time.sleep(0.1)

    def error(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def reply(self, body: bytes, *, length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass
