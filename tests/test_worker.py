"""Workers as real processes: runs, priority, limits, pools, bad input, retries, shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite.client import get_client
from prefect_lite.schemas import FlowRun
from prefect_lite.storage import keys
from tests._workers import (
    deploy,
    read,
    scheduler_process,
    state_name,
    trigger,
    wait_final,
    wait_state,
    worker_process,
)
from tests.helpers import REPO_ROOT, python_env, wait_for


@pytest.fixture
def client() -> Any:
    with get_client(sync_client=True) as c:
        yield c


def cli_output(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lite", *args],
        env=python_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def history(client: Any, run: FlowRun) -> list[str]:
    return [s.name for s in client.read_flow_run_states(run.id)]


def test_a_worker_runs_a_deployment_run_in_its_own_process(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    dep = deploy("hello", parameters={"name": "worker"})
    with worker_process(tmp_path, name="w1") as worker:
        run = trigger(dep)
        done = wait_final(run.id)
        assert done.state_name == "Completed"
        assert history(client, run) == ["Scheduled", "Pending", "Running", "Completed"]
        assert done.worker_name == "w1" and done.infrastructure_pid not in (None, worker.pid)
        assert done.run_count == 1
        # The child ships its logs after the final state: wait for the line.
        wait_for(
            lambda: any("Beginning flow run" in log.message for log in client.read_logs(run.id)),
            message="the run's logs never reached the store",
        )
        found = client.read_workers("pool")
        assert [(w.name, w.status, w.pid) for w in found] == [("w1", "ONLINE", worker.pid)]
        listed = json.loads(cli_output("worker", "ls", "--json"))
        assert [(w["name"], w["status"]) for w in listed] == [("w1", "ONLINE")]
        table = cli_output("worker", "ls")
        assert "w1" in table and "ONLINE" in table
    assert client.read_workers("pool")[0].status == "OFFLINE"  # a clean stop says so


def test_queues_are_served_in_priority_order(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    client.create_work_queue("pool", "urgent", priority=1)
    dep = deploy("hello")
    slow = [trigger(dep) for _ in range(3)]  # queued first, in the default queue
    fast = [trigger(dep, queue="urgent") for _ in range(2)]
    with worker_process(tmp_path, "pool", "--limit", "1"):
        finished = [wait_final(r.id) for r in (*slow, *fast)]
    order = [str(r.id) for r in sorted(finished, key=lambda r: r.start_time)]
    assert order == [str(r.id) for r in (*fast, *slow)]


def _max_overlap(runs: list[FlowRun]) -> int:
    """Most runs between Running and their final state at any one time."""
    events = []
    with get_client(sync_client=True) as client:
        for run in runs:
            states = client.read_flow_run_states(run.id)
            started = next(s.timestamp for s in states if s.name == "Running")
            ended = next(s.timestamp for s in states if s.is_final())
            events += [(started, 1), (ended, -1)]
    current = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        current += step
        peak = max(peak, current)
    return peak


def test_limits_hold_across_three_workers_and_no_slot_leaks(
    client: Any, tmp_path: Path, redis_client: redis.Redis
) -> None:
    client.create_work_pool("pool", concurrency_limit=4)
    client.create_work_queue("pool", "narrow", concurrency_limit=2)
    capped = deploy("sleepy", name="capped", concurrency_limit=1)
    narrow = deploy("sleepy", name="narrow", work_queue_name="narrow")
    free = deploy("sleepy", name="free")
    runs: dict[str, list[FlowRun]] = defaultdict(list)
    with (
        worker_process(tmp_path, name="a"),
        worker_process(tmp_path, name="b"),
        worker_process(tmp_path, name="c"),
    ):
        for i in range(36):
            dep = (capped, narrow, free)[i % 3]
            runs[dep.name].append(trigger(dep, seconds=0.15))
        everything = [r for group in runs.values() for r in group]
        for run in everything:
            assert wait_final(run.id, timeout=60).state_name == "Completed"
    assert _max_overlap(everything) <= 4
    assert _max_overlap(runs["capped"]) == 1
    assert _max_overlap(runs["narrow"]) <= 2
    workers_used = {read(r.id).worker_name for r in everything}
    assert len(workers_used) >= 2
    for key in (
        keys.slot_pool("pool"),
        keys.slot_queue("pool", "narrow"),
        keys.slot_queue("pool", "default"),
        keys.slot_deployment(str(capped.id)),
        keys.pool_waiting("pool"),
    ):
        assert redis_client.zcard(key) == 0, key
    assert client.read_work_pool_status("pool").active == 0


def test_a_worker_on_another_pool_never_takes_this_pools_runs(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("first")
    client.create_work_pool("second")
    mine = deploy("hello", pool="first", name="first")
    theirs = deploy("hello", pool="second", name="second")
    waiting = [trigger(mine) for _ in range(3)]
    with worker_process(tmp_path, "second", name="second-worker"):
        served = [trigger(theirs) for _ in range(3)]
        for run in served:
            assert wait_final(run.id).worker_name == "second-worker"
        assert {state_name(r.id) for r in waiting} == {"Scheduled"}
    with worker_process(tmp_path, "first", name="first-worker"):
        for run in waiting:
            assert wait_final(run.id).worker_name == "first-worker"


@pytest.mark.parametrize(
    ("parameters", "names"),
    [
        ({"count": "many"}, "count"),  # wrong type: the engine's validation
        ({"count": 2, "colour": "red"}, "colour"),  # a parameter the flow does not take
        ({}, "count"),  # a required parameter missing
    ],
)
def test_bad_parameters_fail_the_run_and_the_worker_stays_well(
    client: Any, tmp_path: Path, parameters: dict[str, Any], names: str
) -> None:
    client.create_work_pool("pool")
    dep = deploy("typed", enforce_parameter_schema=False)
    with worker_process(tmp_path):
        bad = wait_final(trigger(dep, **parameters).id)
        assert bad.state_name == "Failed"
        assert names in (bad.state.message or ""), bad.state.message
        good = wait_final(trigger(dep, count=2, label="ab").id)
        assert good.state_name == "Completed"


def test_code_that_cannot_be_loaded_fails_the_run_clearly(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    missing = client.create_deployment(
        "ghost", "gone", entrypoint="no/such/file.py:flow", path=str(REPO_ROOT),
        work_pool_name="pool",
    )  # fmt: skip
    with worker_process(tmp_path):
        run = wait_final(trigger(missing).id)
    assert run.state_name == "Failed"
    assert "Could not load the flow" in (run.state.message or "")
    assert "no such file" in (run.state.message or "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pool", "pool", "--queue", "nope"], "has no queue 'nope'"),
        (["--pool", "nope", "--queue", "q1"], "no work pool named 'nope' to serve queue 'q1'"),
    ],
)
def test_unknown_pool_or_queue_is_a_clear_error(client: Any, args: list[str], message: str) -> None:
    client.create_work_pool("pool")
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "worker", "start", *args],
        env=python_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert message in done.stderr.strip().splitlines()[-1]


def test_a_worker_creates_its_missing_pool_and_runs_from_it(client: Any, tmp_path: Path) -> None:
    """As Prefect's workers do: type ``process`` recorded, a ``default`` queue, one log line."""
    assert [p.name for p in client.read_work_pools()] == []
    with worker_process(tmp_path, "fresh-pool", name="w-new") as worker:
        pool = client.read_work_pool("fresh-pool")
        assert pool.type == "process" and pool.default_queue_name == "default"
        assert [q.name for q in client.read_work_queues("fresh-pool")] == ["default"]
        created = [line for line in worker.output().splitlines() if "created it" in line]
        assert len(created) == 1 and "'fresh-pool'" in created[0], worker.output()
        done = wait_final(trigger(deploy("hello", pool="fresh-pool")).id)
        assert done.state_name == "Completed" and done.worker_name == "w-new"
    # A second worker finds the pool and says nothing about creating it.
    with worker_process(tmp_path, "fresh-pool", name="w-again") as again:
        assert "created it" not in again.output()
    assert [p.name for p in client.read_work_pools()] == ["fresh-pool"]


