"""The HTTP client against a live server returns exactly what the local client does.

Each scenario runs against one Redis through both clients (local: handlers in-process;
remote: ``HTTPTransport`` to a uvicorn server on loopback) and compares answers and
errors. ``RecordingTransport`` notes which operations went over HTTP, so the last test
can check that every operation known here has a parity check.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from prefect_lite import _time
from prefect_lite.api.registry import all_operations
from prefect_lite.api.task_runs import TaskRunChange
from prefect_lite.client import PrefectClient, SyncPrefectClient, get_client
from prefect_lite.client.http import HTTPTransport
from prefect_lite.client.transport import LocalTransport
from prefect_lite.exceptions import (
    AuthenticationError,
    ObjectNotFound,
    PayloadTooLarge,
    StoreUnavailable,
    ValidationError,
)
from prefect_lite.schemas import BlockDocument, BlockType, EmpiricalPolicy, Log, Schedule, TaskRun
from prefect_lite.server import create_app
from prefect_lite.server.runner import bind_socket
from prefect_lite.settings import Settings, temporary_settings
from prefect_lite.states import Completed, Pending, Running, Scheduled, StateType
from tests._live_server import serve
from tests.helpers import python_env

CALLED: set[str] = set()


class RecordingTransport(HTTPTransport):
    def call(self, operation: str, arguments: dict[str, Any]) -> Any:
        CALLED.add(operation)
        return super().call(operation, arguments)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with serve(create_app(Settings(api_key=None))) as base:
        yield f"{base}/api"


@pytest.fixture
def local() -> Iterator[SyncPrefectClient]:
    with SyncPrefectClient(LocalTransport()) as client:
        yield client


@pytest.fixture
def remote(api_url: str) -> Iterator[SyncPrefectClient]:
    with SyncPrefectClient(RecordingTransport(api_url)) as client:
        yield client


def same(call: Callable[[SyncPrefectClient], Any], *clients: SyncPrefectClient) -> Any:
    """``call`` on the local and the remote client: equal answers, or equal errors."""
    outcomes = []
    for client in clients:
        try:
            outcomes.append(("ok", call(client)))
        except Exception as exc:
            outcomes.append(("error", (type(exc), str(exc))))
    assert outcomes[0] == outcomes[1], outcomes
    kind, value = outcomes[0]
    return value if kind == "ok" else None


# ------------------------------------------------------------------------- parity scenarios


def test_flows(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    flow = remote.create_flow("parity flow")
    assert local.create_flow("parity flow") == flow
    assert same(lambda c: c.read_flow(flow.id), local, remote) == flow
    assert same(lambda c: c.read_flow_by_name("parity flow"), local, remote) == flow
    same(lambda c: c.read_flow_by_name("no such flow"), local, remote)
    missing = uuid.uuid4()
    same(lambda c: c.read_flow(missing), local, remote)
    assert same(lambda c: c.read_flows(name_prefix="parity"), local, remote) == [flow]


def test_flow_runs(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    when = _time.now() + timedelta(minutes=5)
    run = remote.create_flow_run(
        "etl",
        parameters={"x": [1, 2], "y": {"z": None}},
        tags=["a", "b"],
        state=Scheduled(scheduled_time=when),
        idempotency_key="key-1",
        empirical_policy=EmpiricalPolicy(retries=2, retry_delay=[1.0, 2.0]),
    )
    assert same(lambda c: c.read_flow_run(run.id), local, remote) == run
    again = remote.create_flow_run("etl", idempotency_key="key-1")
    assert again.id == run.id
    assert local.create_flow_run("etl", idempotency_key="key-1").id == run.id

    result = remote.set_flow_run_state(run.id, Pending())
    assert result.status == "ACCEPT" and result.state is not None
    rejected = remote.set_flow_run_state(run.id, Pending())
    assert rejected.status == "REJECT"
    assert local.set_flow_run_state(run.id, Pending()).model_dump(exclude={"state"}) == (
        rejected.model_dump(exclude={"state"})
    )
    remote.update_flow_run(run.id, name="renamed", tags=["c"])
    assert local.read_flow_run(run.id).name == "renamed"
    states = same(lambda c: c.read_flow_run_states(run.id), local, remote)
    assert [s.type for s in states] == [StateType.SCHEDULED, StateType.PENDING]

    missing = uuid.uuid4()
    for criteria in (
        {},
        {"states": [StateType.PENDING]},
        {"flow_name": "etl", "tags": ["c"]},
        {"start_after": when - timedelta(minutes=1), "start_before": when + timedelta(hours=1)},
        {"limit": 1, "offset": 0, "newest_first": False},
        {"deployment_id": missing},
    ):
        found = same(lambda c, kw=criteria: c.read_flow_runs(**kw), local, remote)  # type: ignore[misc]
        assert found is not None
    same(lambda c: c.read_flow_run(missing), local, remote)
    same(lambda c: c.set_flow_run_state(missing, Running()), local, remote)


def _task_run(flow_run_id: uuid.UUID, name: str) -> TaskRun:
    return TaskRun(name=name, flow_run_id=flow_run_id, task_key=f"{name}-key")


def test_task_runs(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    flow_run = remote.create_flow_run("with-tasks")
    first = remote.create_task_run(_task_run(flow_run.id, "first"), Pending())
    assert same(lambda c: c.read_task_run(first.id), local, remote) == first
    assert remote.set_task_run_state(first.id, Running()).status == "ACCEPT"

    second, third = _task_run(flow_run.id, "second"), _task_run(flow_run.id, "third")

    def changes(run: TaskRun) -> list[TaskRunChange]:
        return [
            TaskRunChange(op="create", task_run_id=run.id, state=Pending(), task_run=run),
            TaskRunChange(op="propose", task_run_id=run.id, state=Running()),
            TaskRunChange(op="propose", task_run_id=run.id, state=Running()),
            TaskRunChange(op="propose", task_run_id=run.id, state=Completed()),
        ]

    statuses = remote.apply_task_run_changes(changes(second))
    assert statuses == local.apply_task_run_changes(changes(third))
    assert statuses[2] != statuses[1]  # a repeated Running is rejected
    assert remote.set_task_run_state(first.id, Completed()).status == "ACCEPT"
    runs = same(lambda c: c.read_task_runs(flow_run.id), local, remote)
    assert [r.name for r in runs] == ["first", "second", "third"]
    states = same(lambda c: c.read_task_run_states(first.id), local, remote)
    assert [s.type for s in states] == [StateType.PENDING, StateType.RUNNING, StateType.COMPLETED]
    missing = uuid.uuid4()
    same(lambda c: c.read_task_run(missing), local, remote)


def test_logs(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    run = local.create_flow_run("logged")
    task_id = uuid.uuid4()
    logs = [
        Log(name="a", level=20, message="hello", flow_run_id=run.id),
        Log(name="a", level=40, message="ünïcode ✓", flow_run_id=run.id, task_run_id=task_id),
    ]
    assert remote.create_logs(logs) == 2
    assert same(lambda c: c.read_logs(run.id), local, remote) == logs
    assert same(lambda c: c.read_logs(run.id, min_level=30), local, remote) == logs[1:]
    assert same(lambda c: c.read_logs(run.id, task_run_id=task_id), local, remote) == logs[1:]
    assert same(lambda c: c.read_logs(run.id, offset=1, limit=1), local, remote) == logs[1:]


def test_variables(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    made = remote.create_variable("answer", {"n": 42, "list": [1, "two"]}, tags=["t"])
    assert same(lambda c: c.read_variable_by_name("answer"), local, remote) == made
    same(lambda c: c.create_variable("answer", 1), local, remote)  # already exists
    same(lambda c: c.create_variable("Bad Name!", 1), local, remote)  # invalid name
    assert same(lambda c: c.read_variables(tags=["t"]), local, remote) == [made]
    remote.delete_variable_by_name("answer")
    same(lambda c: c.read_variable_by_name("answer"), local, remote)
    same(lambda c: c.delete_variable_by_name("answer"), local, remote)


def test_blocks(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    block_type = remote.create_block_type(BlockType(slug="secret-thing", name="Secret thing"))
    assert same(lambda c: c.read_block_type_by_slug("secret-thing"), local, remote) == block_type
    assert block_type in same(lambda c: c.read_block_types(), local, remote)
    document = BlockDocument(
        name="prod",
        block_type_slug="secret-thing",
        data={"user": "u", "password": "p"},
        block_schema={"secret_fields": ["password"]},
    )
    created = remote.create_block_document(document)
    same(lambda c: c.create_block_document(document), local, remote)  # exists
    for include_secrets in (False, True):
        by_name = same(
            lambda c, s=include_secrets: c.read_block_document_by_name(  # type: ignore[misc]
                "secret-thing", "prod", include_secrets=s
            ),
            local,
            remote,
        )
        by_id = same(
            lambda c, s=include_secrets: c.read_block_document(  # type: ignore[misc]
                created.id, include_secrets=s
            ),
            local,
            remote,
        )
        assert by_name == by_id
        assert (by_name.data["password"] == "p") is include_secrets
    listed = same(lambda c: c.read_block_documents(block_type_slug="secret-thing"), local, remote)
    assert [d.name for d in listed] == ["prod"]
    remote.delete_block_document_by_name("secret-thing", "prod")
    same(lambda c: c.read_block_document(created.id), local, remote)
    again = local.create_block_document(document.model_copy(update={"id": uuid.uuid4()}))
    remote.delete_block_document(again.id)
    same(lambda c: c.delete_block_document(again.id), local, remote)


def test_deployments(local: SyncPrefectClient, remote: SyncPrefectClient) -> None:
    schedule = Schedule(interval=3600, anchor_date=_time.now())
    made = remote.create_deployment(
        "etl flow",
        "nightly",
        entrypoint="flows.py:etl",
        parameters={"x": 1},
        schedules=[schedule],
        tags=["prod"],
    )
    assert same(lambda c: c.read_deployment(made.id), local, remote) == made
    assert same(lambda c: c.read_deployment_by_name("etl flow/nightly"), local, remote) == made
    assert same(lambda c: c.read_deployments(flow_name="etl flow"), local, remote) == [made]
    paused = remote.pause_deployment(made.id)
    assert paused.paused and local.read_deployment(made.id) == paused
    assert not remote.resume_deployment(made.id).paused
    schedules = same(lambda c: c.read_deployment_schedules(made.id), local, remote)
    changed = remote.update_deployment_schedule(made.id, schedules[0].id, active=False)
    assert not changed.active
    assert same(lambda c: c.read_deployment_schedules(made.id), local, remote) == [changed]
    remote.delete_deployment(made.id)
    same(lambda c: c.read_deployment(made.id), local, remote)
    same(lambda c: c.read_deployment_by_name("etl flow/nightly"), local, remote)


def test_every_operation_has_a_parity_check() -> None:
    """Runs last in this module: every operation known here went over HTTP above."""
    known = {
        *("create_flow", "read_flow", "read_flow_by_name", "read_flows"),
        *("create_flow_run", "read_flow_run", "read_flow_runs", "set_flow_run_state"),
        *("read_flow_run_states", "update_flow_run", "create_task_run", "read_task_run"),
        *("apply_task_run_changes", "set_task_run_state", "read_task_runs"),
        *("read_task_run_states", "create_logs", "read_logs", "create_variable"),
        *("read_variable_by_name", "read_variables", "delete_variable_by_name"),
        *("create_block_document", "read_block_document_by_name", "read_block_document"),
        *("read_block_documents", "delete_block_document_by_name", "delete_block_document"),
        *("create_block_type", "read_block_type_by_slug", "read_block_types"),
        *("create_deployment", "read_deployment", "read_deployment_by_name"),
        *("read_deployments", "delete_deployment", "pause_deployment", "resume_deployment"),
        *("read_deployment_schedules", "update_deployment_schedule"),
    }
    registered = set(all_operations())
    if len(CALLED) < 10:
        pytest.skip("run the whole module to check coverage")
    assert known & registered <= CALLED, sorted((known & registered) - CALLED)


# ----------------------------------------------------------------------- client behaviour


def test_get_client_uses_http_when_api_url_is_set(api_url: str) -> None:
    run = get_client(sync_client=True).create_flow_run("local-made")
    with temporary_settings(api_url=api_url):
        client = get_client(sync_client=True)
        assert not client.is_local
        with client:
            assert client.read_flow_run(run.id) == run


def test_async_client_over_http(api_url: str) -> None:
    run = get_client(sync_client=True).create_flow_run("async-made")

    async def read() -> Any:
        with temporary_settings(api_url=api_url):
            async with get_client() as client:
                assert isinstance(client, PrefectClient)
                return await client.read_flow_run(run.id)

    assert asyncio.run(read()) == run


def test_path_parameters_are_url_quoted(
    local: SyncPrefectClient, remote: SyncPrefectClient
) -> None:
    name = "weird name?x=1#frag&%20"
    flow = remote.create_flow(name)
    assert same(lambda c: c.read_flow_by_name(name), local, remote) == flow


def test_connection_refused_is_one_store_unavailable_naming_the_url() -> None:
    sock = bind_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    sock.close()
    with SyncPrefectClient(HTTPTransport(url)) as client, pytest.raises(StoreUnavailable) as err:
        client.read_flow_run(uuid.uuid4())
    assert url in str(err.value) and "server start" in str(err.value)


def test_a_url_without_api_suffix_says_so(api_url: str) -> None:
    base = api_url.removesuffix("/api")
    with SyncPrefectClient(HTTPTransport(base)) as client, pytest.raises(ObjectNotFound) as err:
        client.read_flow_run(uuid.uuid4())
    assert "no such API route" in str(err.value) and "/api URL" in str(err.value)


def test_server_validation_errors_surface_as_validation_error(remote: SyncPrefectClient) -> None:
    with pytest.raises(ValidationError, match=r"body\.limit"):
        remote.read_flows(limit=2**60)


def test_unserializable_arguments_fail_before_sending(remote: SyncPrefectClient) -> None:
    with pytest.raises(ValidationError, match="not JSON-serializable"):
        remote.create_flow_run("f", parameters={"x": object()})


def test_payload_too_large() -> None:
    with serve(create_app(Settings(max_payload_bytes=2000))) as base:
        client = SyncPrefectClient(HTTPTransport(f"{base}/api"))
        with client, pytest.raises(PayloadTooLarge, match="2000-byte limit"):
            client.create_flow_run("f", parameters={"x": "y" * 5000})


@pytest.mark.parametrize("key", [None, "wrong"])
def test_auth_errors(key: str | None) -> None:
    with serve(create_app(Settings(api_key="right"))) as base:
        wrong = SyncPrefectClient(HTTPTransport(f"{base}/api", api_key=key))
        with wrong, pytest.raises(AuthenticationError, match="API key"):
            wrong.read_flows()
        with SyncPrefectClient(HTTPTransport(f"{base}/api", api_key="right")) as client:
            assert client.read_flows() == []


def test_api_key_from_settings_is_sent() -> None:
    with (
        serve(create_app(Settings(api_key="k"))) as base,
        temporary_settings(api_url=f"{base}/api", api_key="k"),
        get_client(sync_client=True) as client,
    ):
        assert client.read_flows() == []


# ------------------------------------------------------------------- the CLI, local and remote


def _cli(*args: str, api_url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect_lite", *args],
        env=python_env({"PREFECT_LITE_API_URL": api_url}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_reads_the_same_locally_and_remotely(local: SyncPrefectClient, api_url: str) -> None:
    run = local.create_flow_run("cli-parity", tags=["x"])
    local.create_logs(
        [
            Log(name="prefect_lite.flow_runs", level=20, message="first", flow_run_id=run.id),
            Log(name="prefect_lite.task_runs", level=40, message="second", flow_run_id=run.id),
        ]
    )
    for args in (
        ("flow-run", "logs", str(run.id)),
        ("flow-run", "logs", str(run.id), "--json"),
        ("flow-run", "inspect", str(run.id), "--json"),
        ("flow-run", "ls", "--json"),
    ):
        here, there = _cli(*args), _cli(*args, api_url=api_url)
        assert here.returncode == there.returncode == 0, (here.stderr, there.stderr)
        assert here.stdout == there.stdout
    lines = _cli("flow-run", "logs", str(run.id), api_url=api_url).stdout.splitlines()
    assert len(lines) == 2
    assert "| INFO     | prefect_lite.flow_runs - first" in lines[0]
    assert "| ERROR    | prefect_lite.task_runs - second" in lines[1]


@pytest.mark.parametrize("remote_cli", [False, True])
def test_cli_logs_of_an_unknown_run_is_one_line(api_url: str, remote_cli: bool) -> None:
    missing = uuid.uuid4()
    done = _cli("flow-run", "logs", str(missing), api_url=api_url if remote_cli else None)
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: no flow run with id {missing}"
    bad = _cli("flow-run", "logs", "nope", api_url=api_url if remote_cli else None)
    assert bad.returncode == 1 and "is not a flow run id" in bad.stderr


def test_cli_logs_follow_until_the_run_ends(local: SyncPrefectClient, api_url: str) -> None:
    run = local.create_flow_run("followed")
    local.set_flow_run_state(run.id, Running())
    local.create_logs([Log(name="f", level=20, message="before", flow_run_id=run.id)])
    follower = subprocess.Popen(
        [sys.executable, "-m", "prefect_lite", "flow-run", "logs", str(run.id), "--follow"],
        env=python_env({"PREFECT_LITE_API_URL": api_url}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert "before" in follower.stdout.readline()
        local.create_logs([Log(name="f", level=20, message="during", flow_run_id=run.id)])
        assert "during" in follower.stdout.readline()
        local.create_logs([Log(name="f", level=20, message="last", flow_run_id=run.id)])
        local.set_flow_run_state(run.id, Completed())
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    assert "last" in out
