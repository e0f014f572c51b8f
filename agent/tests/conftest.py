"""Shared fixtures: a real local upload server, and a fake psutil for what Linux cannot give."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from relevo_testing import ports


@dataclass
class Reply:
    """One scripted answer of the upload server."""

    status: int = 201
    body: str = '{"status": "stored"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class UploadServer:
    """A real HTTP server on loopback that records every upload it is sent.

    Replies are taken from ``script`` in order; when it is empty the server
    answers 201. The agent's sender is exercised over a real socket, with real
    gzip bodies and headers, never through a mock of requests.
    """

    def __init__(self, port: int = 0) -> None:
        self.script: list[Reply] = []
        self.received: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with owner.lock:
                    reply = owner.script.pop(0) if owner.script else Reply()
                    owner.requests.append({"path": self.path, "headers": dict(self.headers), "at": time.monotonic()})
                if reply.delay:
                    time.sleep(reply.delay)
                if 200 <= reply.status < 300:
                    body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                    with owner.lock:
                        owner.received.append(json.loads(body))
                payload = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def snapshot_ids(self) -> list[str]:
        """Ids of the snapshots accepted so far, in arrival order."""
        return [s["snapshot_id"] for s in self.received]


@pytest.fixture
def upload_server():
    server = UploadServer()
    yield server
    server.close()


@pytest.fixture
def free_port() -> int:
    """A loopback port with nothing listening (the "server down" case)."""
    return ports.free_port()
