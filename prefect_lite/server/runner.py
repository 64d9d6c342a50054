"""``server start``: the store, the API server and its services, one process.

Steps: make sure Redis answers (starting the embedded server when none is configured),
bind the listening socket (a taken port is one clear error), serve the app with uvicorn
until SIGINT/SIGTERM, then shut down in reverse: requests drain, services stop (app
lifespan), and the embedded Redis stops if this command started it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn

from prefect_lite.exceptions import ConfigurationError, UserError
from prefect_lite.server.app import create_app
from prefect_lite.settings import Settings

Echo = Callable[[str], None]


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a graceful shutdown, so
    the caller's clean-up (stopping the embedded Redis) still runs after SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``UserError`` if it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def display_url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def services_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("scheduler.service") is not None
    except ModuleNotFoundError:
        return False


class ServerRunner:
    def __init__(self, settings: Settings, host: str, port: int, *, services: bool = True) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.services = services

    def run(self, echo: Echo) -> None:
        stop_embedded = self._start_store(echo)
        try:
            sock = bind_socket(self.host, self.port)
            with contextlib.closing(sock):
                self._serve(sock, echo)
        finally:
            if stop_embedded is not None:
                stop_embedded()
                echo("Embedded Redis stopped.")

    def _start_store(self, echo: Echo) -> Callable[[], object] | None:
        """Make sure Redis answers; a stopper for the embedded server if we started it."""
        from prefect_lite.storage.connection import check_connection, get_redis, mask_url
        from prefect_lite.storage.embedded import EmbeddedRedis

        stopper = None
        if self.settings.redis_url:
            echo(f"Redis: {mask_url(self.settings.redis_url)} (PREFECT_LITE_REDIS_URL)")
        else:
            embedded = EmbeddedRedis(self.settings.home)
            was_running = embedded.is_running()
            url = embedded.ensure_running()
            if was_running:
                echo(f"Redis: embedded server already running at {mask_url(url)}")
            else:
                echo(f"Redis: started the embedded server at {mask_url(url)}")
                stopper = embedded.stop
        try:
            check_connection(get_redis())
        except BaseException:
            if stopper is not None:
                stopper()
            raise
        return stopper

    def _serve(self, sock: socket.socket, echo: Echo) -> None:
        app = create_app(self.settings, run_services=self.services)
        config = uvicorn.Config(
            app,
            log_level=self.settings.logging_level.lower(),
            access_log=False,
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        server = _Server(config)
        base = display_url(sock, self.host)
        if not self.services:
            echo("Scheduler: off (--no-services)")
        elif services_available():
            echo("Scheduler: running in this process")
        else:
            echo("Scheduler: not installed; schedules will not run here")
        echo(f"API: {base}/api  (docs: {base}/api/docs)")
        echo("Use it from other shells and machines with:")
        echo(f"  export PREFECT_LITE_API_URL={base}/api")
        server.run(sockets=[sock])
        if not server.started:
            raise UserError("the API server did not start; see the log above")
