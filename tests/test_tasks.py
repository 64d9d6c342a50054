"""@task: options, retries, timeouts, hooks, names, tags, async, outside flows, errors."""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from typing import Any

import pytest

from prefect_lite import flow, tags, task
from prefect_lite.client import get_client
from prefect_lite.context import TaskRunContext
from prefect_lite.engine import caching
from prefect_lite.exceptions import (
    DefinitionError,
    MissingContextError,
    NotCallableError,
    ParameterBindError,
    TaskRunTimeoutError,
)
from prefect_lite.retries import exponential_backoff
from prefect_lite.states import Completed, Failed, ResultRef, State, StateType
from prefect_lite.tasks import Task, task_input_hash


def client() -> Any:
    return get_client(sync_client=True)


def task_history(task_run_id: uuid.UUID) -> list[str]:
    return [s.name or "" for s in client().read_task_run_states(task_run_id)]


def runs_of(flow_state: State) -> list[Any]:
    flow_run_id = flow_state.state_details.flow_run_id
    assert flow_run_id is not None
    return list(client().read_task_runs(flow_run_id))


# ------------------------------------------------------------------------ basics


def test_a_task_in_a_flow_returns_its_result_and_is_recorded() -> None:
    @task
    def square(x: int) -> int:
        return x * x

    @flow
    def f() -> int:
        return square(3) + square(4)

    state = f(return_state=True)
    assert state.result() == 25
    runs = runs_of(state)
    assert [r.name for r in runs] == ["square-0", "square-1"]
    for run in runs:
        assert run.state_name == "Completed"
        assert run.run_count == 1
        assert run.flow_run_id == state.state_details.flow_run_id
        assert run.task_key == square.task_key
        assert task_history(run.id) == ["Pending", "Running", "Completed"]


def test_task_defaults() -> None:
    def compute_things(a: int) -> int:
        """Computes."""
        return a

    t = task(compute_things)
    assert isinstance(t, Task)
    assert t.name == "compute_things"
    assert t.description == "Computes."
    assert t.fn is compute_things
    assert t.task_key.startswith("compute_things-")
    assert t.task_key == task(compute_things).task_key  # stable
    assert t.task_key != task(name="other")(compute_things).task_key


def test_the_original_exception_is_raised_and_the_run_failed() -> None:
    @task
    def boom() -> None:
        raise ValueError("bad value")

    @flow
    def f() -> str:
        try:
            boom()
        except ValueError as exc:
            return f"caught {exc}"
        return "not raised"

    state = f(return_state=True)
    assert state.result() == "caught bad value"
    (run,) = runs_of(state)
    assert run.state_type == StateType.FAILED
    assert run.state.message == "Task run encountered an exception ValueError: bad value"


def test_return_state_and_returned_states() -> None:
    @task
    def boom() -> None:
        raise ValueError("x")

    @task
    def gives_failed() -> State:
        return Failed(message="by hand")

    @task
    def gives_completed() -> State:
        return Completed(data=7)

    @flow
    def f() -> list[Any]:
        return [
            boom(return_state=True),
            gives_failed(return_state=True),
            gives_completed(return_state=True),
            gives_completed(),
        ]

    failed, manual, completed, value = f()
    assert failed.is_failed() and isinstance(failed.result(raise_on_failure=False), ValueError)
    assert manual.is_failed() and manual.message == "by hand"
    assert completed.is_completed() and completed.result() == 7
    assert value == 7


def test_tasks_called_outside_a_flow_still_run_and_are_recorded() -> None:
    @task
    def lonely(x: int) -> int:
        return x + 1

    state = lonely(1, return_state=True)
    assert state.result() == 2
    run = client().read_task_run(state.state_details.task_run_id)
    assert run.flow_run_id is None
    assert run.name.startswith("lonely-")
    assert task_history(run.id) == ["Pending", "Running", "Completed"]
    assert lonely(5) == 6


def test_submit_and_map_need_a_flow() -> None:
    @task
    def t(x: int) -> int:
        return x

    with pytest.raises(MissingContextError, match="outside of a flow run"):
        t.submit(1)
    with pytest.raises(MissingContextError, match="outside of a flow run"):
        t.map([1, 2])


def test_bad_arguments_raise_a_bind_error() -> None:
    @task
    def t(x: int) -> int:
        return x

    with pytest.raises(ParameterBindError, match="'t'"):
        t(1, 2)  # type: ignore[call-arg]


