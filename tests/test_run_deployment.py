"""Triggering deployments: ``create_flow_run_from_deployment``, the run-change long poll,
``run_deployment`` (sync, async, as a subflow) and ``deployment run`` on the CLI.

Runs are driven to their end by a thread proposing the states a worker would (through
the real client); the same paths with real server and worker processes are in
``test_e2e_remote``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis

from prefect_lite import _time, flow, task
from prefect_lite.cli import cli
from prefect_lite.cli._errors import run_cli
from prefect_lite.client import get_client
from prefect_lite.deployments import run_deployment
from prefect_lite.deployments.flow_runs import arun_deployment
from prefect_lite.exceptions import ObjectNotFound, ValidationError
from prefect_lite.schemas import Deployment, FlowRun
from prefect_lite.server import create_app
from prefect_lite.settings import get_settings, temporary_settings
from prefect_lite.states import Completed, Failed, Pending, Running, StateType
from prefect_lite.storage import keys
from tests._live_server import serve
from tests.helpers import REPO_ROOT, wait_for

SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "count": {"title": "count", "type": "integer", "position": 0},
        "label": {"title": "label", "type": "string", "default": "x", "position": 1},
    },
    "required": ["count"],
}


@pytest.fixture
def deployment() -> Deployment:
    """``typed/prod`` in pool ``pool`` (registered), label defaults to 'y'."""
    with get_client(sync_client=True) as client:
        client.create_work_pool("pool")
        return client.create_deployment(
            "typed",
            "prod",
            entrypoint="tests/fixtures/worker_flows.py:typed",
            path=str(REPO_ROOT),
            parameters={"label": "y"},
            parameter_openapi_schema=SCHEMA,
            tags=["team-a"],
            work_pool_name="pool",
            version="7",
        )


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


def _client() -> Any:
    return get_client(sync_client=True)


def _runs_of(deployment: Deployment) -> list[FlowRun]:
    with _client() as client:
        found: list[FlowRun] = client.read_flow_runs(deployment_id=deployment.id)
        return found


def _finish_next_run(
    pool: ThreadPoolExecutor, deployment: Deployment, final: Any = Completed
) -> Future[FlowRun]:
    """In a thread: wait for the deployment's first run, then move it the way a worker
    would (Pending, Running, then ``final``)."""

    def work() -> FlowRun:
        found = wait_for(lambda: _runs_of(deployment), message="no run appeared")
        run = found[0]
        with _client() as client:
            for state in (Pending(), Running(), final()):
                client.set_flow_run_state(run.id, state)
            done: FlowRun = client.read_flow_run(run.id)
            return done

    return pool.submit(work)


# ------------------------------------------------------------ create_flow_run_from_deployment


def test_a_triggered_run_merges_parameters_and_takes_the_deployments_fields(
    deployment: Deployment,
) -> None:
    with _client() as client:
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": 3}, tags=["adhoc"], name="by-hand"
        )
    assert run.parameters == {"label": "y", "count": 3}
    assert run.tags == ["adhoc", "team-a"]
    assert run.name == "by-hand"
    assert run.deployment_id == deployment.id
    assert (run.flow_name, run.deployment_version) == ("typed", "7")
    assert (run.work_pool_name, run.work_queue_name) == ("pool", "default")
    assert run.state is not None and run.state.type is StateType.SCHEDULED
    assert run.version == 1


def test_a_run_due_now_is_admitted_at_once(
    deployment: Deployment, redis_client: redis.Redis
) -> None:
    """No scheduler runs in this test: the trigger itself hands the run to its queue."""
    with _client() as client:
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"count": 1})
    queued = redis_client.lrange(keys.pool_queue_ready("pool", "default"), 0, -1)
    assert str(run.id) in queued


def test_a_later_run_waits_in_the_due_set(
    deployment: Deployment, redis_client: redis.Redis
) -> None:
    later = _time.now() + timedelta(hours=1)
    with _client() as client:
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": 1}, scheduled_time=later
        )
    assert run.expected_start_time == later
    assert run.state is not None and run.state.state_details.scheduled_time == later
    assert redis_client.zscore(keys.scheduled_due(), str(run.id)) == pytest.approx(
        later.timestamp()
    )
    assert redis_client.llen(keys.pool_queue_ready("pool", "default")) == 0


def test_a_work_queue_override_delivers_on_that_queue(
    deployment: Deployment, redis_client: redis.Redis
) -> None:
    with _client() as client:
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": 1}, work_queue_name="urgent"
        )
        assert run.work_queue_name == "urgent"
        assert client.read_work_queue("pool", "urgent").name == "urgent"
    assert str(run.id) in redis_client.lrange(keys.pool_queue_ready("pool", "urgent"), 0, -1)


def test_the_same_idempotency_key_gives_the_same_run(deployment: Deployment) -> None:
    with _client() as client:
        first = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": 1}, idempotency_key="nightly-2024-01-01"
        )
        again = client.create_flow_run_from_deployment_name(
            "typed/prod", parameters={"count": 2}, idempotency_key="nightly-2024-01-01"
        )
        other = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": 1}, idempotency_key="nightly-2024-01-02"
        )
    assert again.id == first.id and again.parameters == {"label": "y", "count": 1}
    assert other.id != first.id
    assert len(_runs_of(deployment)) == 2


def test_a_parent_task_run_links_the_parent_flow_run(deployment: Deployment) -> None:
    @task
    def stand_in() -> None:
        pass

    @flow
    def parent() -> uuid.UUID:
        return stand_in.submit().task_run_id

    task_run_id = parent()
    with _client() as client:
        task_run = client.read_task_run(task_run_id)
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": 1}, parent_task_run_id=task_run_id
        )
    assert run.parent_task_run_id == task_run_id
    assert run.parent_flow_run_id == task_run.flow_run_id


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"count": "three"}, "parameter 'count' of flow 'typed' must be an integer, got 'three'"),
        ({"count": 1, "colour": "red"}, "flow 'typed' has no parameter 'colour'"),
        ({}, "flow 'typed' needs a value for parameter 'count'"),
        ({"count": True}, "parameter 'count' of flow 'typed' must be an integer"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(
    deployment: Deployment, parameters: dict[str, Any], expected: str
) -> None:
    with _client() as client, pytest.raises(ValidationError, match=expected):
        client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    assert _runs_of(deployment) == []


def test_the_schema_check_can_be_turned_off_per_run(deployment: Deployment) -> None:
    with _client() as client:
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"count": "many"}, enforce_parameter_schema=False
        )
    assert run.parameters["count"] == "many"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"work_queue_name": "a.b"}, "invalid work queue name 'a.b'"),
        ({"name": "  "}, "flow run name must not be empty"),
        ({"idempotency_key": ""}, "idempotency key must not be empty"),
        ({"parent_task_run_id": uuid.UUID(int=7)}, "no task run with id"),
    ],
)
def test_bad_fields_are_refused(
    deployment: Deployment, fields: dict[str, Any], expected: str
) -> None:
    with _client() as client, pytest.raises((ValidationError, ObjectNotFound), match=expected):
        client.create_flow_run_from_deployment(deployment.id, parameters={"count": 1}, **fields)


def test_unknown_deployments_are_not_found(deployment: Deployment) -> None:
    with _client() as client:
        with pytest.raises(ObjectNotFound, match="no deployment with id"):
            client.create_flow_run_from_deployment(uuid.uuid4())
        with pytest.raises(ObjectNotFound, match="no deployment named 'typed/nope'"):
            client.create_flow_run_from_deployment_name("typed/nope")
        with pytest.raises(ValidationError, match="is not a deployment name"):
            client.create_flow_run_from_deployment_name("typed")


def test_over_http_bad_parameters_are_422_with_detail(deployment: Deployment) -> None:
    with serve(create_app(get_settings())) as base:
        path = f"{base}/api/deployments/{deployment.id}/create_flow_run"
        bad = httpx.post(path, json={"parameters": {"count": "three"}})
        assert bad.status_code == 422
        assert "parameter 'count' of flow 'typed' must be an integer" in bad.json()["detail"]
        missing = httpx.post(f"{base}/api/deployments/{uuid.uuid4()}/create_flow_run", json={})
        assert missing.status_code == 404 and "no deployment" in missing.json()["detail"]
        good = httpx.post(
            f"{base}/api/deployments/name/typed/prod/create_flow_run",
            json={"parameters": {"count": 2}, "idempotency_key": "k"},
        )
        assert good.status_code == 201, good.text
        assert good.json()["parameters"] == {"label": "y", "count": 2}


# ------------------------------------------------------------------------ the long poll


def test_waiting_returns_at_once_when_the_version_already_moved(deployment: Deployment) -> None:
    with _client() as client:
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"count": 1})
        client.set_flow_run_state(run.id, Pending())
        seen = client.wait_for_flow_run_change(run.id, version=run.version, timeout=10)
    assert seen.version == 2 and seen.state_type is StateType.PENDING


def test_waiting_wakes_on_a_state_change(deployment: Deployment, pool: ThreadPoolExecutor) -> None:
    with _client() as client:
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"count": 1})
    started = threading.Event()

    def change() -> None:
        started.wait(10)
        with _client() as other:
            other.set_flow_run_state(run.id, Pending())

    pool.submit(change)
    with _client() as client:
        began = time.monotonic()
        started.set()
        seen = client.wait_for_flow_run_change(run.id, version=run.version, timeout=10)
        waited = time.monotonic() - began
    assert seen.version == 2
    assert waited < 9, "the wait ran into its timeout instead of waking on the change"


def test_waiting_without_a_change_returns_the_run_unchanged(deployment: Deployment) -> None:
    with _client() as client:
        run = client.create_flow_run_from_deployment(deployment.id, parameters={"count": 1})
        seen = client.wait_for_flow_run_change(run.id, version=run.version, timeout=0.05)
        now = client.wait_for_flow_run_change(run.id, timeout=0)
    assert seen.version == run.version == now.version


def test_waiting_bad_input() -> None:
    with _client() as client:
        with pytest.raises(ObjectNotFound, match="no flow run with id"):
            client.wait_for_flow_run_change(uuid.uuid4(), timeout=0.1)
        with pytest.raises(ValidationError, match="timeout must be between 0 and 10"):
            client.wait_for_flow_run_change(uuid.uuid4(), timeout=11)
        with pytest.raises(ValidationError, match="version must be 0 or more"):
            client.wait_for_flow_run_change(uuid.uuid4(), version=-1, timeout=1)


def test_waiting_over_http(deployment: Deployment, pool: ThreadPoolExecutor) -> None:
    with serve(create_app(get_settings())) as base, temporary_settings(api_url=f"{base}/api"):
        done = _finish_next_run(pool, deployment)
        run = run_deployment("typed/prod", parameters={"count": 2}, timeout=30)
        assert run.state_type is StateType.COMPLETED
        assert done.result(timeout=30).id == run.id
        late = httpx.post(f"{base}/api/flow_runs/{run.id}/wait", json={"timeout": 60})
        assert late.status_code == 422 and "timeout must be between" in late.json()["detail"]


# ---------------------------------------------------------------------------- run_deployment


def test_run_deployment_with_timeout_zero_returns_the_scheduled_run(
    deployment: Deployment,
) -> None:
    run = run_deployment("typed/prod", parameters={"count": 1}, timeout=0)
    assert run.state_type is StateType.SCHEDULED
    assert run.parameters == {"label": "y", "count": 1}
    assert run.parent_task_run_id is None


def test_run_deployment_waits_for_the_final_state(
    deployment: Deployment, pool: ThreadPoolExecutor
) -> None:
    done = _finish_next_run(pool, deployment)
    run = run_deployment(deployment.id, parameters={"count": 2})
    assert run.state_type is StateType.COMPLETED
    assert done.result(timeout=30).id == run.id


def test_run_deployment_returns_a_failed_run_without_raising(
    deployment: Deployment, pool: ThreadPoolExecutor
) -> None:
    _finish_next_run(pool, deployment, final=Failed)
    run = run_deployment(str(deployment.id), parameters={"count": 2}, timeout=30)
    assert run.state_type is StateType.FAILED


def test_run_deployment_gives_up_after_its_timeout(deployment: Deployment) -> None:
    run = run_deployment("typed/prod", parameters={"count": 1}, timeout=0.2, poll_interval=0.1)
    assert run.state_type is StateType.SCHEDULED


def test_run_deployment_idempotency_key(deployment: Deployment) -> None:
    first = run_deployment("typed/prod", parameters={"count": 1}, timeout=0, idempotency_key="k")
    again = run_deployment("typed/prod", parameters={"count": 1}, timeout=0, idempotency_key="k")
    assert first.id == again.id


def test_run_deployment_passes_its_options(deployment: Deployment) -> None:
    later = _time.now() + timedelta(minutes=5)
    run = run_deployment(
        "typed/prod",
        parameters={"count": 1},
        scheduled_time=later,
        flow_run_name="manual",
        tags=["one-off"],
        work_queue_name="slow",
        job_variables={"env": {"A": "1"}},
        timeout=0,
    )
    assert (run.name, run.work_queue_name, run.expected_start_time) == ("manual", "slow", later)
    assert run.tags == ["one-off", "team-a"] and run.job_variables == {"env": {"A": "1"}}


def test_run_deployment_bad_input(deployment: Deployment) -> None:
    with pytest.raises(ObjectNotFound, match="no deployment named 'typed/other'"):
        run_deployment("typed/other", timeout=0)
    with pytest.raises(ObjectNotFound, match="no deployment with id"):
        run_deployment(uuid.uuid4(), timeout=0)
    with pytest.raises(ValidationError, match="has no parameter 'colour'"):
        run_deployment("typed/prod", parameters={"count": 1, "colour": "red"}, timeout=0)
    with pytest.raises(ValueError, match="cannot be negative"):
        run_deployment("typed/prod", timeout=-1)


def test_run_deployment_is_awaitable_in_async_code(deployment: Deployment) -> None:
    async def main() -> tuple[FlowRun, FlowRun]:
        first = await run_deployment("typed/prod", parameters={"count": 1}, timeout=0)
        second = await arun_deployment("typed/prod", parameters={"count": 2}, timeout=0)
        return first, second

    first, second = asyncio.run(main())
    assert first.parameters["count"] == 1 and second.parameters["count"] == 2
    assert first.state_type is second.state_type is StateType.SCHEDULED


def test_an_async_caller_waits_without_blocking_its_loop(
    deployment: Deployment, pool: ThreadPoolExecutor
) -> None:
    ticks = 0

    def finish_after_the_loop_ticked() -> FlowRun:
        # The run is finished only once the caller's loop has ticked while the run existed:
        # a wait that blocked the loop would never let that happen (and the test fails).
        run = wait_for(lambda: _runs_of(deployment), message="no run appeared")[0]
        seen = ticks
        wait_for(lambda: ticks >= seen + 3, message="the caller's event loop stood still")
        with _client() as client:
            for state in (Pending(), Running(), Completed()):
                client.set_flow_run_state(run.id, state)
            done: FlowRun = client.read_flow_run(run.id)
            return done

    async def main() -> FlowRun:
        nonlocal ticks

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        finisher = pool.submit(finish_after_the_loop_ticked)
        run = await run_deployment("typed/prod", parameters={"count": 1}, timeout=30)
        ticker.cancel()
        finisher.result(timeout=30)
        return run

    run = asyncio.run(main())
    assert run.state_type is StateType.COMPLETED


def test_inside_a_flow_the_run_is_linked_as_a_subflow(deployment: Deployment) -> None:
    @task
    def how_many() -> int:
        return 4

    @flow
    def parent() -> tuple[uuid.UUID, FlowRun]:
        from prefect_lite import runtime

        count = how_many.submit()
        child = run_deployment("typed/prod", parameters={"count": count}, timeout=0)
        return uuid.UUID(runtime.flow_run.id), child

    parent_id, child = parent()
    assert child.parameters["count"] == 4
    assert child.parent_flow_run_id == parent_id
    with _client() as client:
        link = client.read_task_run(child.parent_task_run_id)
        producer = next(t for t in client.read_task_runs(parent_id) if t.name.startswith("how"))
    assert link.flow_run_id == parent_id
    assert link.task_key.endswith("run_deployment.typed-prod")
    assert link.name == "typed/prod-0" and link.task_version == "7"
    assert [ref.id for ref in link.task_inputs["count"]] == [producer.id]
    assert link.state_type is StateType.PENDING


def test_the_linked_task_run_follows_the_runs_states(
    deployment: Deployment, pool: ThreadPoolExecutor
) -> None:
    @flow
    def parent() -> FlowRun:
        return run_deployment("typed/prod", parameters={"count": 1}, timeout=30)

    _finish_next_run(pool, deployment)
    child = parent()
    assert child.state_type is StateType.COMPLETED
    with _client() as client:
        link = client.read_task_run(child.parent_task_run_id)
    assert link.state_type is StateType.COMPLETED


def test_an_async_flow_awaits_it_and_links_the_run(deployment: Deployment) -> None:
    @flow
    async def parent() -> tuple[uuid.UUID, FlowRun]:
        from prefect_lite import runtime

        child = await run_deployment("typed/prod", parameters={"count": 1}, timeout=0)
        return uuid.UUID(runtime.flow_run.id), child

    parent_id, child = asyncio.run(parent())
    assert child.parent_flow_run_id == parent_id and child.parent_task_run_id is not None


def test_as_subflow_false_makes_an_unlinked_run(deployment: Deployment) -> None:
    @flow
    def parent() -> FlowRun:
        return run_deployment("typed/prod", parameters={"count": 1}, timeout=0, as_subflow=False)

    child = parent()
    assert child.parent_task_run_id is None and child.parent_flow_run_id is None


def test_a_task_calling_run_deployment_is_its_parent(deployment: Deployment) -> None:
    @task
    def trigger() -> tuple[uuid.UUID, FlowRun]:
        from prefect_lite import runtime

        run = run_deployment("typed/prod", parameters={"count": 1}, timeout=0)
        return uuid.UUID(runtime.task_run.id), run

    @flow
    def parent() -> tuple[uuid.UUID, FlowRun]:
        return trigger()

    caller_id, child = parent()
    with _client() as client:
        link = client.read_task_run(child.parent_task_run_id)
    assert [ref.id for ref in link.task_inputs["__parents__"]] == [caller_id]


# ------------------------------------------------------------------------------------ CLI


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr. These tests finish runs by hand, with no worker, so
    ``--watch`` rightly warns that none serves the pool: that line is left out here
    (tests/test_start_warnings.py checks it)."""
    code = run_cli(cli, list(args))
    out, err = capsys.readouterr()
    warning = "Warning: no online worker serves work pool"
    err = "".join(line for line in err.splitlines(True) if not line.startswith(warning))
    return code, out, err


