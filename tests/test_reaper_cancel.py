"""Crash detection (the reaper, in the scheduler) and cancellation, with real processes.

Bounds are behaviour checks: waiting with a timeout of the bound plus a margin (10 s for a
killed worker's runs, 2 s for a cancel); the distributions are measured in bench/.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite import _time
from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.orchestration.reaper import Reaper
from prefect_lite.states import Cancelling, Completed, Pending, Running
from prefect_lite.storage import keys, leases
from tests._workers import (
    deploy,
    read,
    scheduler_process,
    state_name,
    trigger,
    wait_final,
    worker_process,
)
from tests.helpers import wait_for

CRASH_BOUND = 10.0  # lease 6 s + reaper 2 s + a scheduler loop
CANCEL_BOUND = 2.0
MARGIN = 3.0  # a loaded 2-core machine


@pytest.fixture
def client() -> Any:
    with get_client(sync_client=True) as c:
        yield c


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def started(marks: Path, run_id: Any) -> None:
    wait_for(lambda: (marks / f"started-{run_id}").exists(), timeout=30, message="not started")


# ----------------------------------------------------------------------------- crashes


def test_a_killed_worker_s_run_crashes_within_the_bound(
    client: Any, tmp_path: Path, marks: Path, redis_client: redis.Redis
) -> None:
    client.create_work_pool("pool")
    dep = deploy("sleepy")
    with scheduler_process(tmp_path), worker_process(tmp_path, name="doomed") as worker:
        run = trigger(dep, seconds=120, marks=str(marks))
        started(marks, run.id)
        worker.kill_group()  # kill -9, the worker and its children
        killed_at = _time.monotonic()
        crashed = wait_final(run.id, timeout=CRASH_BOUND + MARGIN)
        assert _time.monotonic() - killed_at <= CRASH_BOUND + MARGIN
        assert crashed.state_name == "Crashed"
        assert "stopped renewing its lease" in (crashed.state.message or "")
        assert redis_client.zcard(keys.slot_pool("pool")) == 0  # its slot is free again
        wait_for(
            lambda: client.read_workers("pool")[0].status == "OFFLINE",
            timeout=20,
            message="the dead worker is still ONLINE",
        )


def test_a_killed_worker_s_run_with_retries_is_rerun_by_a_live_worker(
    client: Any, tmp_path: Path, marks: Path
) -> None:
    client.create_work_pool("pool")
    dep = deploy("sleepy_with_retry")
    with scheduler_process(tmp_path):
        with worker_process(tmp_path, name="doomed") as doomed:
            run = trigger(dep, seconds=120, marks=str(marks))
            wait_for(lambda: (marks / "attempt-1").exists(), timeout=30)
            doomed.kill_group()
        with worker_process(tmp_path, name="survivor"):
            done = wait_final(run.id, timeout=CRASH_BOUND + MARGIN + 30)
    assert done.state_name == "Completed" and done.run_count == 2
    assert done.worker_name == "survivor"
    names = [s.name for s in client.read_flow_run_states(run.id)]
    assert names[-4:] == ["AwaitingRetry", "Pending", "Running", "Completed"]
    retry = client.read_flow_run_states(run.id)[-4]
    assert "stopped renewing its lease" in (retry.message or "")


def test_the_reaper_never_misjudges_a_run_that_finished(client: Any) -> None:
    """A run whose lease expired but which reached a final state first keeps its state;
    a lease renewed in time is left alone."""
    client.create_work_pool("pool")
    finished, alive = (
        client.create_flow_run("etl", work_pool_name="pool", state=Pending()) for _ in range(2)
    )
    now = _time.timestamp()
    for run in (finished, alive):
        client.set_flow_run_state(run.id, Running(), new_lease="tok", lease_expiry=now + 1)
    client.set_flow_run_state(finished.id, Completed(), lease="tok")
    leases.renew_leases([(str(alive.id), "tok")], now + 1000)
    report = Reaper(interval_seconds=0).tick(_time.from_timestamp(now + 10))
    assert report.ran and report.crashed == [] and report.retrying == []
    assert (state_name(finished.id), state_name(alive.id)) == ("Completed", "Running")
    expired = Reaper(interval_seconds=0).tick(_time.from_timestamp(now + 2000))
    assert expired.crashed == [str(alive.id)]
    late = client.set_flow_run_state(alive.id, Completed(), lease="tok")  # the old holder
    assert late.status == "REJECT" and state_name(alive.id) == "Crashed"


# ----------------------------------------------------------------------------- cancel


class Out:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture
def cli_run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Out]:
    def invoke(*args: str) -> Out:
        capsys.readouterr()
        code = run_cli(cli, list(args))
        captured = capsys.readouterr()
        return Out(code, captured.out, captured.err)

    return invoke


def test_cli_cancel_stops_a_running_run_within_the_bound_and_runs_its_hooks(
    client: Any, tmp_path: Path, marks: Path, cli_run: Callable[..., Out], redis_client: Any
) -> None:
    client.create_work_pool("pool")
    dep = deploy("hooked")
    with worker_process(tmp_path) as worker:
        run = trigger(dep, seconds=120, marks=str(marks))
        started(marks, run.id)
        asked = _time.monotonic()
        out = cli_run("flow-run", "cancel", str(run.id), "--message", "no longer needed")
        assert out.code == 0 and "Cancelling" in out.stdout
        done = wait_final(run.id, timeout=CANCEL_BOUND + MARGIN)
        assert _time.monotonic() - asked <= CANCEL_BOUND + MARGIN
        assert done.state_name == "Cancelled" and done.state.message == "no longer needed"
        wait_for((marks / "on_cancellation").exists, timeout=10)
        assert (marks / "on_cancellation").read_text() == "no longer needed"
        assert redis_client.zcard(keys.slot_pool("pool")) == 0
        assert wait_final(trigger(deploy("hello")).id).state_name == "Completed"
        assert worker.proc.poll() is None


def test_client_set_state_cancelling_stops_the_run_and_cascades_to_subflows(
    client: Any, tmp_path: Path, marks: Path
) -> None:
    client.create_work_pool("pool")
    dep = deploy("parent_of_sleeper")
    with worker_process(tmp_path):
        parent = trigger(dep, seconds=120, marks=str(marks))

        def subflow_running() -> Any:
            found = client.read_flow_runs(flow_name="child-sleeper", states=["RUNNING"])
            return found[0] if found else None

        child = wait_for(subflow_running, timeout=30, message="the subflow did not start")
        client.set_flow_run_state(parent.id, Cancelling(message="stop the family"))
        assert wait_final(parent.id, timeout=CANCEL_BOUND + MARGIN).state_name == "Cancelled"
        assert wait_final(child.id, timeout=CANCEL_BOUND + MARGIN).state_name == "Cancelled"


def test_a_run_that_ignores_sigterm_is_killed_after_the_grace_period(
    client: Any, tmp_path: Path, marks: Path
) -> None:
    client.create_work_pool("pool")
    dep = deploy("stubborn")
    with worker_process(tmp_path, "pool", "--cancel-grace-seconds", "0.5"):
        run = trigger(dep, seconds=120, marks=str(marks))
        started(marks, run.id)
        client.cancel_flow_run(run.id)
        done = wait_final(run.id, timeout=CANCEL_BOUND + MARGIN)
    assert done.state_name == "Cancelled"
    assert "killed by SIGKILL" in (done.state.message or "")


def test_queued_and_pending_runs_are_cancelled_without_starting(
    client: Any, tmp_path: Path, marks: Path
) -> None:
    client.create_work_pool("pool")
    dep = deploy("sleepy")
    queued = trigger(dep, seconds=0, marks=str(marks))
    answer = client.cancel_flow_run(queued.id)
    assert answer.state.name == "Cancelled"  # at once: it had not started
    with worker_process(tmp_path):
        assert wait_final(trigger(dep, seconds=0).id).state_name == "Completed"
    assert state_name(queued.id) == "Cancelled"
    assert not (marks / f"started-{queued.id}").exists()
    assert [s.name for s in client.read_flow_run_states(queued.id)] == ["Scheduled", "Cancelled"]


def test_cancel_errors_are_one_clear_line(client: Any, cli_run: Callable[..., Out]) -> None:
    done = client.create_flow_run("etl", state=Completed())
    for args, message in (
        ((str(uuid.uuid4()),), "no flow run with id"),
        (("not-a-uuid",), "is not a flow run id"),
        ((str(done.id),), "already ended Completed"),
    ):
        out = cli_run("flow-run", "cancel", *args)
        assert out.code == 1 and "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr


def test_cancel_is_also_an_api_operation(client: Any) -> None:
    run = client.create_flow_run("etl", state=Pending())
    answer = client.cancel_flow_run(run.id, message="changed my mind")
    assert answer.status == "ACCEPT" and answer.state.name == "Cancelled"
    assert json.loads(read(run.id).model_dump_json())["state_name"] == "Cancelled"
    with pytest.raises(Exception, match="already ended Cancelled"):
        client.cancel_flow_run(run.id)


def test_workers_heartbeat_keeps_long_runs_alive(client: Any, tmp_path: Path, marks: Path) -> None:
    """A run longer than its lease is not reaped while its worker lives."""
    client.create_work_pool("pool")
    dep = deploy("sleepy")
    env = {"PREFECT_LITE_LEASE_SECONDS": "1.5", "PREFECT_LITE_REAPER_INTERVAL_SECONDS": "0.2"}
    with scheduler_process(tmp_path, **env), worker_process(tmp_path, **env):
        run = trigger(dep, seconds=4, marks=str(marks))
        assert wait_final(run.id, timeout=30).state_name == "Completed"


def test_sigterm_to_a_worker_without_runs_exits_cleanly(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    with worker_process(tmp_path) as worker:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert "stopped" in worker.output()


def test_a_killed_worker_s_crashed_run_has_its_on_crashed_hooks_run_by_a_live_worker(
    client: Any, tmp_path: Path, marks: Path
) -> None:
    client.create_work_pool("pool")
    dep = deploy("hooked")
    with scheduler_process(tmp_path):
        with worker_process(tmp_path, name="doomed") as doomed:
            run = trigger(dep, seconds=120, marks=str(marks))
            started(marks, run.id)
            doomed.kill_group()
        assert wait_final(run.id, timeout=CRASH_BOUND + MARGIN).state_name == "Crashed"
        assert not (marks / "on_crashed").exists()  # nobody could run them yet
        with worker_process(tmp_path, name="survivor"):
            wait_for((marks / "on_crashed").exists, timeout=30, message="hooks did not run")
    assert "stopped renewing its lease" in (marks / "on_crashed").read_text()