def test_varargs_kwargs_and_positional_only_parameters() -> None:
    @task
    def flexible(a: int, /, *rest: int, scale: int = 1, **extra: int) -> int:
        return (a + sum(rest) + sum(extra.values())) * scale

    @flow
    def f() -> int:
        return flexible(1, 2, 3, scale=2, bonus=4)

    assert f() == 20


# ----------------------------------------------------------------------- retries


def test_retries_are_counted_and_recorded() -> None:
    attempts = []

    @task(retries=3)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "done"

    @flow
    def f() -> str:
        return flaky()

    state = f(return_state=True)
    assert state.result() == "done"
    (run,) = runs_of(state)
    assert run.run_count == 3
    assert task_history(run.id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]


def test_retry_delays_go_through_awaiting_retry() -> None:
    attempts = []

    @task(retries=2, retry_delay_seconds=[0.01, 0.02])
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("again")
        return len(attempts)

    @flow
    def f() -> int:
        return flaky()

    state = f(return_state=True)
    assert state.result() == 3
    (run,) = runs_of(state)
    assert task_history(run.id) == [
        "Pending",
        "Running",
        "AwaitingRetry",
        "Retrying",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    awaiting = [s for s in client().read_task_run_states(run.id) if s.name == "AwaitingRetry"]
    assert all(s.state_details.scheduled_time is not None for s in awaiting)


def test_retries_exhausted_fail_with_the_last_exception() -> None:
    @task(retries=2, retry_delay_seconds=0)
    def always() -> None:
        raise RuntimeError("always")

    @flow
    def f() -> None:
        always()

    with pytest.raises(RuntimeError, match="always"):
        f()
    run = client().read_flow_runs(flow_name="f")[0]
    (task_run,) = client().read_task_runs(run.id)
    assert task_run.run_count == 3
    assert task_run.state_name == "Failed"


def test_retry_delay_callable_and_exponential_backoff() -> None:
    assert exponential_backoff(backoff_factor=2)(3) == [2.0, 4.0, 8.0]
    t = task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=1))(lambda: 1)
    assert t.retry_delay_seconds == [1.0, 2.0, 4.0]
    assert task(retries=2, retry_delay_seconds=lambda n: [5] * n)(
        lambda: 1
    ).retry_delay_seconds == [
        5.0,
        5.0,
    ]


def test_retry_condition_fn_gets_task_run_and_state() -> None:
    seen: list[tuple[Any, Any, State]] = []

    def only_value_errors(t: Any, run: Any, state: State) -> bool:
        seen.append((t, run, state))
        return isinstance(state.result(raise_on_failure=False), ValueError)

    calls = []

    @task(retries=5, retry_condition_fn=only_value_errors)
    def picky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("retry me")
        raise TypeError("give up")

    @flow
    def f() -> None:
        picky()

    with pytest.raises(TypeError, match="give up"):
        f()
    assert len(calls) == 2
    assert seen[0][0] is picky and seen[0][1].name == "picky-0" and seen[0][2].is_failed()


# ---------------------------------------------------------------------- timeouts


def test_timeout_ends_timed_out_and_raises_timeout_error() -> None:
    @task(timeout_seconds=0.1)
    def slow() -> None:
        time.sleep(5)

    captured: list[State] = []

    @flow
    def f() -> None:
        captured.append(slow(return_state=True))

    f()
    (state,) = captured
    assert state.type == StateType.FAILED and state.name == "TimedOut"
    assert state.message == "Task run exceeded timeout of 0.1 second(s)"

    @flow
    def g() -> None:
        slow()

    with pytest.raises(TaskRunTimeoutError):
        g()
    assert issubclass(TaskRunTimeoutError, TimeoutError)


def test_timeout_in_a_worker_thread() -> None:
    @task(timeout_seconds=0.1)
    def busy() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)

    captured: list[State] = []

    @flow
    def f() -> None:
        future = busy.submit()
        future.wait()
        captured.append(future.state)

    f()
    assert captured[0].name == "TimedOut"


def test_async_task_timeout() -> None:
    @task(timeout_seconds=0.05)
    async def slow() -> None:
        await asyncio.sleep(5)

    captured: list[State] = []

    @flow
    async def f() -> None:
        captured.append(await slow(return_state=True))

    asyncio.run(f())
    assert captured[0].name == "TimedOut"


