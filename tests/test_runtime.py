"""prefect_lite.runtime: values from the active context, the environment and the store."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from prefect_lite import _time, flow, states, task
from prefect_lite.client import get_client
from prefect_lite.runtime import (
    ENV_DEPLOYMENT_ID,
    ENV_DEPLOYMENT_NAME,
    ENV_FLOW_NAME,
    ENV_FLOW_RUN_ID,
    ENV_FLOW_RUN_NAME,
    deployment,
    flow_run,
    run_environment,
    task_run,
)
from prefect_lite.schemas import FlowRun, TaskRun
from tests._run_contexts import Named, flow_context, make_flow_run, task_context
from tests.helpers import run_python


@pytest.fixture
def client() -> Iterator[Any]:
    with get_client(sync_client=True) as c:
        yield c


def test_outside_any_run_values_are_empty() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with _time.frozen_time(at):
        assert flow_run.scheduled_start_time == at
    assert flow_run.id is None and flow_run.name is None and flow_run.flow_name is None
    assert flow_run.parameters == {} and flow_run.tags == [] and flow_run.run_count == 0
    assert flow_run.parent_flow_run_id is None and flow_run.root_flow_run_id is None
    assert flow_run.deployment_id is None and flow_run.parent_deployment_id is None
    assert task_run.id is None and task_run.name is None and task_run.task_key is None
    assert task_run.parameters == {} and task_run.tags == [] and task_run.run_count == 0
    assert deployment.id is None and deployment.name is None and deployment.version is None
    assert deployment.parameters == {} and deployment.flow_run_id is None


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"'prefect_lite\.runtime\.flow_run' has no attribute"):
        _ = flow_run.no_such_thing
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = task_run.nope
    with pytest.raises(ImportError):
        exec("from prefect_lite.runtime.deployment import nope", {})
    with pytest.raises(AttributeError):
        _ = importlib.import_module("prefect_lite.runtime").nothing


def test_attributes_are_listed_and_importable() -> None:
    assert "scheduled_start_time" in dir(flow_run) and "task_key" in dir(task_run)
    assert dir(deployment) == ["flow_run_id", "id", "name", "parameters", "version"]
    namespace: dict[str, Any] = {}
    exec("from prefect_lite.runtime.flow_run import id, name", namespace)
    assert namespace["id"] is None and namespace["name"] is None


def test_flow_run_values_come_from_the_context() -> None:
    start = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    run = make_flow_run(
        name="happy-run",
        flow_name="etl",
        parameters={"x": 1},
        tags=["a", "b"],
        run_count=2,
        expected_start_time=start,
        job_variables={"image": "python"},
    )
    with flow_context(flow_run=run, flow_name="etl", parameters={"x": 1, "when": start}):
        assert flow_run.id == str(run.id)
        assert flow_run.name == "happy-run"
        assert flow_run.flow_name == "etl"
        assert flow_run.parameters == {"x": 1, "when": start}  # the call's own values
        assert flow_run.tags == ["a", "b"]
        assert flow_run.run_count == 2
        assert flow_run.scheduled_start_time == start
        assert flow_run.job_variables == {"image": "python"}
        assert flow_run.deployment_id is None and deployment.id is None
        assert flow_run.parent_flow_run_id is None
        assert flow_run.root_flow_run_id == str(run.id)
        with task_context(name="load-7", task_name="load", parameters={"rows": [1, 2]}) as ctx:
            assert task_run.id == str(ctx.task_run.id)
            assert task_run.name == "load-7"
            assert task_run.task_name == "load"
            assert task_run.task_key == "load"
            assert task_run.parameters == {"rows": [1, 2]}
            assert flow_run.id == str(run.id)  # still visible from the task


def test_task_run_tags_and_run_count() -> None:
    record = TaskRun(name="t-0", task_key="t", tags=["nightly"], run_count=3)
    with task_context(task_run=record):
        assert task_run.tags == ["nightly"] and task_run.run_count == 3
        assert flow_run.id is None  # a task called outside any flow


def test_subflow_parents_and_root_are_read_from_the_store(client: Any) -> None:
    dep_id = uuid.uuid4()
    root = client.create_flow_run("root-flow", deployment_id=dep_id)
    root_task = client.create_task_run(
        TaskRun(name="call-middle", task_key="middle", flow_run_id=root.id), states.Pending()
    )
    middle = client.create_flow_run("middle-flow", parent_task_run_id=root_task.id)
    middle_task = client.create_task_run(
        TaskRun(name="call-leaf", task_key="leaf", flow_run_id=middle.id), states.Pending()
    )
    leaf = client.create_flow_run("leaf-flow", parent_task_run_id=middle_task.id)
    with flow_context(flow_run=leaf, flow_name="leaf-flow"):
        assert flow_run.parent_flow_run_id == str(middle.id)
        assert flow_run.root_flow_run_id == str(root.id)
        assert flow_run.parent_deployment_id is None  # middle was not a deployment run
    with flow_context(flow_run=middle, flow_name="middle-flow"):
        assert flow_run.parent_flow_run_id == str(root.id)
        assert flow_run.parent_deployment_id == str(dep_id)


def test_a_direct_parent_link_is_used_as_is() -> None:
    parent_id = uuid.uuid4()
    with flow_context(flow_run=make_flow_run(parent_flow_run_id=parent_id)):
        assert flow_run.parent_flow_run_id == str(parent_id)


def test_deployment_values_of_a_deployment_run(monkeypatch: pytest.MonkeyPatch) -> None:
    dep_id = uuid.uuid4()
    run = make_flow_run(deployment_id=dep_id, deployment_version="v7", parameters={"n": 3})
    with flow_context(flow_run=run, parameters={"n": 3}):
        assert deployment.id == str(dep_id) and flow_run.deployment_id == str(dep_id)
        assert deployment.flow_run_id == str(run.id)
        assert deployment.version == "v7"
        assert deployment.parameters == {"n": 3}
        monkeypatch.setenv(ENV_DEPLOYMENT_ID, str(dep_id))
        monkeypatch.setenv(ENV_DEPLOYMENT_NAME, "nightly")
        assert deployment.name == "nightly"


def test_deployment_name_and_version_are_read_from_the_store(client: Any) -> None:
    dep = client.create_deployment("etl", "nightly", version="v3", parameters={"n": 1})
    run = client.create_flow_run("etl", deployment_id=dep.id, parameters={"n": 2})
    with flow_context(flow_run=run, flow_name="etl"):
        assert deployment.name == "nightly"
        assert deployment.version == "v3"
        assert deployment.parameters == {"n": 2}  # this run's values
    gone = make_flow_run(deployment_id=uuid.uuid4())
    with flow_context(flow_run=gone):
        assert deployment.name is None and deployment.version is None  # deleted deployment


def test_overrides_are_cast_to_the_real_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__FLOW_RUN__NAME", "mocked")
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__FLOW_RUN__RUN_COUNT", "3")
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__FLOW_RUN__PARAMETERS", '{"x": [1, 2]}')
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__FLOW_RUN__SCHEDULED_START_TIME", "2030-01-01T00:00")
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__TASK_RUN__CUSTOM", "anything")
    assert flow_run.name == "mocked"
    assert flow_run.run_count == 3
    assert flow_run.parameters == {"x": [1, 2]}
    assert flow_run.scheduled_start_time == datetime(2030, 1, 1, tzinfo=UTC)
    assert task_run.custom == "anything"  # an override of an unknown name is its raw value


def test_a_bad_override_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__FLOW_RUN__RUN_COUNT", "many")
    with pytest.raises(ValueError, match="PREFECT_LITE__RUNTIME__FLOW_RUN__RUN_COUNT='many'"):
        _ = flow_run.run_count
    monkeypatch.setenv("PREFECT_LITE__RUNTIME__FLOW_RUN__PARAMETERS", "{not json")
    with pytest.raises(ValueError, match="is not a valid dict"):
        _ = flow_run.parameters


def test_run_environment_names_the_run_and_deployment() -> None:
    dep = Named("nightly")
    dep.id = uuid.uuid4()  # type: ignore[attr-defined]
    run = make_flow_run(name="happy-run", flow_name="etl")
    assert run_environment(run, dep) == {
        ENV_FLOW_RUN_ID: str(run.id),
        ENV_FLOW_RUN_NAME: "happy-run",
        ENV_FLOW_NAME: "etl",
        ENV_DEPLOYMENT_ID: str(dep.id),  # type: ignore[attr-defined]
        ENV_DEPLOYMENT_NAME: "nightly",
    }
    assert run_environment(run) == {
        ENV_FLOW_RUN_ID: str(run.id),
        ENV_FLOW_RUN_NAME: "happy-run",
        ENV_FLOW_NAME: "etl",
    }


READ_RUNTIME = """
    import json
    from prefect_lite.runtime import deployment, flow_run, task_run
    print(json.dumps({
        "id": flow_run.id, "name": flow_run.name, "flow_name": flow_run.flow_name,
        "parameters": flow_run.parameters, "tags": flow_run.tags,
        "run_count": flow_run.run_count, "deployment_id": flow_run.deployment_id,
        "scheduled_start_time": flow_run.scheduled_start_time.isoformat(),
        "deployment": [deployment.id, deployment.name, deployment.flow_run_id,
                       deployment.parameters],
        "task_run": task_run.id,
    }))
