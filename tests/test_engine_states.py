"""States end to end, the background recorder, crashes, nested timeouts, cancellation."""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.client.http import HTTPTransport
from prefect_lite.client.orchestration import SyncPrefectClient
from prefect_lite.context import FlowRunContext
from prefect_lite.engine import recorder, records
from prefect_lite.engine.outcomes import return_value_to_state
from prefect_lite.exceptions import FlowRunTimeoutError
from prefect_lite.schemas import RunInputRef, TaskRun
from prefect_lite.settings import temporary_settings
from prefect_lite.states import (
    Cancelling,
    Completed,
    Failed,
    Pending,
    Running,
    State,
    StateDetails,
    StateType,
)
from prefect_lite.task_runners import ThreadPoolTaskRunner
from tests.helpers import run_python, wait_for


def client() -> Any:
    return get_client(sync_client=True)


def names(states: list[State]) -> list[str]:
    return [s.name or "" for s in states]


def test_many_concurrent_task_runs_keep_exact_ordered_histories() -> None:
    @task
    def item(i: int) -> int:
        return i

    @flow
    def f() -> list[int]:
        return item.map(range(200)).result()

    state = f(return_state=True)
    assert state.result() == list(range(200))
    runs = client().read_task_runs(state.state_details.flow_run_id)
    assert len(runs) == 200
    for run in runs:
        assert names(client().read_task_run_states(run.id)) == ["Pending", "Running", "Completed"]
        assert run.run_count == 1 and run.start_time is not None and run.end_time is not None
    assert recorder.get_recorder().pending == 0


def test_records_are_in_the_store_when_the_flow_returns() -> None:
    @task
    def noop(i: int) -> None:
        pass

    @flow
    def f() -> None:
        for i in range(50):
            noop(i)

    state = f(return_state=True)
    runs = client().read_task_runs(state.state_details.flow_run_id)
    assert [r.name for r in runs] == [f"noop-{i}" for i in range(50)]
    assert all(r.state_name == "Completed" for r in runs)


def test_the_recorder_drops_what_it_cannot_write_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = SyncPrefectClient(HTTPTransport("http://127.0.0.1:9", timeout=1.0))
    run = TaskRun(name="t-0", task_key="t")
    rec = recorder.TaskRunRecorder()
    with (
        temporary_settings(store_outage_seconds=0.5),  # retried this long, then dropped
        caplog.at_level("WARNING", logger="prefect_lite.engine.recorder"),
    ):
        # Recorded inside the block: the recorder's thread may start on them at once.
        rec.record((dead, "create", run.id, Pending(), run, False))
        rec.record((dead, "propose", run.id, Running(), None, False))
        assert rec.flush(timeout=30)
    assert rec.pending == 0
    dropped = re.findall(r"Could not record (\d+) task run change", caplog.text)
    assert sum(int(n) for n in dropped) == 2


def test_changes_queued_at_exit_are_written() -> None:
    result = run_python(
        """
        from prefect_lite import task
        from prefect_lite.engine.task_engine import TaskRunEngine

        @task
        def t():
            return 1

        engine = TaskRunEngine(t, {})
        run = engine.create()
        print(run.id)
        """
    )
    assert result.returncode == 0, result.stderr
    run_id = uuid.UUID(result.stdout.strip().splitlines()[-1])
    run = client().read_task_run(run_id)
    assert run.state_name == "Pending"


# ---------------------------------------------------------------------- crashes


def test_keyboard_interrupt_in_a_task_crashes_task_and_flow() -> None:
    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    @flow
    def f() -> None:
        interrupted()

    with pytest.raises(KeyboardInterrupt):
        f()
    run = client().read_flow_runs(flow_name="f")[0]
    assert run.state_type == StateType.CRASHED
    (task_run,) = client().read_task_runs(run.id)
    assert task_run.state_type == StateType.CRASHED
    assert names(client().read_task_run_states(task_run.id)) == ["Pending", "Running", "Crashed"]


def test_system_exit_crashes_the_flow() -> None:
    @flow
    def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        exits()
    run = client().read_flow_runs(flow_name="exits")[0]
    assert run.state is not None
    assert run.state.message == "Execution was aborted by Python system exit call."
    assert names(client().read_flow_run_states(run.id)) == ["Pending", "Running", "Crashed"]


def test_a_flow_timeout_inside_a_task_is_not_retried_by_the_task() -> None:
    attempts = []

    @task(retries=3, timeout_seconds=10)
    def long_step() -> None:
        attempts.append(1)
        time.sleep(5)

    @flow(timeout_seconds=0.2)
    def f() -> None:
        long_step()

    state = f(return_state=True)
    assert state.name == "TimedOut"
    assert attempts == [1]
    (task_run,) = client().read_task_runs(state.state_details.flow_run_id)
    assert task_run.state_type == StateType.FAILED
    assert isinstance(state.result(raise_on_failure=False), FlowRunTimeoutError)


