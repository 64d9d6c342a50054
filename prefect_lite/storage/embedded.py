"""The embedded default Redis.

With no ``PREFECT_LITE_REDIS_URL`` the project runs its own ``redis-server`` (found by
``redis_binary.find_redis_server``).

Everything lives in ``<PREFECT_LITE_HOME>/redis/``: ``redis.conf`` (written by us),
``redis.pid``, ``redis.log``, the append-only file (the persistence; RDB snapshots are
off), ``redis.sock`` and ``url`` (the address other processes read).

Private to its user: the directory is forced to 0700 and every file in it to 0600 at each
start (files made earlier with other modes included), and the server runs with umask 077.
It listens on a unix socket (mode 700, no TCP): ``redis/redis.sock`` when that path fits
in a socket address, else ``redis.sock`` in a short private directory
(``private_files.runtime_dir``: 0700, per user and home, under ``$XDG_RUNTIME_DIR`` or
the temp directory). Only if no such directory can be had does it listen on ``127.0.0.1``
and a free port, and then with ``requirepass`` set to a generated password that only the
0600 ``url`` file holds - never without a password, never on a public interface.

Lifecycle: the server is a daemon that outlives the process that started it, so CLI
calls, workers, schedulers and flows on this machine share one server and one data set.
The first process that needs it starts it; every later one finds it through ``url`` and
``redis.pid`` (alive and answering PING) and reuses it. Starting happens under an
exclusive ``flock`` on ``redis/lock``, so processes racing to start make one server, and
files left by a dead server are cleaned up before a new one starts on the same data.
The server keeps running until ``EmbeddedRedis(home).stop()`` (the CLI's stop command).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from prefect_lite.exceptions import ConfigurationError, StoreUnavailable, one_line_when_uncaught
from prefect_lite.storage.private_files import (
    SOCKET_NAME,
    ensure_private_dir,
    fits,
    make_private,
    runtime_dir,
    write_private,
)
from prefect_lite.storage.redis_binary import BINARY_ENV, find_redis_server

if TYPE_CHECKING:
    from prefect_lite.settings import Settings

START_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.01
__all__ = ["BINARY_ENV", "EmbeddedRedis", "ensure_embedded", "find_redis_server"]


class EmbeddedRedis:
    """The embedded redis-server of one ``PREFECT_LITE_HOME``."""

    def __init__(
        self,
        home: Path,
        *,
        find_binary: Callable[[], str] = find_redis_server,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.home = Path(home)
        self.dir = self.home / "redis"
        self.config_path = self.dir / "redis.conf"
        self.pid_path = self.dir / "redis.pid"
        self.log_path = self.dir / "redis.log"
        self.socket_path = self.dir / SOCKET_NAME
        if not fits(self.socket_path):  # a long home: a short private directory instead
            self.socket_path = runtime_dir(self.home) / SOCKET_NAME
        self.url_path = self.dir / "url"
        self.lock_path = self.dir / "lock"
        self._find_binary = find_binary
        self._start_timeout = start_timeout

    # -- queries
    def url(self) -> str | None:
        """URL of the running server, or None if it is not running (or not answering)."""
        url = _read(self.url_path)
        pid = self._pidfile_pid()
        if url and pid is not None and _probe(url) == pid:
            return url
        return None

    def pid(self) -> int | None:
        """Process id of the running server, or None."""
        return self._pidfile_pid() if self.url() else None

    def is_running(self) -> bool:
        return self.url() is not None

    # -- start / stop
    def ensure_running(self) -> str:
        """URL of the server, starting one if none is running."""
        url = self.url()
        if url:
            return url
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            url = self.url()
            if url:
                return url
            pid = self._pidfile_pid()
            if pid is not None and _is_redis_process(pid):
                url = _read(self.url_path)
                if url:  # started, not answering yet (e.g. still loading its data)
                    if self._wait_ready(url, pid) is not None:
                        return url
                    raise StoreUnavailable(
                        f"The embedded redis-server (pid {pid}) in {self.dir} is running but "
                        f"does not answer; see {self.log_path}."
                    )
                if not self._terminate(pid, time.monotonic() + self._start_timeout):
                    raise StoreUnavailable(
                        f"The embedded redis-server (pid {pid}) in {self.dir} lost its url "
                        "file and does not stop on SIGTERM."
                    )
            previous_url = _read(self.url_path)
            self._remove_runtime_files()
            return self._start(previous_url)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server (SHUTDOWN, else SIGTERM), remove its runtime files; True if stopped."""
        if not self.dir.is_dir():
            return True
        deadline = time.monotonic() + timeout
        with self._locked():
            pid = self._pidfile_pid()
            if pid is not None and _is_redis_process(pid):
                url = _read(self.url_path)
                if url and _probe(url) == pid:
                    with contextlib.suppress(redis.RedisError), _client(url) as client:
                        client.shutdown()
                    _wait_until(lambda: not _alive(pid), time.monotonic() + timeout / 2)
                if not self._terminate(pid, deadline):
                    return False
            self._remove_runtime_files()
        return True

    # -- internals
    def _start(self, previous_url: str | None) -> str:
        binary = self._find_binary()
        failure = ""
        make_private(self.dir)  # also what an older version or another umask left
        for _attempt in range(3):
            url, listen = self._listen_config(previous_url)
            previous_url = None
            write_private(self.config_path, self._config_text(listen))
            write_private(self.url_path, url + "\n")
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                launched = subprocess.run(
                    [binary, str(self.config_path)],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=self._start_timeout,
                    check=False,
                    umask=0o077,  # the AOF, log and any dump are born 0600
                )
            except (OSError, subprocess.SubprocessError) as exc:
                self._remove_runtime_files()
                raise StoreUnavailable(f"Could not run {binary}: {exc}.") from exc
            if launched.returncode != 0:
                self._remove_runtime_files()
                raise StoreUnavailable(
                    f"The embedded Redis ({binary}) refused to start: {_one_line(launched.stderr)}"
                )
            if self._wait_ready(url, None, log_offset) is not None:
                return url
            failure = _one_line(self._log_since(log_offset)[-400:].encode())
            self._remove_runtime_files()
            if "Address already in use" not in failure:  # a TCP port race: try another port
                break
        raise StoreUnavailable(
            f"The embedded redis-server in {self.dir} did not start: {failure} "
            f"(log: {self.log_path})."
        )

    def _wait_ready(self, url: str, pid: int | None, log_offset: int = 0) -> int | None:
        """Wait until the server at ``url`` answers; its pid, or None if it died/timed out."""
        deadline = time.monotonic() + self._start_timeout
        while True:
            current = self._pidfile_pid() if pid is None else pid
            if current is not None and _probe(url) == current:
                return current
            if pid is None:  # just launched: the daemon's pid is in its first log lines
                found = re.search(r"pid=(\d+), just started", self._log_since(log_offset))
                pid = int(found.group(1)) if found else None
            if (pid is not None and not _alive(pid)) or time.monotonic() > deadline:
                return None
            time.sleep(POLL_SECONDS)

    def _listen_config(self, previous_url: str | None) -> tuple[str, list[str]]:
        """A private unix socket; TCP on loopback only with a generated password."""
        sock = str(self.socket_path)
        if self.socket_path.parent == self.dir or ensure_private_dir(self.socket_path.parent):
            url = f"unix://{quote(sock)}?db=0"
            return url, [f"unixsocket {_quote(sock)}", "unixsocketperm 700", "port 0"]
        port = _free_port(previous_url)
        password = secrets.token_urlsafe(32)
        listen = ["bind 127.0.0.1", f"port {port}", f"requirepass {_quote(password)}"]
        return f"redis://:{password}@127.0.0.1:{port}/0", listen

    def _config_text(self, listen: list[str]) -> str:
        lines = [
            "# Written by prefect_lite for its embedded Redis; rewritten on every start.",
            "daemonize yes",
            f"dir {_quote(str(self.dir))}",
            f"pidfile {_quote(str(self.pid_path))}",
            f"logfile {_quote(str(self.log_path))}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "protected-mode yes",
            *listen,
        ]
        return "\n".join(lines) + "\n"

    def _terminate(self, pid: int, deadline: float) -> bool:
        """SIGTERM a server process and wait for it to exit; True if it is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        return _wait_until(lambda: not _alive(pid), deadline)

    def _remove_runtime_files(self) -> None:
        for path in (self.pid_path, self.socket_path, self.url_path):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()

    def _pidfile_pid(self) -> int | None:
        text = _read(self.pid_path)
        return int(text) if text and text.isdigit() else None

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


def ensure_embedded(settings: Settings) -> str:
    """URL of the embedded Redis of ``settings.home``, started if needed. A failure is one
    line (what went wrong, what to do), also when a script does not catch it."""
    try:
        return EmbeddedRedis(settings.home).ensure_running()
    except (ConfigurationError, StoreUnavailable) as exc:
        raise one_line_when_uncaught(exc) from None


# -- helpers
def _client(url: str) -> redis.Redis:
    """A one-connection client that fails fast (no retries): for probing and SHUTDOWN."""
    options = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
    no_retry = Retry(NoBackoff(), 0)
    return redis.Redis.from_url(url, decode_responses=True, retry=no_retry, **options)


def _probe(url: str) -> int | None:
    """Process id of the Redis server answering PING at ``url``, or None."""
    try:
        with _client(url) as client, client.pipeline(transaction=False) as pipe:
            pipe.ping()
            pipe.info("server")
            _, info = pipe.execute()
    except (redis.RedisError, OSError, ValueError):
        return None
    pid = info.get("process_id")
    return int(pid) if pid is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not collected it yet
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _is_redis_process(pid: int) -> bool:
    """Alive and (where /proc tells) a redis-server, not a process that reused the pid."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # it just exited, or this system has no /proc
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return b"redis-server" in cmdline


def _wait_until(predicate: Callable[[], bool], deadline: float) -> bool:
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(POLL_SECONDS)
    return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _quote(value: str) -> str:
    """A redis.conf string argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(raw: bytes) -> str:
    return " ".join(raw.decode(errors="replace").split()) or "no output"


def _free_port(previous_url: str | None) -> int:
    """A free loopback TCP port: the previous server's if possible, so clients' URLs hold."""
    preferred = None
    if previous_url and previous_url.startswith("redis://"):
        with contextlib.suppress(ValueError):
            preferred = urlsplit(previous_url).port
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server does
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise StoreUnavailable("No free TCP port on 127.0.0.1 for the embedded Redis.")
