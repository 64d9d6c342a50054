"""``server start``: the store, the API server and its services, one process.

Steps: refuse to listen beyond loopback without an API key (unless told
``--insecure-no-auth``), make sure Redis answers (starting the embedded server when none
is configured), bind the listening socket (a taken port is one clear error), serve the
app with uvicorn until SIGINT/SIGTERM, then shut down in reverse: requests drain,
services stop (app lifespan), and the embedded Redis stops if this command started it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn

from prefect_lite.exceptions import ConfigurationError, UserError
from prefect_lite.server.app import create_app
from prefect_lite.server.auth import KeyRing, roles_summary
from prefect_lite.settings import Settings

Echo = Callable[[str], None]

NO_KEY_REFUSAL = (
    "refusing to listen on {host} without an API key: anyone who reaches the port could "
    "run code on your workers. Set PREFECT_LITE_API_KEYS (make a key with `prefect-lite "
    "api-key generate --role admin`), listen on 127.0.0.1, or pass --insecure-no-auth"
)
INSECURE_WARNING = (
    "WARNING: --insecure-no-auth: the API on {host} has NO AUTHENTICATION. Anyone who "
    "reaches this port can create deployments and run code on your workers."
)
AUTH_OFF = (
    "Auth: off (no API key; loopback only). Every local user can use the API; set "
    "PREFECT_LITE_API_KEYS to require keys."
)


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


def is_loopback(host: str) -> bool:
    """True if every address ``host`` stands for is a loopback address ("" and 0.0.0.0,
    all interfaces, are not)."""
    try:
        infos = socket.getaddrinfo(
            host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError):
        return False
    try:
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    except ValueError:
        return False
    return bool(addresses) and all(a.is_loopback for a in addresses)


def check_exposure(host: str, keys: KeyRing, *, insecure_no_auth: bool = False) -> str:
    """The start-up line about auth; ``ConfigurationError`` for a non-loopback ``host``
    without any key, unless ``insecure_no_auth`` (then the line is a loud warning)."""
    if keys:
        return f"Auth: on, {roles_summary(keys)}"
    if is_loopback(host):
        return AUTH_OFF
    if not insecure_no_auth:
        raise ConfigurationError(NO_KEY_REFUSAL.format(host=host or "all interfaces"))
    return INSECURE_WARNING.format(host=host or "all interfaces")


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
    def __init__(
        self,
        settings: Settings,
        host: str,
        port: int,
        *,
        services: bool = True,
        insecure_no_auth: bool = False,
    ) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.services = services
        self.insecure_no_auth = insecure_no_auth

    def run(self, echo: Echo, warn: Echo | None = None) -> None:
        keys = KeyRing.from_settings(self.settings)
        auth_line = check_exposure(self.host, keys, insecure_no_auth=self.insecure_no_auth)
        (warn or echo if auth_line.startswith("WARNING") else echo)(auth_line)
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
        app = create_app(self.settings, run_services=self.services, bound_host=self.host)
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
        echo(f"UI: {base}/")
        echo(f"API: {base}/api  (docs: {base}/api/docs)")
        echo("Use it from other shells and machines with:")
        echo(f"  export PREFECT_LITE_API_URL={base}/api")
        server.run(sockets=[sock])
        if not server.started:
            raise UserError("the API server did not start; see the log above")
