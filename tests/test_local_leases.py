"""A flow run in a plain Python process holds a lease: its death is noticed and settled.

Real processes and signals. Bounds are behaviour checks with a margin.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite.client import get_client
from prefect_lite.storage import keys
from tests._workers import scheduler_process, wait_final
from tests.helpers import spawn_python, wait_for

GONE_BOUND = 3.0
CANCEL_BOUND = 10.0
MARGIN = 4.0

LOCAL_FLOW = """
import time
from prefect_lite import flow

@flow(name="stays-up")
def stays_up() -> None:
    time.sleep(300)

stays_up()
"""


@pytest.fixture
def client() -> Iterator[Any]:
    with get_client(sync_client=True) as c:
        yield c


@pytest.fixture
def local_run(client: Any) -> Iterator[tuple[Any, Any]]:
    """A local flow run, Running in its own process: (the process, the run)."""
    proc = spawn_python(LOCAL_FLOW)

    def running() -> Any:
        found = client.read_flow_runs(flow_name="stays-up", states=["RUNNING"])
        return found[0] if found else None

    try:
        yield proc, wait_for(running, timeout=60, message="the local run never ran")
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.communicate()


def test_a_local_run_holds_a_lease_and_renews_it(
    local_run: tuple[Any, Any], redis_client: redis.Redis
) -> None:
    _proc, run = local_run
    rid = str(run.id)
    token = redis_client.hget(keys.flow_run(rid), "lease")
    assert token and "." in token  # named after its process
    owner = token.partition(".")[0]
    names = {c.get("name") for c in redis_client.client_list()}
    assert keys.owner_client_name(owner) in names  # its connections carry the name
    first = redis_client.zscore(keys.leases(), rid)
    assert first is not None
    wait_for(lambda: (redis_client.zscore(keys.leases(), rid) or 0) > first, timeout=10)


def test_a_killed_local_process_s_run_is_settled_at_once(
    local_run: tuple[Any, Any], tmp_path: Path
) -> None:
    proc, run = local_run
    with scheduler_process(tmp_path):
        proc.kill()
        done = wait_final(run.id, timeout=GONE_BOUND + MARGIN + 5)  # + the scheduler's start
    assert done.state_name == "Crashed"  # no deployment: nothing would retry it
    assert "its process is gone" in (done.state.message or "")


def test_cancelling_a_run_whose_process_is_unresponsive_ends_cancelled(
    local_run: tuple[Any, Any], client: Any, tmp_path: Path
) -> None:
    """A frozen process (SIGSTOP) neither renews nor answers: its run being cancelled ends
    Cancelled once the lease expires, not Cancelling forever."""
    proc, run = local_run
    with scheduler_process(tmp_path):
        proc.send_signal(signal.SIGSTOP)
        client.cancel_flow_run(run.id)
        done = wait_final(run.id, timeout=CANCEL_BOUND + MARGIN)
    assert done.state_name == "Cancelled"
