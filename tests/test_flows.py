"""@flow: options, outcomes, recording, subflows, async, entrypoints, declaration errors."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.context import FlowRunContext, tags
from prefect_lite.engine.flow_engine import run_flow
from prefect_lite.exceptions import (
    CancelledRun,
    DefinitionError,
    FailedRun,
    FlowRunTimeoutError,
    MissingFlowError,
    NotAFlowError,
    NotCallableError,
    ParameterBindError,
    ParameterTypeError,
    ScriptError,
)
from prefect_lite.flows import Flow, load_flow_from_entrypoint
from prefect_lite.states import Cancelled, Cancelling, Completed, Failed, Pending, State
from prefect_lite.task_runners import ThreadPoolTaskRunner

FIXTURES = Path(__file__).parent / "fixtures"


def client() -> Any:
    return get_client(sync_client=True)


def history(flow_run_id: uuid.UUID) -> list[str]:
    return [s.name or "" for s in client().read_flow_run_states(flow_run_id)]


# ------------------------------------------------------------------------- basics


def test_calling_a_flow_returns_its_result_and_records_the_run() -> None:
    @flow
    def add(x: int, y: int) -> int:
        return x + y

    assert add(1, 2) == 3
    runs = client().read_flow_runs(flow_name="add")
    assert len(runs) == 1
    run = runs[0]
    assert run.parameters == {"x": 1, "y": 2}
    assert run.state_name == "Completed"
    assert run.run_count == 1
    assert run.start_time is not None and run.end_time is not None
    assert history(run.id) == ["Pending", "Running", "Completed"]


def test_default_name_description_and_fn() -> None:
    def my_pipeline_flow() -> None:
        """Does things."""

    f = flow(my_pipeline_flow)
    assert isinstance(f, Flow)
    assert f.name == "my-pipeline-flow"
    assert f.description == "Does things."
    assert f.fn is my_pipeline_flow
    assert flow(name="Custom", description="d", version="1.2")(my_pipeline_flow).version == "1.2"


def test_the_original_exception_is_raised_and_the_run_failed() -> None:
    @flow
    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        boom()
    run = client().read_flow_runs(flow_name="boom")[0]
    assert run.state_type == "FAILED"
    assert run.state is not None
    assert run.state.message == "Flow run encountered an exception: KeyError: 'missing'"


def test_return_state_gives_the_final_state_without_raising() -> None:
    @flow
    def boom() -> None:
        raise ValueError("no")

    state = boom(return_state=True)
    assert isinstance(state, State)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), ValueError)
    assert state.state_details.flow_run_id is not None


def test_a_flow_returning_a_state_ends_in_that_state() -> None:
    @flow
    def give_up() -> State:
        return Failed(message="gave up")

    state = give_up(return_state=True)
    assert state.is_failed()
    assert state.message == "gave up"
    with pytest.raises(FailedRun, match="gave up"):
        give_up()

    @flow
    def fine() -> State:
        return Completed(data=42)

    assert fine() == 42


def test_flow_run_name_template_and_callable() -> None:
    @flow(flow_run_name="run-{x}-{cfg[mode]}")
    def templated(x: int, cfg: dict[str, str]) -> None:
        pass

    state = templated(7, {"mode": "fast"}, return_state=True)
    assert client().read_flow_run(state.state_details.flow_run_id).name == "run-7-fast"

    def namer() -> str:
        ctx = FlowRunContext.get()
        assert ctx is not None
        return f"called-with-{ctx.parameters['x']}"

    @flow(flow_run_name=namer)
    def named(x: int) -> None:
        pass

    state = named(3, return_state=True)
    assert client().read_flow_run(state.state_details.flow_run_id).name == "called-with-3"


def test_flow_run_name_callable_must_return_a_string() -> None:
    @flow(flow_run_name=lambda: 12)  # type: ignore[arg-type,return-value]
    def bad() -> None:
        pass

    with pytest.raises(TypeError, match="string is required"):
        bad()


def test_tags_from_the_context_reach_the_flow_run() -> None:
    @flow
    def tagged() -> None:
        pass

    with tags("a", "b"):
        state = tagged(return_state=True)
    assert sorted(client().read_flow_run(state.state_details.flow_run_id).tags) == ["a", "b"]


# -------------------------------------------------------------------- validation


def test_parameters_are_coerced_from_type_hints() -> None:
    seen: dict[str, Any] = {}

    @flow
    def typed(n: int, ratio: float, when: uuid.UUID) -> None:
        seen.update(n=n, ratio=ratio, when=when)

    some = uuid.uuid4()
    typed("5", "0.5", str(some))  # type: ignore[arg-type]
    assert seen == {"n": 5, "ratio": 0.5, "when": some}


def test_invalid_parameters_fail_the_run_before_the_body() -> None:
    ran = []

    @flow
    def typed(n: int, m: int = 0) -> None:
        ran.append(n)

    with pytest.raises(ParameterTypeError, match=r"(?s)invalid parameters.*- n: Input should be"):
        typed("not a number")  # type: ignore[arg-type]
    assert ran == []
    run = client().read_flow_runs(flow_name="typed")[0]
    assert run.state_type == "FAILED"
    assert run.state is not None
    assert "Validation of flow parameters failed" in (run.state.message or "")


def test_validation_can_be_turned_off() -> None:
    @flow(validate_parameters=False)
    def loose(n: int) -> Any:
        return n

    assert loose("x") == "x"  # type: ignore[arg-type]


def test_bad_arguments_raise_a_bind_error() -> None:
    @flow
    def one(x: int) -> None:
        pass

    with pytest.raises(ParameterBindError, match="one"):
        one(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        one(y=2)  # type: ignore[call-arg]


# ------------------------------------------------------------------ retries, time


def test_flow_retries_are_counted_and_recorded() -> None:
    attempts = []

    @flow(retries=2)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return "ok"

    state = flaky(return_state=True)
    assert state.is_completed() and state.result() == "ok"
    run_id = state.state_details.flow_run_id
    assert history(run_id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    assert client().read_flow_run(run_id).run_count == 3


def test_flow_retries_exhausted_raise_the_last_exception() -> None:
    @flow(retries=1, retry_delay_seconds=0)
    def always() -> None:
        raise RuntimeError("always")

    with pytest.raises(RuntimeError, match="always"):
        always()


def test_flow_timeout_ends_timed_out() -> None:
    import time

    @flow(timeout_seconds=0.2)
    def slow() -> None:
        time.sleep(5)

    state = slow(return_state=True)
    assert state.is_failed() and state.name == "TimedOut"
    assert state.message == "Flow run exceeded timeout of 0.2 second(s)"
    with pytest.raises(FlowRunTimeoutError):
        slow()
    with pytest.raises(TimeoutError):
        slow()


# ------------------------------------------------------------------------- hooks


def test_hooks_get_the_flow_the_run_and_the_final_state() -> None:
    calls: list[tuple[str, Any, Any, Any]] = []

    def record(kind: str) -> Any:
        return lambda f, run, state: calls.append((kind, f, run, state))

    @flow(
        on_running=[record("running")],
        on_completion=[record("completion")],
        on_failure=[record("failure")],
    )
    def good() -> int:
        return 1

    good()
    assert [c[0] for c in calls] == ["running", "completion"]
    _, f, run, state = calls[1]
    assert f is good and run.name and state.is_completed()
    assert run.state_name == "Completed"

    calls.clear()

    @flow(on_failure=[record("failure")], on_completion=[record("completion")])
    def bad() -> None:
        raise ValueError("x")

    bad(return_state=True)
    assert [c[0] for c in calls] == ["failure"]
    assert calls[0][3].is_failed()


def test_a_failing_hook_does_not_change_the_outcome() -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("hook failed")

    @flow(on_completion=[broken])
    def fine() -> int:
        return 5

    assert fine() == 5


def test_crash_on_keyboard_interrupt_is_recorded_and_reraised() -> None:
    seen = []

    @flow(on_crashed=[lambda f, r, s: seen.append(s)])
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    run = client().read_flow_runs(flow_name="interrupted")[0]
    assert run.state_type == "CRASHED"
    assert run.state is not None
    assert run.state.message == "Execution was aborted by an interrupt signal."
    assert seen and seen[0].is_crashed()


def test_async_hooks_are_awaited() -> None:
    seen = []

    async def hook(f: Any, run: Any, state: State) -> None:
        await asyncio.sleep(0)
        seen.append(state.name)

    @flow(on_completion=[hook])
    def fine() -> None:
        pass

    fine()
    assert seen == ["Completed"]


# ----------------------------------------------------------------- subflows, async


def test_subflows_are_linked_to_a_task_run_of_the_parent() -> None:
    @flow
    def child(x: int) -> int:
        return x + 1

    @flow
    def parent() -> int:
        return child(1) + child(2)

    state = parent(return_state=True)
    assert state.result() == 5
    parent_id = state.state_details.flow_run_id
    children = client().read_flow_runs(flow_name="child")
    assert len(children) == 2
    task_runs = {tr.id: tr for tr in client().read_task_runs(parent_id)}
    for run in children:
        assert run.parent_flow_run_id == parent_id
        assert run.parent_task_run_id in task_runs
        tracking = task_runs[run.parent_task_run_id]
        assert tracking.name.startswith("child-")
        assert tracking.state_name == "Completed"
    assert sorted(tr.name for tr in task_runs.values()) == ["child-0", "child-1"]


def test_async_flow_with_async_tasks() -> None:
    @task
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 10

    @flow
    async def gather_flow() -> list[int]:
        return list(await asyncio.gather(fetch(1), fetch(2), fetch(3)))

    assert asyncio.run(gather_flow()) == [10, 20, 30]
    run = client().read_flow_runs(flow_name="gather-flow")[0]
    assert run.state_name == "Completed"
    assert len(client().read_task_runs(run.id)) == 3


def test_async_flow_failure_and_timeout() -> None:
    @flow
    async def fails() -> None:
        raise ValueError("async boom")

    with pytest.raises(ValueError, match="async boom"):
        asyncio.run(fails())

    @flow(timeout_seconds=0.1)
    async def sleepy() -> None:
        await asyncio.sleep(5)

    state = asyncio.run(sleepy(return_state=True))
    assert state.name == "TimedOut"


# --------------------------------------------------------------------- options


def test_with_options_copies_and_overrides() -> None:
    @flow(retries=1, name="original")
    def base() -> int:
        return 1

    other = base.with_options(name="copy", timeout_seconds=5)
    assert other.name == "copy" and other.retries == 1 and other.timeout_seconds == 5
    assert base.name == "original" and base.timeout_seconds is None
    assert other() == 1
    with pytest.raises(TypeError, match="unknown option"):
        base.with_options(bogus=1)


def test_task_runner_option() -> None:
    runner = ThreadPoolTaskRunner(max_workers=2)

    @flow(task_runner=runner)
    def uses() -> Any:
        ctx = FlowRunContext.get()
        assert ctx is not None
        return ctx.task_runner

    used = uses()
    assert isinstance(used, ThreadPoolTaskRunner) and used.max_workers == 2
    assert used is not runner  # each run gets a fresh copy
    by_class = flow(task_runner=ThreadPoolTaskRunner)(lambda: 1)
    assert isinstance(by_class.task_runner, ThreadPoolTaskRunner)


# ------------------------------------------------------------------ existing runs


def test_run_flow_runs_an_existing_flow_run_record() -> None:
    from tests.fixtures.engine_flows import add_flow

    created = client().create_flow_run("adder", parameters={"x": "4"}, state=Pending())
    assert run_flow(add_flow, flow_run=created) == 9
    run = client().read_flow_run(created.id)
    assert run.state_name == "Completed" and run.run_count == 1
    assert len(client().read_flow_runs(flow_name="adder")) == 1
    again = client().create_flow_run("adder", parameters={"x": 1, "y": 5}, state=Pending())
    assert run_flow(add_flow, flow_run_id=again.id) == 7


def test_a_run_cancelled_before_it_starts_does_not_run() -> None:
    from tests.fixtures.engine_flows import hello

    created = client().create_flow_run("hello", state=Pending())
    client().set_flow_run_state(created.id, Cancelled(message="stop"))
    state = run_flow(hello, flow_run=client().read_flow_run(created.id), return_type="state")
    assert state.is_cancelled()
    assert history(created.id) == ["Pending", "Cancelled"]

    cancelling = client().create_flow_run("hello", state=Pending())
    client().set_flow_run_state(cancelling.id, Cancelling(message="please stop"), force=True)
    with pytest.raises(CancelledRun):
        run_flow(hello, flow_run=client().read_flow_run(cancelling.id))
    assert client().read_flow_run(cancelling.id).state_name == "Cancelled"


def test_a_run_cancelled_while_running_stops_at_the_next_task() -> None:
    ran = []

    @task
    def step(i: int) -> None:
        ran.append(i)
        if i == 1:
            ctx = FlowRunContext.get()
            assert ctx is not None
            client().set_flow_run_state(ctx.flow_run.id, Cancelling(message="user asked"))
            from prefect_lite.engine.cancellation import get_watcher

            get_watcher().check_once()

    @flow
    def long() -> None:
        for i in range(5):
            step(i)

    state = long(return_state=True)
    assert state.is_cancelled()
    assert ran == [0, 1]


# ------------------------------------------------------------------- declaration


def test_declaration_errors_are_clear() -> None:
    with pytest.raises(NotCallableError, match="needs a function"):
        flow(42)  # type: ignore[call-overload]
    with pytest.raises(NotCallableError, match="did you mean"):
        flow("my-name")  # type: ignore[call-overload]

    def f(x: int) -> None:
        pass

    with pytest.raises(DefinitionError, match=r"uses \{y\}, which is not a parameter"):
        flow(flow_run_name="run-{y}")(f)
    with pytest.raises(DefinitionError, match="positional field"):
        flow(flow_run_name="run-{}")(f)
    with pytest.raises(DefinitionError, match="retries must be >= 0"):
        flow(retries=-1)(f)
    with pytest.raises(DefinitionError, match="whole number"):
        flow(retries=1.5)(f)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="timeout_seconds must be a number > 0"):
        flow(timeout_seconds=-3)(f)
    with pytest.raises(DefinitionError, match="retry delays must be numbers >= 0"):
        flow(retries=1, retry_delay_seconds=-1)(f)
    with pytest.raises(NotCallableError, match="on_completion must contain callables"):
        flow(on_completion=["nope"])(f)  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="forbidden character"):
        flow(name="a/b")(f)
    with pytest.raises(DefinitionError, match="task_runner must be a TaskRunner"):
        flow(task_runner="threads")(f)
    with pytest.raises(TypeError, match="unknown option"):
        flow(retires=3)(f)  # type: ignore[call-overload]

    def reserved(wait_for: int) -> None:
        pass

    with pytest.raises(DefinitionError, match="reserved"):
        flow(reserved)
    assert issubclass(DefinitionError, ValueError) and issubclass(NotCallableError, TypeError)


# ------------------------------------------------------------------- entrypoints


def test_load_flow_from_a_module_entrypoint() -> None:
    loaded = load_flow_from_entrypoint("tests.fixtures.engine_flows:hello")
    assert loaded.name == "hello"
    assert loaded("you") == "hello you"


def test_load_flow_from_a_file_entrypoint() -> None:
    loaded = load_flow_from_entrypoint(f"{FIXTURES / 'script_flow.py'}:greet")
    assert loaded("ann") == "hi, ann"
    relative = load_flow_from_entrypoint("script_flow.py:greet", base_dir=FIXTURES)
    assert relative.name == "greet"


def test_entrypoint_errors_are_clear() -> None:
    with pytest.raises(MissingFlowError, match="no such file"):
        load_flow_from_entrypoint(f"{FIXTURES / 'nope.py'}:x")
    with pytest.raises(MissingFlowError, match="no module named"):
        load_flow_from_entrypoint("tests.fixtures.does_not_exist:x")
    with pytest.raises(MissingFlowError, match="has no attribute 'nothing'"):
        load_flow_from_entrypoint("tests.fixtures.engine_flows:nothing")
    with pytest.raises(NotAFlowError, match="is a task, not a flow"):
        load_flow_from_entrypoint("tests.fixtures.engine_flows:not_a_flow")
    with pytest.raises(NotAFlowError, match="not a flow"):
        load_flow_from_entrypoint("tests.fixtures.engine_flows:plain_function")
    with pytest.raises(ScriptError, match="broken on purpose"):
        load_flow_from_entrypoint(f"{FIXTURES / 'broken_script.py'}:x")
    with pytest.raises(MissingFlowError, match="must look like"):
        load_flow_from_entrypoint("no-colon")


# ------------------------------------------------------------------- log_prints


def test_log_prints_sends_prints_to_the_run_logs(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect_lite.logging import flush_logs

    @task
    def loud() -> None:
        print("from the task")

    @task(log_prints=False)
    def quiet() -> None:
        print("not logged")

    @flow(log_prints=True)
    def chatty() -> None:
        print("from the flow")
        loud()
        quiet()

    state = chatty(return_state=True)
    assert flush_logs(timeout=10)
    messages = [log.message for log in client().read_logs(state.state_details.flow_run_id)]
    assert "from the flow" in messages and "from the task" in messages
    assert "not logged" not in messages
    assert "not logged" in capsys.readouterr().out


def test_flows_and_tasks_survive_pickling() -> None:
    import pickle

    import cloudpickle

    from tests.fixtures.engine_flows import add_flow, double

    flow_copy = pickle.loads(cloudpickle.dumps(add_flow))
    assert flow_copy.name == "adder" and flow_copy(2) == 5
    task_copy = pickle.loads(cloudpickle.dumps(double))
    assert task_copy.task_key == double.task_key and task_copy(4) == 8
