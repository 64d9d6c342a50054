"""A deployment's ``start_timeout_seconds``: a run nobody starts ends TimedOut, saying why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite import _time
from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.storage import keys
from scheduler.service import Scheduler
from tests._workers import deploy, scheduler_process, trigger, wait_final
from tests.helpers import REPO_ROOT

DEADLINE_MARGIN = 1.0 + 2.0  # the bound (1 s) and a loaded machine


@pytest.fixture
def client() -> Iterator[Any]:
    with get_client(sync_client=True) as c:
        yield c


def test_a_run_nobody_starts_times_out_at_its_deadline(
    client: Any, tmp_path: Path, redis_client: redis.Redis
) -> None:
    client.create_work_pool("pool", concurrency_limit=1)
    dep = deploy("hello", start_timeout_seconds=2.0)
    assert client.read_deployment(dep.id).start_timeout_seconds == 2.0
    with scheduler_process(tmp_path):
        run = trigger(dep)  # no worker serves the pool
        done = wait_final(run.id, timeout=2.0 + DEADLINE_MARGIN)
    assert (done.state_name, done.state.type.value) == ("TimedOut", "FAILED")
    assert "start timeout (2 s" in (done.state.message or "")
    ended = done.state.timestamp.timestamp()
    assert ended >= run.expected_start_time.timestamp() + 2.0  # never before the deadline
    assert redis_client.zcard(keys.slot_pool("pool")) == 0  # its slot is free again


def test_only_runs_past_their_own_deadline_time_out(client: Any) -> None:
    client.create_work_pool("pool")
    short = deploy("hello", name="short", start_timeout_seconds=60.0)
    unlimited = deploy("hello", name="unlimited")
    runs = [trigger(short), trigger(unlimited)]
    scheduler = Scheduler()
    now = _time.now()
    assert scheduler.tick(now + timedelta(seconds=30)).timed_out == 0
    assert scheduler.tick(now + timedelta(seconds=3600)).timed_out == 1
    states = [client.read_flow_run(r.id).state_name for r in runs]
    assert states[0] == "TimedOut" and states[1] != "TimedOut"


def test_start_timeout_from_the_cli_and_yaml(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    entry = f"{REPO_ROOT}/tests/fixtures/worker_flows.py:hello"
    code = run_cli(
        cli, ["deploy", entry, "--name", "cli", "--pool", "pool", "--start-timeout", "90"]
    )
    assert code == 0
    assert client.read_deployment_by_name("hello/cli").start_timeout_seconds == 90.0
    assert (
        run_cli(cli, ["deploy", entry, "--name", "bad", "--pool", "pool", "--start-timeout", "0"])
        == 2
    )