def test_cancelling_a_running_flow_from_outside_stops_it() -> None:
    started = threading.Event()

    @task
    def step(i: int) -> None:
        started.set()
        time.sleep(0.05)

    @flow
    def long() -> None:
        for i in range(400):
            step(i)

    outcome: list[State] = []
    runner = threading.Thread(target=lambda: outcome.append(long(return_state=True)))
    runner.start()
    assert started.wait(10)
    ctx_run = wait_for(lambda: client().read_flow_runs(flow_name="long"))[0]
    client().set_flow_run_state(ctx_run.id, Cancelling(message="stop now"))
    runner.join(30)
    assert not runner.is_alive()
    assert outcome[0].is_cancelled()
    final = client().read_flow_run(ctx_run.id)
    assert final.state_type == StateType.CANCELLED
    steps = client().read_task_runs(ctx_run.id)
    assert len(steps) < 400


# ---------------------------------------------------------------- state helpers


def test_return_value_to_state_aggregates_like_prefect() -> None:
    done = Completed(state_details=StateDetails(task_run_id=uuid.uuid4()))
    bad = Failed(state_details=StateDetails(task_run_id=uuid.uuid4()))
    assert return_value_to_state([done, done]).message == "All states completed."
    mixed = return_value_to_state([done, bad])
    assert mixed.type == StateType.FAILED and mixed.message == "1/2 states failed."
    assert return_value_to_state(5).result() == 5
    manual = Failed(message="mine")
    assert return_value_to_state(manual) is manual
    assert (
        return_value_to_state(
            [Pending(state_details=StateDetails(task_run_id=uuid.uuid4())), done]
        ).message
        == "1/2 states are not final."
    )


def test_engine_built_records_match_validated_models() -> None:
    details = records.state_details(task_run_id=uuid.uuid4())
    fast = records.make_state(StateType.COMPLETED, "Completed", "msg", 1, details)
    slow = State(
        type=StateType.COMPLETED,
        name="Completed",
        message="msg",
        data=1,
        state_details=StateDetails(task_run_id=details.task_run_id),
        id=fast.id,
        timestamp=fast.timestamp,
    )
    assert fast.to_record() == slow.to_record()
    assert fast == slow and fast.state_details == slow.state_details
    run_id = uuid.uuid4()
    fast_run = records.task_run(
        id=run_id,
        name="t-0",
        task_key="t",
        task_inputs={"x": [RunInputRef(id=run_id)]},
    )
    slow_run = TaskRun(
        id=run_id,
        name="t-0",
        task_key="t",
        task_inputs={"x": [RunInputRef(id=run_id)]},
        created=fast_run.created,
        updated=fast_run.updated,
    )
    assert fast_run.model_dump_json() == slow_run.model_dump_json()
    ids = {records.fast_uuid4() for _ in range(1000)}
    assert len(ids) == 1000 and all(i.version == 4 for i in ids)


def test_task_run_context_is_none_outside_and_set_inside() -> None:
    from prefect_lite.context import TaskRunContext

    seen = []

    @task
    def inside() -> None:
        ctx = TaskRunContext.get()
        assert ctx is not None
        seen.append((ctx.task.name, ctx.task_run.name, ctx.parameters))

    @flow
    def f() -> None:
        assert TaskRunContext.get() is None
        assert FlowRunContext.get() is not None
        inside()

    assert FlowRunContext.get() is None and TaskRunContext.get() is None
    f()
    assert seen == [("inside", "inside-0", {})]


def test_an_interrupted_flow_cancels_submissions_that_did_not_start() -> None:
    release = threading.Event()

    @task
    def blocker() -> None:
        release.wait(10)

    @task
    def queued(i: int) -> int:
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def f() -> None:
        blocker.submit()
        for i in range(3):
            queued.submit(i)
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            f()
    finally:
        release.set()
    run = client().read_flow_runs(flow_name="f")[0]

    def blocker_finished() -> bool:
        recorder.flush()
        runs = {r.name: r for r in client().read_task_runs(run.id)}
        return runs["blocker-0"].state_name == "Completed"

    wait_for(blocker_finished, message="the running task did not finish after the interrupt")
    assert run.state_type == StateType.CRASHED
    by_name = {r.name: r for r in client().read_task_runs(run.id)}
    assert {by_name[f"queued-{i}"].state_name for i in range(3)} == {"Cancelled"}


def test_a_forked_child_records_its_own_runs() -> None:
    result = run_python(
        """
        import os
        from prefect_lite import flow, task

        @task
        def t(x):
            return x

        @flow
        def parent_side():
            return t(1)

        @flow
        def child_side():
            return t(2)

        parent_side()
        pid = os.fork()
        if pid == 0:
            try:
                child_side()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        parent_side()
        """
    )
    assert result.returncode == 0, result.stderr
    assert len(client().read_flow_runs(flow_name="parent-side")) == 2
    (child,) = client().read_flow_runs(flow_name="child-side")
    assert child.state_name == "Completed"
    (task_run,) = client().read_task_runs(child.id)
    assert task_run.state_name == "Completed"
