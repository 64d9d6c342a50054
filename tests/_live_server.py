"""A real uvicorn server on a free loopback port, in a background thread of the test."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from prefect_lite.server.runner import bind_socket
from tests.helpers import wait_for


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port>; yields the base URL (no trailing slash)."""
    sock = bind_socket("127.0.0.1", 0)
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), message="server start")
        assert server.started, "the test server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        assert not thread.is_alive(), "the test server did not stop"