# ------------------------------------------------------------------------- hooks


def test_hooks_get_the_task_its_run_and_the_final_state() -> None:
    calls: list[tuple[str, Any, Any, State]] = []

    @task(
        on_completion=[lambda t, r, s: calls.append(("completion", t, r, s))],
        on_failure=[lambda t, r, s: calls.append(("failure", t, r, s))],
    )
    def maybe(fail: bool) -> int:
        if fail:
            raise ValueError("asked to")
        return 1

    @flow
    def f() -> None:
        maybe(False)
        maybe(True, return_state=True)

    f()
    assert [c[0] for c in calls] == ["completion", "failure"]
    _, t, run, state = calls[0]
    assert t is maybe and run.name == "maybe-0" and state.is_completed()
    assert run.state is state
    assert calls[1][2].name == "maybe-1" and calls[1][3].is_failed()


# ------------------------------------------------------------------ names & tags


def test_task_run_name_template_and_callable() -> None:
    @task(task_run_name="sum-{a}-and-{b}")
    def add(a: int, b: int) -> int:
        return a + b

    def namer() -> str:
        ctx = TaskRunContext.get()
        assert ctx is not None
        return f"named-{ctx.parameters['x']}"

    @task(task_run_name=namer)
    def ident(x: int) -> int:
        return x

    @flow
    def f() -> int:
        return add(1, 2) + ident(9)

    state = f(return_state=True)
    assert state.result() == 12
    assert sorted(r.name for r in runs_of(state)) == ["named-9", "sum-1-and-2"]


def test_tags_from_context_and_task_are_combined() -> None:
    @task(tags=["own"])
    def tagged() -> None:
        pass

    @flow
    def f() -> None:
        with tags("ctx", "more"):
            tagged()
        tagged()

    state = f(return_state=True)
    first, second = runs_of(state)
    assert sorted(first.tags) == ["ctx", "more", "own"]
    assert second.tags == ["own"]


def test_flow_run_tags_reach_its_tasks() -> None:
    @task
    def inner() -> None:
        pass

    @flow
    def f() -> None:
        inner()

    with tags("outer"):
        state = f(return_state=True)
    assert runs_of(state)[0].tags == ["outer"]


# ------------------------------------------------------------------------- async


def test_async_tasks_in_a_sync_flow_via_submit_and_in_async_flows() -> None:
    @task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    @flow
    def sync_flow() -> list[int]:
        return [double.submit(i).result() for i in range(3)]

    assert sync_flow() == [0, 2, 4]

    @flow
    async def async_flow() -> int:
        return await double(21)

    assert asyncio.run(async_flow()) == 42
    assert asyncio.run(double(1)) == 2  # outside a flow too


# ----------------------------------------------------------------------- options


def test_with_options_copies_and_overrides() -> None:
    @task(retries=2, tags=["a"])
    def base() -> int:
        return 1

    copy = base.with_options(name="renamed", retries=0)
    assert copy.name == "renamed" and copy.retries == 0 and copy.tags == {"a"}
    assert base.retries == 2 and base.name == "base"
    assert copy() == 1
    with pytest.raises(TypeError, match="unknown option"):
        base.with_options(retires=1)


def test_result_options_are_accepted_and_stored() -> None:
    def key_fn(ctx: Any, params: dict[str, Any]) -> str:
        return "k"

    t = task(
        persist_result=True,
        result_storage="local",
        result_serializer="json",
        cache_key_fn=key_fn,
        cache_expiration=datetime.timedelta(minutes=5),
        refresh_cache=True,
        cache_result_in_memory=False,
        log_prints=True,
    )(lambda: 1)
    assert t.persist_result is True and t.result_storage == "local"
    assert t.cache_key_fn is key_fn and t.cache_expiration == datetime.timedelta(minutes=5)
    assert t.refresh_cache is True and t.cache_result_in_memory is False and t.log_prints is True
    assert task(result_storage="x")(lambda: 1).persist_result is True