def test_cli_run_prints_the_new_runs_id(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys, "deployment", "run", "typed/prod", "--param", "count=5", "--tag", "cli"
    )
    assert code == 0, err
    run_id = uuid.UUID(out.strip().splitlines()[-1])
    with _client() as client:
        run = client.read_flow_run(run_id)
    assert run.parameters == {"label": "y", "count": 5} and "cli" in run.tags


def test_cli_run_start_in_schedules_it_later(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], redis_client: redis.Redis
) -> None:
    before = _time.now()
    code, out, err = _cli(
        capsys, "deployment", "run", "typed/prod", "-p", "count=1", "--start-in", "3600",
        "--flow-run-name", "later", "-q", "slow",
    )  # fmt: skip
    assert code == 0, err
    with _client() as client:
        run = client.read_flow_run(uuid.UUID(out.strip().splitlines()[-1]))
    assert run.name == "later" and run.work_queue_name == "slow"
    assert run.expected_start_time is not None
    assert run.expected_start_time >= before + timedelta(seconds=3600)
    assert redis_client.zscore(keys.scheduled_due(), str(run.id)) is not None


def test_cli_run_json_and_idempotency(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    args = ["deployment", "run", str(deployment.id), "--params", '{"count": 2}', "--json"]
    code, out, _ = _cli(capsys, *args, "--idempotency-key", "once")
    again_code, again, _ = _cli(capsys, *args, "--idempotency-key", "once")
    assert code == again_code == 0
    assert json.loads(out)["id"] == json.loads(again)["id"]


def test_cli_run_watch_exits_0_when_completed(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], pool: ThreadPoolExecutor
) -> None:
    _finish_next_run(pool, deployment)
    code, out, err = _cli(capsys, "deployment", "run", "typed/prod", "-p", "count=1", "--watch")
    assert code == 0, err
    assert [line.split(" | ")[2] for line in out.splitlines() if "| State" in line] == [
        "Scheduled",
        "Pending",
        "Running",
        "Completed",
    ]
    assert "finished: Completed" in out


