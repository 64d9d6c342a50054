"""Suspend with the real processes: a worker runs the deployment run, which suspends and
frees the worker's slot; resumed through the API, the scheduler admits it again and a
worker runs it from the top, reusing the results of the tasks that had completed."""

from __future__ import annotations

from pathlib import Path

from prefect_lite.client import get_client
from prefect_lite.flow_runs import resume_flow_run
from prefect_lite.states import StateType
from tests._workers import scheduler_process, trigger, wait_final, wait_state, worker_process
from tests.helpers import REPO_ROOT

FLOWS = "tests/fixtures/suspend_flows.py"


def test_a_worker_reruns_a_resumed_suspended_run_without_repeating_tasks(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    with get_client(sync_client=True) as client:
        client.create_work_pool("pool", concurrency_limit=1)
        dep, other = (
            client.create_deployment(
                "reviewed",
                name,
                entrypoint=f"{FLOWS}:reviewed",
                path=str(REPO_ROOT),
                work_pool_name="pool",
            )
            for name in ("first", "other")
        )
        with worker_process(tmp_path), scheduler_process(tmp_path):
            run = trigger(dep, log=str(log))
            wait_state(run.id, "Suspended")
            assert log.read_text().splitlines() == ["expensive 1", "expensive 2"]
            # the suspended run holds no slot: another run of the pool (limit 1) runs now
            second = trigger(other, log=str(tmp_path / "other.log"))
            wait_state(second.id, "Suspended")
            resume_flow_run(run.id, {"approved": True, "reviewer": "ana"})
            done = wait_final(run.id, timeout=60)
        assert done.state_type is StateType.COMPLETED, done.state
        assert done.run_count == 2
        assert log.read_text().splitlines() == [
            "expensive 1",
            "expensive 2",
            "review approved=True by ana total=30",
        ]
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