def test_a_pool_a_worker_would_create_with_a_bad_name_is_a_clear_error(
    client: Any, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "worker", "start", "--pool", "bad:name"],
        env=python_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "work pool name" in done.stderr.strip().splitlines()[-1]
    assert client.read_work_pools() == []


def test_flow_retries_cross_processes(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    dep = deploy("fails_once")
    marks = tmp_path / "marks"
    marks.mkdir()
    with scheduler_process(tmp_path), worker_process(tmp_path, "pool", "--runs-per-process", "1"):
        run = wait_final(trigger(dep, marks=str(marks)).id)
    assert run.state_name == "Completed" and run.run_count == 2
    names = history(client, run)
    assert names == [
        "Scheduled", "Pending", "Running", "AwaitingRetry", "Pending", "Running", "Completed",
    ]  # fmt: skip
    pids = {p.read_text() for p in marks.glob("attempt-*")}
    assert len(pids) == 2  # each attempt in its own process


def test_sigterm_drains_then_cancels_what_is_left(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    dep = deploy("sleepy")
    marks = tmp_path / "marks"
    marks.mkdir()
    with worker_process(tmp_path, "pool", "--shutdown-grace-seconds", "0.5") as worker:
        short = trigger(dep, seconds=0.3, marks=str(marks))
        long = trigger(dep, seconds=60, marks=str(marks))
        wait_for(lambda: (marks / f"started-{long.id}").exists(), timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert wait_final(short.id).state_name == "Completed"
    stopped = wait_final(long.id)
    assert stopped.state_name == "Cancelled"
    assert "shut down (SIGTERM)" in (stopped.state.message or "")
    assert client.read_work_pool_status("pool").active == 0


def test_a_second_ctrl_c_exits_at_once(client: Any, tmp_path: Path) -> None:
    client.create_work_pool("pool")
    dep = deploy("sleepy")
    marks = tmp_path / "marks"
    marks.mkdir()
    with worker_process(tmp_path, "pool", "--shutdown-grace-seconds", "600") as worker:
        run = trigger(dep, seconds=60, marks=str(marks))
        wait_for(lambda: (marks / f"started-{run.id}").exists(), timeout=30)
        worker.signal(signal.SIGINT)
        wait_for(lambda: "draining" in worker.output(), timeout=10)
        worker.signal(signal.SIGINT)
        assert worker.wait(timeout=10) != 0
    interrupted = wait_state(run.id, "Crashed", timeout=10)
    assert "interrupt" in (interrupted.state.message or "")