def test_task_input_hash_is_stable_and_input_sensitive() -> None:
    @task
    def t(x: Any) -> Any:
        return x

    ctx = TaskRunContext(task=t)
    assert task_input_hash(ctx, {"x": 1}) == task_input_hash(ctx, {"x": 1})
    assert task_input_hash(ctx, {"x": 1}) != task_input_hash(ctx, {"x": 2})
    assert task_input_hash(ctx, {"x": object()}) is not None  # pickled
    assert task_input_hash(ctx, {"x": (i for i in range(2))}) is None  # unhashable


class _DictResults:
    """A minimal results implementation plugged into the engine's seam."""

    def __init__(self) -> None:
        self.store: dict[str, Any] = {}

    def lookup(self, task: Any, cache_key: str, context: Any) -> State | None:
        if cache_key in self.store:
            return Completed(data=self.store[cache_key])
        return None

    def persist(
        self, task: Any, value: Any, cache_key: str | None, expiration: Any, ctx: Any
    ) -> Any:
        if cache_key is not None:
            self.store[cache_key] = value
        return ResultRef(storage="memory", key=cache_key or "none")


def test_the_results_seam_computes_keys_and_serves_cached_states() -> None:
    results = _DictResults()
    caching.register_result_hooks(results)
    calls = []
    try:

        @task(cache_key_fn=task_input_hash)
        def expensive(x: int) -> int:
            calls.append(x)
            return x * 100

        @flow
        def f() -> list[int]:
            return [expensive(1), expensive(1), expensive(2)]

        state = f(return_state=True)
        assert state.result() == [100, 100, 200]
        assert calls == [1, 2]
        names = [r.state_name for r in runs_of(state)]
        assert names == ["Completed", "Cached", "Completed"]
        cached = runs_of(state)[1]
        assert cached.state.state_details.cache_key is not None
        assert results.store  # the completed runs offered their values to persist
    finally:
        caching.register_result_hooks(None)


# ------------------------------------------------------------------- declaration


def test_declaration_errors_are_clear() -> None:
    with pytest.raises(NotCallableError, match="@task needs a function"):
        task(3)  # type: ignore[call-overload]

    def f(x: int) -> None:
        pass

    with pytest.raises(DefinitionError, match=r"uses \{nope\}"):
        task(task_run_name="t-{nope}")(f)
    with pytest.raises(DefinitionError, match="retries must be >= 0"):
        task(retries=-2)(f)
    with pytest.raises(DefinitionError, match="whole number"):
        task(retries="3")(f)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="timeout_seconds must be a number > 0"):
        task(timeout_seconds=0)(f)
    with pytest.raises(DefinitionError, match="at most 50 retry delays"):
        task(retries=1, retry_delay_seconds=[1] * 51)(f)
    with pytest.raises(DefinitionError, match="retry_delay_seconds must be"):
        task(retries=1, retry_delay_seconds="soon")(f)
    with pytest.raises(DefinitionError, match="callable failed"):
        task(retries=1, retry_delay_seconds=lambda n: 1 / 0)(f)
    with pytest.raises(NotCallableError, match="retry_condition_fn must be callable"):
        task(retry_condition_fn=True)(f)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="tags must be a list"):
        task(tags="solo")(f)
    with pytest.raises(DefinitionError, match="cache_expiration"):
        task(cache_expiration=5)(f)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="on_failure must be a list"):
        task(on_failure=5)(f)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="backoff_factor"):
        exponential_backoff(-1)

    def reserved(return_state: bool) -> None:
        pass

    with pytest.raises(DefinitionError, match="reserved"):
        task(reserved)


@pytest.mark.parametrize(
    ("delays", "attempt", "expected"),
    [
        (0.0, 1, 0.0),
        (3.0, 2, 3.0),
        ([1.0, 2.0], 1, 1.0),
        ([1.0, 2.0], 2, 2.0),
        ([1.0, 2.0], 5, 2.0),
    ],
)
def test_delay_for_retry_repeats_the_last_delay(delays: Any, attempt: int, expected: float) -> None:
    from prefect_lite.retries import delay_for_retry

    assert delay_for_retry(delays, attempt) == expected


def test_jitter_stays_within_its_bounds() -> None:
    from prefect_lite.retries import check_jitter, delay_for_retry

    values = [delay_for_retry(10.0, 1, jitter_factor=0.5) for _ in range(200)]
    assert all(5.0 <= v <= 15.0 for v in values) and len(set(values)) > 1
    with pytest.raises(DefinitionError, match="retry_jitter_factor"):
        check_jitter(-1, "task 't'")
