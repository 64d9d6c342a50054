"""Caching: task_input_hash, cache_key_fn, expiration, refresh_cache and cache policies."""

from __future__ import annotations

import asyncio
import datetime
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from prefect_lite import _time, flow, get_client, task
from prefect_lite.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CompoundCachePolicy,
    Inputs,
    UnhashableError,
)
from prefect_lite.exceptions import ConfigurationError
from prefect_lite.results import LocalFileSystem
from prefect_lite.states import State, StateType
from prefect_lite.tasks import task_input_hash
from tests.helpers import run_python


def client() -> Any:
    return get_client(sync_client=True)


def names(state: State) -> list[str]:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    runs = sorted(client().read_task_runs(flow_run_id), key=lambda r: r.created)
    return [str(r.state_name) for r in runs]


# ------------------------------------------------------------------ seed 000 example

load_calls: list[int] = []


@task(cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))
def load_training_data() -> dict[str, Any]:
    # Expensive data loading - cached for 1 hour
    load_calls.append(1)
    return {"rows": list(range(5))}


@flow
def training_flow() -> dict[str, Any]:
    data = load_training_data()
    again = load_training_data()  # Reuses cached result
    return {"data": data, "again": again}


def test_seed_000_cache_key_fn_with_expiration() -> None:
    load_calls.clear()
    first = training_flow(return_state=True)
    assert first.result()["again"] == {"rows": [0, 1, 2, 3, 4]}
    assert names(first) == ["Completed", "Cached"]
    second = training_flow(return_state=True)  # another flow run: still cached
    assert names(second) == ["Cached", "Cached"]
    assert load_calls == [1]
    (cached, _) = sorted(
        client().read_task_runs(second.state_details.flow_run_id), key=lambda r: r.created
    )
    details = cached.state.state_details
    assert details.cache_key is not None and details.cache_expiration is not None
    assert cached.state.result() == {"rows": [0, 1, 2, 3, 4]}  # read back from storage


def test_cache_hit_across_processes(redis_client: redis.Redis) -> None:
    script = """
        import datetime, os, redis
        from prefect_lite import flow, task
        from prefect_lite.tasks import task_input_hash

        @task(cache_key_fn=task_input_hash, cache_expiration=datetime.timedelta(hours=1))
        def expensive(x):
            redis.Redis.from_url(os.environ["PREFECT_LITE_REDIS_URL"]).rpush("calls", x)
            return x * 10

        @flow
        def f():
            return expensive(4, return_state=True)

        state = f()
        print(state.name, state.result())
    """
    outputs = []
    for _ in range(2):
        proc = run_python(script)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout.split())
    assert outputs == [["Completed", "40"], ["Cached", "40"]]
    assert redis_client.lrange("calls", 0, -1) == ["4"]


def test_expiration_follows_the_fake_clock() -> None:
    calls: list[int] = []

    @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(minutes=10))
    def t(x: int) -> int:
        calls.append(x)
        return x

    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    with _time.frozen_time(start) as clock:
        assert t(1, return_state=True).name == "Completed"
        clock.advance(599)
        assert t(1, return_state=True).name == "Cached"
        clock.advance(1)
        assert t(1, return_state=True).name == "Completed"  # expired: ran again
        assert t(1, return_state=True).name == "Cached"
    assert calls == [1, 1]


def test_refresh_cache_runs_again_and_overwrites_the_entry() -> None:
    values = iter(["v1", "v2"])

    @task(cache_key_fn=lambda ctx, args: "fixed")
    def t() -> str:
        return next(values)

    assert t() == "v1"
    assert t() == "v1"
    refreshing = t.with_options(refresh_cache=True)
    assert refreshing.task_key == t.task_key
    state = refreshing(return_state=True)
    assert state.name == "Completed" and state.result() == "v2"
    assert t(return_state=True).name == "Cached"
    assert t() == "v2"


def test_a_cache_key_function_that_raises_fails_the_task_loudly(
    redis_client: redis.Redis,
) -> None:
    calls = []

    def broken_key(ctx: Any, args: dict[str, Any]) -> str:
        raise ValueError("no key today")

    @task(cache_key_fn=broken_key)
    def t() -> int:
        calls.append(1)
        return 1

    @flow
    def f() -> int:
        return t()

    with pytest.raises(ValueError, match="no key today"):
        f()
    (run,) = client().read_flow_runs(flow_name="f")
    (task_run,) = client().read_task_runs(run.id)
    assert task_run.state_name == "Failed"
    assert task_run.state.message == (
        "Could not compute the cache key of task 't': ValueError: no key today"
    )
    assert calls == []
    assert not redis_client.keys("*cache*")


