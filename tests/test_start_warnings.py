"""Runs that cannot start say so at once: no worker on the pool, or the pool/queue paused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.deployments import run_deployment
from tests._workers import deploy, worker_process


@pytest.fixture
def client() -> Iterator[Any]:
    with get_client(sync_client=True) as c:
        yield c


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "prefect_lite.deployments"]


def test_run_deployment_warns_when_no_worker_serves_the_pool(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client.create_work_pool("pool")
    dep = deploy("hello")
    with caplog.at_level("WARNING", logger="prefect_lite.deployments"):
        run = run_deployment(dep.id, timeout=0.5)
    assert run.state_name == "Scheduled"
    [warning] = _warnings(caplog)
    assert "no online worker serves work pool 'pool'" in warning
    assert "prefect-lite worker start --pool pool" in warning


def test_run_deployment_warns_when_the_pool_or_queue_is_paused(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client.create_work_pool("pool", paused=True)
    dep = deploy("hello")
    with caplog.at_level("WARNING", logger="prefect_lite.deployments"):
        run_deployment(dep.id, timeout=0.2)
    assert "work pool 'pool' is paused" in _warnings(caplog)[-1]
    client.update_work_pool("pool", paused=False)
    client.update_work_queue("pool", "default", paused=True)
    with caplog.at_level("WARNING", logger="prefect_lite.deployments"):
        run_deployment(dep.id, timeout=0.2)
    assert "work queue 'default' of pool 'pool' is paused" in _warnings(caplog)[-1]


def test_no_warning_when_a_worker_serves_the_run(
    client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client.create_work_pool("pool")
    dep = deploy("hello")
    with worker_process(tmp_path), caplog.at_level("WARNING", logger="prefect_lite.deployments"):
        assert run_deployment(dep.id, timeout=60).state_name == "Completed"
    assert _warnings(caplog) == []


def test_deployment_run_watch_prints_the_warning(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_work_pool("pool")
    deploy("hello")
    code = run_cli(cli, ["deployment", "run", "hello/test", "--watch", "--timeout", "0.5"])
    err = capsys.readouterr().err
    assert code == 1  # still Scheduled when the watch gave up
    assert "Warning: no online worker serves work pool 'pool' (queue 'default')" in err
