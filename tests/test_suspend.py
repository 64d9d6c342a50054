"""suspend_flow_run: a deployment run ends its process, frees its slot, and is run again
from the top once resumed, reusing its completed tasks' results.

Here each execution is what a worker does with a claimed run, step by step:
``run_flow(flow, flow_run_id=...)`` in a fresh process, with the real pool machinery for
admission and claims (``admission.submit``, ``delivery.claim``). test_suspend_worker.py
runs the same story with real worker and scheduler processes.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_lite import _time, flow, suspend_flow_run, task
from prefect_lite.client import get_client
from prefect_lite.engine.flow_engine import run_flow
from prefect_lite.exceptions import FlowPauseTimeout, Pause
from prefect_lite.flow_runs import resume_flow_run
from prefect_lite.orchestration import admission
from prefect_lite.schemas import FlowRun
from prefect_lite.server import create_app
from prefect_lite.settings import get_settings
from prefect_lite.states import Pending, Running, Scheduled, StateType, Suspended
from prefect_lite.storage import delivery, keys
from prefect_lite.storage.connection import get_redis
from tests._live_server import serve
from tests.helpers import run_python

REVIEWED_FLOW = """
import sys
from prefect_lite import flow, task, suspend_flow_run
from prefect_lite.cache_policies import DEFAULT
from prefect_lite.engine.flow_engine import run_flow
from prefect_lite.exceptions import Pause
from prefect_lite.input import RunInput

class Review(RunInput):
    approved: bool
    reviewer: str = "nobody"

@task(persist_result=True, cache_policy=DEFAULT)
def expensive(n: int, log: str) -> int:
    with open(log, "a") as f:
        f.write(f"expensive {n}\\n")
    return n * 10

@flow(name="reviewed")
def reviewed(log: str) -> dict:
    values = [expensive(n, log) for n in (1, 2)]
    review = suspend_flow_run(wait_for_input=Review, timeout=600)
    with open(log, "a") as f:
        f.write("after review\\n")
    return {"values": values, "approved": review.approved, "reviewer": review.reviewer}

try:
    print("RESULT", run_flow(reviewed, flow_run_id="%(run_id)s"))
except Pause as exc:
    print("SUSPENDED", exc.state.name)