def test_tasks_with_other_names_or_modules_never_share_an_entry() -> None:
    calls: list[str] = []

    def body() -> str:
        calls.append("run")
        return "value"

    same_key = lambda ctx, args: "same"  # noqa: E731
    elsewhere = types.FunctionType(  # the same function, defined in another module
        body.__code__, {**body.__globals__, "__name__": "other_mod"}, "body", None, body.__closure__
    )
    assert elsewhere.__module__ == "other_mod"
    first = task(body, name="first", cache_key_fn=same_key)
    second = task(body, name="second", cache_key_fn=same_key)
    third = task(elsewhere, name="first", cache_key_fn=same_key)
    assert len({first.task_key, second.task_key, third.task_key}) == 3
    states = [t(return_state=True) for t in (first, second, third, first)]
    assert [s.name for s in states] == ["Completed", "Completed", "Completed", "Cached"]
    assert len(calls) == 3


def test_cache_records_can_live_in_a_directory(tmp_path: Path, redis_client: redis.Redis) -> None:
    policy = INPUTS.configure(key_storage=tmp_path / "keys")

    @task(cache_policy=policy)
    def t(x: int) -> int:
        return x + 1

    assert t(1, return_state=True).name == "Completed"
    assert t(1, return_state=True).name == "Cached"
    assert len(list((tmp_path / "keys").glob("*.json"))) == 1
    assert not redis_client.keys("*cache*")
    assert INPUTS.configure(key_storage=LocalFileSystem(tmp_path)).key_storage is not None
    with pytest.raises(ConfigurationError, match="is not a place for cache records"):
        INPUTS.configure(key_storage=42)


# ---------------------------------------------------------------------------- policies


def test_inputs_policy_and_excluding_an_argument() -> None:
    calls: list[tuple[int, str]] = []

    @task(cache_policy=INPUTS - "note")
    def t(x: int, note: str) -> int:
        calls.append((x, note))
        return x

    assert [t(1, "a", return_state=True).name for _ in range(2)] == ["Completed", "Cached"]
    assert t(1, "b", return_state=True).name == "Cached"  # note is ignored
    assert t(2, "a", return_state=True).name == "Completed"
    assert calls == [(1, "a"), (2, "a")]


def test_run_id_policy_caches_within_a_flow_run_only() -> None:
    @task(cache_policy=RUN_ID + INPUTS)
    def t(x: int) -> int:
        return x

    @flow
    def f() -> None:
        t(1)
        t(1)

    assert names(f(return_state=True)) == ["Completed", "Cached"]
    assert names(f(return_state=True)) == ["Completed", "Cached"]


def test_default_policy_is_inputs_source_and_run_id() -> None:
    assert isinstance(DEFAULT, CompoundCachePolicy)
    assert DEFAULT.policies == (INPUTS, TASK_SOURCE, RUN_ID)

    @task(cache_policy=DEFAULT)
    def t(x: int) -> int:
        return x

    @flow
    def f() -> None:
        t(1)
        t(1)
        t(2)

    assert names(f(return_state=True)) == ["Completed", "Cached", "Completed"]


def test_flow_parameters_policy() -> None:
    @task(cache_policy=FLOW_PARAMETERS)
    def t() -> str:
        return "x"

    @flow
    def f(p: int) -> None:
        t()

    assert names(f(1, return_state=True)) == ["Completed"]
    assert names(f(1, return_state=True)) == ["Cached"]
    assert names(f(2, return_state=True)) == ["Completed"]


def test_task_source_policy_distinguishes_code() -> None:
    @task(cache_policy=TASK_SOURCE, name="same")
    def one() -> int:
        return 1

    @task(cache_policy=TASK_SOURCE, name="same")
    def two() -> int:
        return 2

    assert TASK_SOURCE.compute_key(types.SimpleNamespace(task=one), {}, {}) != (
        TASK_SOURCE.compute_key(types.SimpleNamespace(task=two), {}, {})
    )
    assert one(return_state=True).name == "Completed"
    assert one(return_state=True).name == "Cached"


def test_none_policy_never_caches_and_is_neutral_in_sums() -> None:
    assert NO_CACHE is NONE
    assert NONE + INPUTS == INPUTS and INPUTS + NONE == INPUTS

    @task(cache_policy=NONE)
    def t() -> int:
        return 1

    assert [t(return_state=True).name for _ in range(2)] == ["Completed", "Completed"]


def test_policy_algebra_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not hash the task's inputs"):
        TASK_SOURCE - "x"
    excluded = (INPUTS + TASK_SOURCE) - "x"
    assert excluded == CompoundCachePolicy(policies=(Inputs(exclude=("x",)), TASK_SOURCE))
    with pytest.raises(ValueError, match="different key storages"):
        INPUTS.configure(key_storage=tmp_path / "a") + TASK_SOURCE.configure(
            key_storage=tmp_path / "b"
        )


