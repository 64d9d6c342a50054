"""Shared fixtures.

One real redis-server serves the whole session (loopback TCP, no persistence); every test
starts from an empty Redis, its own ``PREFECT_LITE_HOME`` and ``PREFECT_LITE_REDIS_URL``
pointing at that server, set in ``os.environ`` so subprocesses inherit them.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prefect_lite.engine.scope import close_engine_clients
from prefect_lite.settings import reload_settings
from prefect_lite.storage import connection
from prefect_lite.storage.embedded import find_redis_server
from tests.helpers import kill_redis_servers_under, wait_for


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


def _exited_or_answers(proc: subprocess.Popen[bytes], url: str) -> bool:
    return proc.poll() is not None or _answers(url)


def _start_server(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    for _attempt in range(5):  # another process may grab the port between probe and bind
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--daemonize", "no", "--appendonly", "no", "--save", "", "--protected-mode", "yes",
             "--logfile", str(workdir / "redis.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        atexit.register(_kill, proc)
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(
            functools.partial(_exited_or_answers, proc, url),
            message="the test redis-server did not start",
        )
        if proc.poll() is None:
            return proc, url
        proc.wait()
    raise RuntimeError(f"the test redis-server did not start; see {workdir / 'redis.log'}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's redis-server. At the end, also checks no test left one running."""
    workdir = Path(tempfile.mkdtemp(prefix="prefect-lite-test-redis-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, url = _start_server(find_redis_server(), workdir)
        yield url
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            finally:
                _kill(proc)
        shutil.rmtree(workdir, ignore_errors=True)
        orphans = kill_redis_servers_under(tmp_path_factory.getbasetemp())
    assert not orphans, f"tests left redis-server processes running: {orphans}"


@pytest.fixture(scope="session")
def _admin_client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """This test's ``PREFECT_LITE_HOME``."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _isolated(
    redis_url: str, _admin_client: redis.Redis, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    _admin_client.flushall()
    for name in list(os.environ):
        if name.startswith("PREFECT_LITE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_LITE_REDIS_URL", redis_url)
    monkeypatch.setenv("PREFECT_LITE_HOME", str(home))
    reload_settings()
    connection.reset_connections()
    yield
    connection.reset_connections()
    close_engine_clients()  # HTTP connections to a test's API server, which is gone now
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain text client of the session's server (closed after the test)."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client