"""


def _claim(pool: str) -> delivery.Claimed | None:
    """What a worker of ``pool`` does to take the next admitted run."""
    now = _time.timestamp()
    pending = json.dumps(Pending().to_record())
    return delivery.claim(pool, ["default"], uuid.uuid4().hex, now + 30, pending, now)


def _execute(run_id: uuid.UUID) -> str:
    """Run the claimed flow run in a fresh process, as a worker would."""
    done = run_python(REVIEWED_FLOW % {"run_id": run_id})
    assert done.returncode == 0, done.stderr
    return done.stdout


def _read(run_id: uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def test_a_suspended_deployment_run_resumed_over_the_api_reruns_without_repeating_tasks(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.log"
    with get_client(sync_client=True) as client:
        client.create_work_pool("reviews", concurrency_limit=1)
        deployment = client.create_deployment("reviewed", "prod", work_pool_name="reviews")
        run = client.create_flow_run(
            "reviewed",
            deployment_id=deployment.id,
            work_pool_name="reviews",
            parameters={"log": str(log)},
            state=Scheduled(scheduled_time=_time.now()),
        )
        assert admission.submit([str(run.id)]).admitted == [str(run.id)]
        claimed = _claim("reviews")
        assert claimed is not None and claimed.run_id == str(run.id)

        assert "SUSPENDED Suspended" in _execute(run.id)
        suspended = client.read_flow_run(run.id)
        assert suspended.state is not None and suspended.state.name == "Suspended"
        assert suspended.state.state_details.run_input_keyset is not None
        assert log.read_text().splitlines() == ["expensive 1", "expensive 2"]
        # the process ended and its pool slot is free for another run
        assert client.read_work_pool_status("reviews").active == 0
        assert get_redis().zcard(keys.slot_pool("reviews")) == 0

        with serve(create_app(get_settings())) as base:
            url = f"{base}/api/flow_runs/{run.id}/resume"
            bad = httpx.post(url, json={"run_input": {"approved": "perhaps"}})
            assert bad.status_code == 422
            assert "'approved'" in bad.json()["detail"]
            assert client.read_flow_run(run.id).state_name == "Suspended"
            good = httpx.post(url, json={"run_input": {"approved": True, "reviewer": "ana"}})
            assert good.status_code == 200, good.text
            assert good.json()["status"] == "ACCEPT"

        rescheduled = client.read_flow_run(run.id)
        assert (rescheduled.state_type, rescheduled.state_name) == (
            StateType.SCHEDULED,
            "AwaitingRetry",
        )
        assert admission.submit([str(run.id)]).admitted == [str(run.id)]
        assert _claim("reviews") is not None

        out = _execute(run.id)
        assert "RESULT {'values': [10, 20], 'approved': True, 'reviewer': 'ana'}" in out
        assert log.read_text().splitlines() == ["expensive 1", "expensive 2", "after review"]
        final = client.read_flow_run(run.id)
        assert final.state_type is StateType.COMPLETED
        assert final.run_count == 2
        names = [s.name for s in client.read_flow_run_states(run.id)]
        assert names == [
            "Scheduled",
            "Pending",
            "Running",
            "Suspended",
            "AwaitingRetry",
            "Pending",
            "Running",
            "Completed",
        ]


@task
def _double(n: int) -> int:
    return 2 * n


@flow(name="local-suspender")
def local_suspender() -> int:
    _double(1)
    suspend_flow_run()
    return 1


def test_suspending_needs_a_deployment_and_a_top_level_flow() -> None:
    state = run_flow(local_suspender, return_type="state")
    assert state.type is StateType.FAILED
    assert "Cannot suspend flows without a deployment" in (state.message or "")

    @flow(name="parent")
    def parent() -> int:
        return local_suspender()

    state = run_flow(parent, return_type="state")
    assert state.type is StateType.FAILED
    with pytest.raises(RuntimeError, match="Cannot suspend subflows"):
        state.result()

    @task
    def suspending_task() -> None:
        suspend_flow_run()

    @flow(name="task-suspender")
    def task_suspender() -> None:
        suspending_task()

    state = run_flow(task_suspender, return_type="state")
    with pytest.raises(RuntimeError, match="Cannot suspend task runs"):
        state.result()
    with pytest.raises(RuntimeError, match="only be suspended from within a flow run"):
        suspend_flow_run()


def _deployment_run(client: Any, name: str) -> FlowRun:
    deployment = client.create_deployment(name, "prod")
    return client.create_flow_run(name, deployment_id=deployment.id, state=Pending())


def test_suspend_raises_pause_in_process_and_the_run_is_not_failed() -> None:
    @flow(name="in-process")
    def in_process() -> str:
        suspend_flow_run(key="review")
        return "after"

    with get_client(sync_client=True) as client:
        run = _deployment_run(client, "in-process")
        with pytest.raises(Pause) as raised:
            run_flow(in_process, flow_run_id=run.id)
        assert raised.value.state is not None and raised.value.state.name == "Suspended"
        assert client.read_flow_run(run.id).state_name == "Suspended"
        resume_flow_run(run.id)
        client.set_flow_run_state(run.id, Pending())
        assert run_flow(in_process, flow_run_id=run.id) == "after"
        assert client.read_flow_run(run.id).state_type is StateType.COMPLETED


def test_a_suspension_that_timed_out_cannot_be_resumed() -> None:
    with get_client(sync_client=True) as client:
        run = _deployment_run(client, "expiring")
        client.set_flow_run_state(run.id, Running())
        expired = Suspended(pause_expiration_time=_time.now() - timedelta(seconds=1))
        answer = client.pause_flow_run(run.id, expired)
        assert answer.status == "ACCEPT"
        with pytest.raises(FlowPauseTimeout, match="suspend timed out"):
            resume_flow_run(run.id)
        final = client.read_flow_run(run.id).state
    assert final is not None and final.type is StateType.FAILED
    assert final.message == "The flow was suspended and never resumed."
