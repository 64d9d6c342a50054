"""Futures, mapping, annotations, upstream failures and lineage (task_inputs)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, NamedTuple

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.exceptions import (
    MappingLengthMismatch,
    MappingMissingIterable,
    UpstreamTaskError,
)
from prefect_lite.futures import (
    PrefectFuture,
    PrefectFutureList,
    as_completed,
    resolve_futures_to_results,
    wait,
)
from prefect_lite.states import State, StateType
from prefect_lite.task_runners import ThreadPoolTaskRunner
from prefect_lite.utilities.annotations import allow_failure, opaque, quote, unmapped


def client() -> Any:
    return get_client(sync_client=True)


def task_runs(flow_state: State) -> dict[str, Any]:
    runs = client().read_task_runs(flow_state.state_details.flow_run_id)
    return {r.name: r for r in runs}


def inputs_of(run: Any) -> dict[str, list[Any]]:
    return {k: [ref.id for ref in refs] for k, refs in run.task_inputs.items()}


@task
def add(x: int, y: int = 0) -> int:
    return x + y


@task
def fail(message: str = "upstream broke") -> int:
    raise ValueError(message)


@task
def echo(value: Any) -> Any:
    return value


# ------------------------------------------------------------------------ futures


def test_submit_returns_a_future_with_result_state_and_id() -> None:
    @flow
    def f() -> Any:
        future = add.submit(1, 2)
        assert isinstance(future, PrefectFuture)
        assert future.result() == 3
        future.wait()
        assert future.state.is_completed()
        assert future.done()
        return future.task_run_id

    state = f(return_state=True)
    run_id = state.result()
    assert client().read_task_run(run_id).state_name == "Completed"


def test_future_result_of_a_failed_task() -> None:
    @flow
    def f() -> Any:
        future = fail.submit()
        with pytest.raises(ValueError, match="upstream broke"):
            future.result()
        exc = future.result(raise_on_failure=False)
        assert isinstance(exc, ValueError)
        assert future.state.is_failed()
        return "checked"

    assert f() == "checked"


def test_future_result_timeout() -> None:
    release = threading.Event()

    @task
    def blocked() -> int:
        release.wait(10)
        return 1

    @flow
    def f() -> int:
        future = blocked.submit()
        with pytest.raises(TimeoutError):
            future.result(timeout=0.05)
        assert not future.done()
        assert future.state.type in (StateType.RUNNING, StateType.PENDING)
        release.set()
        return future.result()

    assert f() == 1


def test_futures_chain_and_nested_futures_are_resolved() -> None:
    class Pair(NamedTuple):
        left: Any
        right: Any

    @flow
    def f() -> Any:
        a = add.submit(1)
        b = add.submit(a, 10)  # a future as an argument
        nested = echo.submit({"list": [a, b], "tuple": (a,), "set": {b}, "pair": Pair(a, b)})
        return b.result(), nested.result()

    b, nested = f()
    assert b == 11
    assert nested == {"list": [1, 11], "tuple": (1,), "set": {11}, "pair": Pair(1, 11)}


def test_lineage_records_which_upstream_runs_fed_each_parameter() -> None:
    @flow
    def f() -> None:
        a = add.submit(1)
        b = add(1000, 1)  # a plain value returned by a task run is tracked too
        text = echo("some text")
        add.submit(a, b).wait()
        echo([text, a])
        add(5, wait_for=[a])

    state = f(return_state=True)
    runs = task_runs(state)
    a_id, b_id, text_id = runs["add-0"].id, runs["add-1"].id, runs["echo-0"].id
    assert inputs_of(runs["add-2"]) == {"x": [a_id], "y": [b_id]}
    assert inputs_of(runs["echo-1"]) == {"value": [text_id, a_id]}
    assert inputs_of(runs["add-3"]) == {"wait_for": [a_id]}
    assert runs["add-0"].task_inputs == {}


def test_wait_for_orders_runs() -> None:
    order: list[str] = []

    @task
    def slow() -> None:
        time.sleep(0.05)
        order.append("slow")

    @task
    def after() -> None:
        order.append("after")

    @flow
    def f() -> None:
        first = slow.submit()
        after.submit(wait_for=[first]).wait()

    f()
    assert order == ["slow", "after"]


def test_unwaited_submissions_finish_before_the_flow_does() -> None:
    done = []

    @task
    def background() -> None:
        time.sleep(0.05)
        done.append(1)

    @flow
    def f() -> str:
        background.submit()
        return "returned first"

    assert f() == "returned first"
    assert done == [1]


# ---------------------------------------------------------------- upstream failure


def test_upstream_failure_fails_downstream_without_running_it() -> None:
    ran = []

    @task
    def downstream(x: int) -> int:
        ran.append(x)
        return x

    @flow
    def f() -> Any:
        up = fail.submit()
        down = downstream.submit(up)
        down.wait()
        with pytest.raises(UpstreamTaskError, match="did not reach a 'COMPLETED' state"):
            down.result()
        return down.task_run_id

    state = f(return_state=True)
    down_id = state.result()
    assert ran == []
    states = client().read_task_run_states(down_id)
    assert [s.name for s in states] == ["Pending", "NotReady", "Failed"]
    assert "did not reach a 'COMPLETED' state" in (states[-1].message or "")


def test_allow_failure_passes_the_exception_downstream() -> None:
    @task
    def inspect_value(x: Any) -> str:
        return f"got {type(x).__name__}: {x}"

    @flow
    def f() -> str:
        up = fail.submit("kaboom")
        return inspect_value(allow_failure(up))

    assert f() == "got ValueError: kaboom"


def test_wait_for_failure_blocks_unless_allowed() -> None:
    @flow
    def f() -> tuple[State, State]:
        up = fail.submit()
        blocked = add.submit(1, wait_for=[up])
        allowed = add.submit(2, wait_for=[allow_failure(up)])
        blocked.wait()
        allowed.wait()
        return blocked.state, allowed.state

    blocked, allowed = f()  # a flow returning states gives them back (and ends Failed)
    assert blocked.is_failed() and isinstance(blocked.data, UpstreamTaskError)
    assert allowed.is_completed() and allowed.result() == 2


# ----------------------------------------------------------------------- mapping


def test_map_with_unmapped_arguments() -> None:
    @task
    def process_item(item: int, config: dict[str, int], multiplier: int) -> int:
        return item * config["factor"] * multiplier

    @flow
    def f() -> list[int]:
        futures = process_item.map([1, 2, 3], unmapped({"factor": 10}), unmapped(2))
        assert isinstance(futures, PrefectFutureList)
        return futures.result()

    state = f(return_state=True)
    assert state.result() == [20, 40, 60]
    assert sorted(task_runs(state)) == ["process_item-0", "process_item-1", "process_item-2"]


def test_map_over_futures_and_a_future_list() -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def f() -> tuple[list[int], list[int]]:
        from_future = add.map(numbers.submit(), 100)  # a non-iterable constant is static
        chained = add.map(from_future, unmapped(1))
        return from_future.result(), chained.result()

    state = f(return_state=True)
    assert state.result() == ([101, 102, 103], [102, 103, 104])
    runs = task_runs(state)
    numbers_id = runs["numbers-0"].id
    assert inputs_of(runs["add-0"]) == {"x": [numbers_id]}
    assert inputs_of(runs["add-3"]) == {"x": [runs["add-0"].id]}


def test_map_with_allow_failure_and_failed_upstreams() -> None:
    @task
    def risky(value: int) -> int:
        if value < 0:
            raise ValueError("Negative value")
        return value * 2

    @task
    def handle(result: Any) -> str:
        if isinstance(result, Exception):
            return f"Error: {result}"
        return f"Success: {result}"

    @flow
    def f() -> list[str]:
        results = risky.map([-1, 2])
        return handle.map(allow_failure(results)).result()

    assert f() == ["Error: Negative value", "Success: 4"]


def test_map_errors() -> None:
    @flow
    def mismatch() -> None:
        add.map([1, 2], [1, 2, 3])

    with pytest.raises(MappingLengthMismatch, match="different lengths"):
        mismatch()

    @flow
    def nothing() -> None:
        add.map(1, 2)

    with pytest.raises(MappingMissingIterable, match="no iterable argument"):
        nothing()


def test_map_return_state_and_strings_are_not_iterated() -> None:
    @flow
    def f() -> list[Any]:
        return echo.map(["ab", "cd"], return_state=True)

    states = f()
    assert [s.result() for s in states] == ["ab", "cd"]


# -------------------------------------------------------------------- annotations


def test_quote_passes_values_untouched() -> None:
    @task
    def expression_task(expr: Any) -> str:
        return f"Expression: {expr}"

    @flow
    def f() -> Any:
        x, y = 10, 20
        future = add.submit(1)
        untouched = echo(quote([future]))
        return expression_task(x + y), expression_task(quote("x + y")), untouched[0] is future

    assert f() == ("Expression: 30", "Expression: x + y", True)


def test_opaque_resolves_the_top_level_only() -> None:
    @task
    def make() -> dict[str, Any]:
        return {"inner": "value"}

    @flow
    def f() -> Any:
        return echo(opaque(make.submit()))

    assert f() == {"inner": "value"}


# ------------------------------------------------------------------ helpers, runner


def test_wait_as_completed_and_resolution_helpers() -> None:
    @task
    def sleepy(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @flow
    def f() -> Any:
        futures = [sleepy.submit(0.1), sleepy.submit(0.0)]
        first = next(iter(as_completed(futures)))
        done, not_done = wait(futures)
        assert not not_done and len(done) == 2
        return first.result(), resolve_futures_to_results({"all": futures})

    first, resolved = f()
    assert first == 0.0
    assert resolved == {"all": [0.1, 0.0]}


def test_futures_list_result_timeout() -> None:
    release = threading.Event()

    @task
    def blocked(i: int) -> int:
        release.wait(10)
        return i

    @flow
    def f() -> list[int]:
        futures = blocked.map([1, 2])
        with pytest.raises(TimeoutError):
            futures.result(timeout=0.05)
        release.set()
        return futures.result()

    assert f() == [1, 2]


def test_submissions_run_concurrently_in_threads_with_the_context() -> None:
    barrier = threading.Barrier(3, timeout=5)

    @task
    def meet(i: int) -> str:
        barrier.wait()
        from prefect_lite.context import FlowRunContext, TaskRunContext

        assert FlowRunContext.get() is not None and TaskRunContext.get() is not None
        return threading.current_thread().name

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def f() -> list[str]:
        return meet.map([1, 2, 3]).result()

    names = f()
    assert len(set(names)) == 3


def test_a_bounded_pool_does_not_deadlock_on_waiting_downstreams() -> None:
    @task
    def slow_source() -> int:
        time.sleep(0.05)
        return 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def f() -> list[int]:
        source = slow_source.submit()
        downstream = [add.submit(source, i) for i in range(5)]  # queued behind it
        return [d.result() for d in downstream]

    assert f() == [1, 2, 3, 4, 5]


def test_max_workers_is_validated() -> None:
    from prefect_lite.exceptions import DefinitionError

    with pytest.raises(DefinitionError, match="max_workers"):
        ThreadPoolTaskRunner(max_workers=0)


def test_async_flow_submits_and_awaits_futures() -> None:
    @task
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @flow
    async def f() -> list[int]:
        futures = work.map([1, 2, 3])
        downstream = await work(futures[0])
        return [*futures.result(), downstream]

    assert asyncio.run(f()) == [2, 3, 4, 3]
