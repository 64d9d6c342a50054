"""serialize_context / hydrated_context: run contexts carried to other threads and
processes."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from prefect_lite import flow, get_client, tags, task
from prefect_lite.context import (
    FlowRunContext,
    TagsContext,
    TaskRunContext,
    hydrated_context,
    serialize_context,
)
from prefect_lite.logging import flush_logs
from prefect_lite.settings import get_settings, temporary_settings
from tests.helpers import run_python


def client() -> Any:
    return get_client(sync_client=True)


# ------------------------------------------------------------- seed 001 example


@task
def child_task() -> str | None:
    # This task has access to the restored context
    context = TaskRunContext.get()
    if context:
        print(f"Restored task context: {context.task_run.id}")
        return str(context.task_run.id)
    return None


@flow
def parent_flow() -> str | None:
    # Serialize current context
    context_data = serialize_context()
    # Could save to file, send to another process, etc.
    context_json = json.dumps(context_data, default=str)
    # Later, restore the context
    restored_data = json.loads(context_json)
    with hydrated_context(restored_data):
        # This runs with the restored context
        return child_task()


def test_seed_001_context_round_trip() -> None:
    task_run_id = parent_flow()
    assert task_run_id is not None
    (run,) = client().read_flow_runs(flow_name="parent-flow")
    (task_run,) = client().read_task_runs(run.id)
    assert str(task_run.id) == task_run_id


# ------------------------------------------------------------------ other processes

_CHILD = """
    import json, os
    from prefect_lite import get_run_logger, task
    from prefect_lite.context import FlowRunContext, TaskRunContext, current_tags, hydrated_context
    from prefect_lite.settings import get_settings

    @task
    def child_task():
        get_run_logger().info("hello from the child process")
        ctx = TaskRunContext.get()
        return str(ctx.task_run.id), str(ctx.task_run.flow_run_id)

    with hydrated_context(json.loads(os.environ["CONTEXT"])):
        flow_ctx = FlowRunContext.get()
        task_run_id, flow_run_id = child_task()
        print(json.dumps({
            "flow_run_id": str(flow_ctx.flow_run.id),
            "flow_name": flow_ctx.flow.name,
            "parameters": flow_ctx.parameters,
            "task_run_id": task_run_id,
            "task_flow_run_id": flow_run_id,
            "tags": sorted(current_tags()),
            "max_payload_bytes": get_settings().max_payload_bytes,
        }))
    print(json.dumps({"after": FlowRunContext.get() is None}))
"""


@flow
def dispatching_flow(batch: int) -> dict[str, Any]:
    with tags("nightly"), temporary_settings(max_payload_bytes=12345):
        data = json.dumps(serialize_context())  # no default=: already JSON-able
    proc = run_python(_CHILD, env={"CONTEXT": data})
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    return {**json.loads(first), **json.loads(second)}


def test_a_task_run_in_another_process_records_under_the_parent_flow_run() -> None:
    state = dispatching_flow(7, return_state=True)
    seen = state.result()
    flow_run_id = state.state_details.flow_run_id
    assert seen["flow_run_id"] == seen["task_flow_run_id"] == str(flow_run_id)
    assert seen["flow_name"] == "dispatching-flow"
    assert seen["parameters"] == {"batch": 7}
    assert seen["tags"] == ["nightly"]
    assert seen["max_payload_bytes"] == 12345
    assert seen["after"] is True
    (task_run,) = client().read_task_runs(flow_run_id)
    assert str(task_run.id) == seen["task_run_id"]
    assert task_run.state_name == "Completed" and task_run.tags == ["nightly"]
    assert flush_logs(timeout=10)
    logs = [log for log in client().read_logs(flow_run_id) if "child process" in log.message]
    assert [str(log.task_run_id) for log in logs] == [seen["task_run_id"]]


def test_secrets_never_travel_and_unset_settings_stay_unset() -> None:
    with temporary_settings(api_key="s3cret-token", api_keys="run:other-s3cret"):
        data = serialize_context()
    assert "s3cret" not in json.dumps(data)
    assert "api_key" not in data["settings_context"]["settings"]
    assert "api_keys" not in data["settings_context"]["settings"]
    assert data["settings_context"]["settings"]["api_url"] is None
    before = get_settings()
    with hydrated_context(data):
        assert get_settings() == before  # nothing differed, nothing was overridden


# ----------------------------------------------------------------------- threads


def test_hydrating_in_a_plain_thread() -> None:
    seen: dict[str, Any] = {}

    @task
    def inner(x: set[int]) -> None:
        data = serialize_context()
        json.dumps(data)  # parameters that JSON cannot hold travel as text

        def target() -> None:
            seen["before"] = (FlowRunContext.get(), TaskRunContext.get(), TagsContext.get())
            with hydrated_context(data):
                flow_ctx, task_ctx = FlowRunContext.get(), TaskRunContext.get()
                assert flow_ctx is not None and task_ctx is not None
                seen["flow_run_id"] = flow_ctx.flow_run.id
                seen["task_run_id"] = task_ctx.task_run.id
                seen["task_name"] = task_ctx.task.name
                seen["detached"] = flow_ctx.detached and task_ctx.detached
                seen["tags"] = TagsContext.get()

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        seen["expected"] = (FlowRunContext.get().flow_run.id, TaskRunContext.get().task_run.id)  # type: ignore[union-attr]

    @flow
    def f() -> None:
        with tags("t1"):
            inner({1, 2})

    f()
    assert seen["before"] == (None, None, None)
    assert (seen["flow_run_id"], seen["task_run_id"]) == seen["expected"]
    assert seen["task_name"] == "inner" and seen["detached"] is True
    assert seen["tags"].current_tags == {"t1"}


def test_outside_a_run_only_tags_and_settings_travel() -> None:
    data = serialize_context()
    assert set(data) == {"tags_context", "settings_context"}
    with hydrated_context(data), hydrated_context(None), hydrated_context({}):
        assert FlowRunContext.get() is None and TaskRunContext.get() is None
    assert data["settings_context"]["settings"]["redis_url"] == os.environ["PREFECT_LITE_REDIS_URL"]