def test_cli_run_watch_exits_1_when_failed(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], pool: ThreadPoolExecutor
) -> None:
    _finish_next_run(pool, deployment, final=Failed)
    code, _out, err = _cli(capsys, "deployment", "run", "typed/prod", "-p", "count=1", "--watch")
    assert code == 1
    assert err.startswith("Error: flow run '") and "ended Failed" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_run_watch_timeout_exits_1(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = _cli(
        capsys, "deployment", "run", "typed/prod", "-p", "count=1", "--watch", "--timeout", "0.2"
    )
    assert code == 1 and "is still Scheduled after 0.2 s" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["typed/prod", "-p", "count=many"], "parameter 'count' of flow 'typed' must be an int"),
        (["typed/prod", "-p", "count=1", "-p", "colour=red"], "has no parameter 'colour'"),
        (["typed/prod"], "needs a value for parameter 'count'"),
        (["typed/prod", "--params", "[1]"], "--params must be a JSON object"),
        (["typed/prod", "-p", "count"], "must look like name=value"),
        (["typed/nope", "-p", "count=1"], "no deployment named 'typed/nope'"),
        ([str(uuid.UUID(int=1)), "-p", "count=1"], "no deployment with id"),
        (["typed", "-p", "count=1"], "is not a deployment name"),
        (["typed/prod", "-p", "count=1", "--timeout", "5"], "--timeout limits --watch"),
    ],
)
def test_cli_run_bad_input_is_one_line(
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    code, out, err = _cli(capsys, "deployment", "run", *args)
    assert code == 1 and out == ""
    assert err.startswith("Error: ") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert _runs_of(deployment) == []