"""


def test_a_worker_started_process_reads_the_run_from_env_and_store(client: Any) -> None:
    dep_id = uuid.uuid4()
    stored: FlowRun = client.create_flow_run(
        "etl", name="stored-name", parameters={"n": 5}, tags=["prod"], deployment_id=dep_id
    )
    env = {ENV_FLOW_RUN_ID: str(stored.id)}  # only the id: the rest is looked up
    result = run_python(READ_RUNTIME, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {
        "id": str(stored.id),
        "name": "stored-name",
        "flow_name": "etl",
        "parameters": {"n": 5},
        "tags": ["prod"],
        "run_count": 0,
        "deployment_id": str(dep_id),
        "scheduled_start_time": stored.expected_start_time.isoformat(),  # type: ignore[union-attr]
        "deployment": [str(dep_id), None, str(stored.id), {"n": 5}],
        "task_run": None,
    }


def test_environment_names_save_lookups(client: Any) -> None:
    stored: FlowRun = client.create_flow_run("etl", name="stored-name")
    dep_id = uuid.uuid4()
    env = {
        ENV_FLOW_RUN_ID: str(stored.id),
        ENV_FLOW_RUN_NAME: "env-name",
        ENV_FLOW_NAME: "env-flow",
        ENV_DEPLOYMENT_ID: str(dep_id),
        ENV_DEPLOYMENT_NAME: "nightly",
    }
    result = run_python(READ_RUNTIME, env=env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["name"], seen["flow_name"]) == ("env-name", "env-flow")
    assert seen["deployment_id"] == str(dep_id)
    assert seen["deployment"][:2] == [str(dep_id), "nightly"]


def test_an_id_missing_from_the_store_is_reported(client: Any) -> None:
    missing = uuid.uuid4()
    result = run_python(
        "from prefect_lite.runtime import flow_run\nflow_run.tags",
        env={ENV_FLOW_RUN_ID: str(missing)},
    )
    assert result.returncode != 0
    assert "ObjectNotFound" in result.stderr and str(missing) in result.stderr


def test_runtime_inside_flows_and_tasks() -> None:
    @task(task_run_name="double-{x}")
    def double(x: int) -> tuple[str | None, str | None, dict[str, Any], str | None]:
        return task_run.name, task_run.task_name, task_run.parameters, flow_run.name

    @flow(flow_run_name="runtime-{n}")
    def outer(n: int) -> dict[str, Any]:
        return {
            "name": flow_run.name,
            "flow_name": flow_run.flow_name,
            "parameters": flow_run.parameters,
            "task": double(n),
            "id": flow_run.id,
        }

    seen = outer(4)
    assert seen["name"] == "runtime-4" and seen["flow_name"] == "outer"
    assert seen["parameters"] == {"n": 4}
    assert seen["task"] == ("double-4", "double", {"x": 4}, "runtime-4")
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(uuid.UUID(seen["id"])).name == "runtime-4"


def test_runtime_in_a_subflow_names_its_parent() -> None:
    @flow
    def child() -> tuple[str | None, str | None, str | None]:
        return flow_run.id, flow_run.parent_flow_run_id, flow_run.root_flow_run_id

    @flow
    def parent() -> tuple[str | None, tuple[str | None, str | None, str | None]]:
        return flow_run.id, child()

    parent_id, (child_id, child_parent, child_root) = parent()
    assert child_id != parent_id
    assert child_parent == parent_id and child_root == parent_id
