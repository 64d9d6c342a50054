"""A dedicated redis-server for tests that stop and restart it (its data in an AOF file,
fsynced on every write, so a clean stop and a restart lose nothing)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite.settings import reload_settings
from prefect_lite.storage import connection
from prefect_lite.storage.embedded import find_redis_server
from tests.conftest import _free_port
from tests.helpers import wait_for


class RestartableRedis:
    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, timeout=20, message="the dedicated redis-server did not start")

    def stop(self) -> None:
        """A clean shutdown (the AOF is on disk), waited for."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def answers(self) -> bool:
        try:
            with redis.Redis.from_url(self.url, socket_connect_timeout=1) as r:
                return bool(r.ping())
        except redis.ConnectionError:
            return False


@contextmanager
def restartable_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """This process (and the processes it starts) use a dedicated, restartable server."""
    server = RestartableRedis(tmp_path / "redis")
    monkeypatch.setenv("PREFECT_LITE_REDIS_URL", server.url)
    reload_settings()
    connection.reset_connections()
    try:
        server.start()
        yield server
    finally:
        connection.reset_connections()
        server.kill()