def test_unhashable_inputs_fail_the_task_naming_the_argument() -> None:
    @task(cache_policy=INPUTS)
    def t(x: int, gen: Any) -> int:
        return x

    with pytest.raises(UnhashableError, match=r"argument\(s\) \['gen'\].*INPUTS - 'gen'"):
        t(1, (i for i in range(3)))


def test_persist_result_false_turns_caching_off(redis_client: redis.Redis) -> None:
    @task(cache_key_fn=lambda ctx, args: "k", persist_result=False)
    def t() -> int:
        return 1

    assert [t(return_state=True).name for _ in range(2)] == ["Completed", "Completed"]
    assert not redis_client.keys("*cache*")


def test_an_unpicklable_result_is_not_cached_but_the_task_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task(cache_key_fn=lambda ctx, args: "k")
    def t() -> Any:
        return (i for i in range(2))

    assert [t(return_state=True).name for _ in range(2)] == ["Completed", "Completed"]
    assert "Could not persist the result" in caplog.text


def test_submitted_mapped_and_async_tasks_are_cached() -> None:
    @task(cache_policy=INPUTS)
    def square(x: int) -> int:
        return x * x

    @task(cache_policy=INPUTS)
    async def acube(x: int) -> int:
        return x**3

    @flow
    def f() -> list[int]:
        return square.map([1, 2, 3]).result()

    assert f() == [1, 4, 9]
    again = f(return_state=True)
    assert again.result() == [1, 4, 9]
    assert names(again) == ["Cached", "Cached", "Cached"]
    assert asyncio.run(acube(2)) == 8
    state = asyncio.run(acube(2, return_state=True))
    assert state.name == "Cached" and state.result() == 8


def test_a_lost_blob_is_a_miss_unless_the_record_carries_the_value(home: Path) -> None:
    @task(cache_key_fn=lambda ctx, args: "big", persist_result=True)
    def big() -> str:
        return "x" * 5000

    @task(cache_key_fn=lambda ctx, args: "small", persist_result=True)
    def small() -> int:
        return 5

    assert [big(return_state=True).name, small(return_state=True).name] == ["Completed"] * 2
    for path in (home / "storage").iterdir():
        path.unlink()
    state = big(return_state=True)  # the record points at nothing: a miss, not an error
    assert state.name == "Completed" and state.type == StateType.COMPLETED
    state = small(return_state=True)  # a small result travels in the record itself
    assert state.name == "Cached" and state.result() == 5


def test_task_input_hash_sees_literals_and_is_stable_across_processes() -> None:
    @task(name="same")
    def times_two(x: int) -> int:
        return x * 2

    @task(name="same")
    def times_three(x: int) -> int:
        return x * 3

    assert times_two.fn.__code__.co_code == times_three.fn.__code__.co_code
    keys = {
        task_input_hash(types.SimpleNamespace(task=t), {"x": 1}) for t in (times_two, times_three)
    }
    assert len(keys) == 2  # same bytecode, another constant: another key
    script = """
        from prefect_lite.cache_policies import code_fingerprint

        def f(x):
            inner = lambda y: y in {"a", "b", "c", "d"}
            return x in {"q", "r", "s"} and inner(x)

        print(code_fingerprint(f.__code__))
    """
    seen = {run_python(script, env={"PYTHONHASHSEED": str(seed)}).stdout for seed in range(4)}
    assert len(seen) == 1 and len(seen.pop().strip()) == 64


def test_a_cache_policy_that_is_not_one_is_refused_at_declaration() -> None:
    from prefect_lite.exceptions import DefinitionError

    with pytest.raises(DefinitionError, match="cache_policy must be a cache policy"):
        task(cache_policy="INPUTS")(lambda: 1)


def test_persist_result_alone_means_the_default_policy_within_a_flow_run() -> None:
    """As in Prefect: re-running the same flow run (same run id) reuses persisted results."""
    from prefect_lite import flow, task
    from prefect_lite.client import get_client
    from prefect_lite.engine.flow_engine import run_flow
    from prefect_lite.states import Scheduled

    calls: list[int] = []

    @task(persist_result=True)
    def expensive(x: int) -> int:
        calls.append(x)
        return x * 2

    @flow
    def pipeline(x: int) -> int:
        return expensive(x)

    state = pipeline(3, return_state=True)
    assert state.result() == 6 and calls == [3]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        client.set_flow_run_state(run.id, Scheduled(), force=True)
    assert run_flow(pipeline, flow_run_id=run.id) == 6
    assert calls == [3]  # the second attempt of the same flow run hit the cache
    pipeline(3)
    assert calls == [3, 3]  # a new flow run (new run id) computes again
