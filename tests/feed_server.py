"""A local HTTP server that plays the threat feeds: fixtures in their wire
format served on 127.0.0.1 (an ephemeral port), each path with its status,
content type and an optional delay; every request is recorded."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "feeds"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Reply:
    body: bytes
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0
    trickle: float = 0.0        # seconds between the body's bytes


@dataclass
class Request:
    path: str
    headers: dict[str, str]


class FeedServer:
    """serve(path, ...) sets what a path (with its query) answers; an
    unknown path answers 404. Use as a context manager."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[Request] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def serve(self, path: str, body: bytes, status: int = 200,
              content_type: str = "text/plain; charset=utf-8",
              delay: float = 0.0, trickle: float = 0.0) -> None:
        self.replies[path] = Reply(body, status, content_type, delay,
                                   trickle)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Nothing listens on the port afterwards: connections are
        refused."""
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(Request(self.path,
                                               dict(self.headers.items())))
                reply = server.replies.get(self.path) or Reply(
                    b"404 page not found\n", 404)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if not reply.trickle:
                        self.wfile.write(reply.body)
                    for index in range(len(reply.body) if reply.trickle
                                       else 0):
                        self.wfile.write(reply.body[index:index + 1])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass        # the client gave up waiting: the slow case

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def closed_port() -> int:
    """A loopback TCP port nobody listens on: a connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
