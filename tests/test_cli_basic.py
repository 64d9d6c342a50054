"""The CLI skeleton: help, version, config view, one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys

from prefect_lite import __version__
from tests.helpers import python_env


def cli(*args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect_lite", *args],
        env=python_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_and_version() -> None:
    helped = cli("--help")
    assert helped.returncode == 0
    assert "config" in helped.stdout and "flow-run" in helped.stdout
    version = cli("--version")
    assert version.returncode == 0 and __version__ in version.stdout


def test_config_view_shows_values_and_sources_with_secrets_masked() -> None:
    done = cli("config", "view", env={"PREFECT_LITE_API_KEY": "s3cret-value"})
    assert done.returncode == 0, done.stderr
    assert "s3cret-value" not in done.stdout
    lines = {line.split("=")[0].strip(): line for line in done.stdout.splitlines()}
    assert "********" in lines["PREFECT_LITE_API_KEY"] and "(env)" in lines["PREFECT_LITE_API_KEY"]
    assert "(default)" in lines["PREFECT_LITE_LOGGING_LEVEL"]
    assert "(env)" in lines["PREFECT_LITE_REDIS_URL"]


def test_bad_setting_is_one_line() -> None:
    done = cli("config", "view", env={"PREFECT_LITE_LEASE_SECONDS": "-3"})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "lease_seconds" in done.stderr


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_is_one_line() -> None:
    url = f"redis://:hunter2@127.0.0.1:{_unused_port()}/0"
    done = cli("flow-run", "ls", env={"PREFECT_LITE_REDIS_URL": url})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot reach Redis" in done.stderr and "hunter2" not in done.stderr


def test_unknown_run_id_is_one_line() -> None:
    done = cli("flow-run", "inspect", "not-a-uuid")
    assert done.returncode == 1 and "not a flow run id" in done.stderr
    missing = cli("flow-run", "inspect", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "no flow run" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_flow_run_ls_lists_runs_as_json() -> None:
    from prefect_lite.client import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run("listed-flow")
    done = cli("flow-run", "ls", "--json")
    assert done.returncode == 0, done.stderr
    assert str(run.id) in done.stdout
    bad = cli("flow-run", "ls", "--state", "NOPE")
    assert bad.returncode == 1 and "unknown state" in bad.stderr
