"""Regression tests for attacks on the server, one per attack, each asserting it is refused."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import httpx
import orjson
import pytest

from prefect_lite.api import flows as flows_api
from prefect_lite.client import get_client
from prefect_lite.schemas import FlowRun, Log
from prefect_lite.server import create_app
from prefect_lite.settings import temporary_settings
from prefect_lite.states import Paused, Pending, Running
from prefect_lite.storage import async_waits, keys
from tests._live_server import serve
from tests.helpers import wait_for

# ---- bounded work per request ----

WAITS = 120  # more than FastAPI's 40 threads: a thread per wait would starve the server
EXTRA = 30


def _new_run(name: str = "target") -> FlowRun:
    with get_client(sync_client=True) as client:
        run: FlowRun = client.create_flow_run("victim", name=name)
        return run


class _Waits:
    """``count`` long polls on one run, held open from a thread of their own."""

    def __init__(self, base: str, path: str, body: dict[str, Any], count: int) -> None:
        self.base, self.path, self.body, self.count = base, path, body, count
        self.answers: list[httpx.Response] = []
        self.sent = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=self.base, limits=limits, timeout=30) as http:

            async def one() -> None:
                self.sent += 1
                self.answers.append(await http.post(self.path, json=self.body))

            await asyncio.gather(*(one() for _ in range(self.count)))

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def test_held_waits_leave_the_server_answering_and_are_capped() -> None:
    run = _new_run()
    path = f"/api/flow_runs/{run.id}/wait"
    with temporary_settings(max_concurrent_waits=WAITS), serve(create_app()) as base:
        waits = _Waits(base, path, {"version": run.version, "timeout": 10}, WAITS + EXTRA)
        # Past the cap the answer is at once; the waits under it are then all held.
        wait_for(lambda: len(waits.answers) >= EXTRA, timeout=30, message="the refusals")
        health = httpx.get(f"{base}/api/health", timeout=10)
        listed = httpx.post(f"{base}/api/flow_runs/filter", json={"limit": 5}, timeout=10)
        held = WAITS + EXTRA - len(waits.answers)
        assert health.status_code == 200 and health.json() is True
        assert listed.status_code == 200
        assert held == WAITS, "waits under the cap ended before the run changed"
        refused = list(waits.answers)
        assert {a.status_code for a in refused} == {429}
        assert "PREFECT_LITE_MAX_CONCURRENT_WAITS" in refused[0].json()["detail"]
        assert refused[0].headers.get("retry-after") == "1"
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Running())
        waits.thread.join(30)
        assert waits.done
    woken = waits.answers[EXTRA:]
    assert [a.status_code for a in woken] == [200] * WAITS
    assert {a.json()["version"] for a in woken} == {run.version + 1}


def test_input_and_resume_waits_are_served_without_threads_too() -> None:
    run = _new_run()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Running())
        client.set_flow_run_state(run.id, Paused())
    input_path = f"/api/flow_runs/{run.id}/input/filter"
    resume_path = f"/api/flow_runs/{run.id}/resume/wait"
    with temporary_settings(max_concurrent_waits=2 * WAITS), serve(create_app()) as base:
        inputs = _Waits(base, input_path, {"key_prefix": "msg", "wait_seconds": 10}, WAITS)
        resumes = _Waits(base, resume_path, {"timeout": 10}, WAITS)
        wait_for(lambda: _waits_in_progress() == 2 * WAITS, timeout=30, message="waits held")
        health = httpx.get(f"{base}/api/health", timeout=10)
        assert health.status_code == 200
        assert not inputs.answers and not resumes.answers, "a wait ended before its change"
        with get_client(sync_client=True) as client:
            client.create_flow_run_input(run.id, "msg-1", {"hello": 1})
            client.set_flow_run_state(run.id, Running(), force=True)
        inputs.thread.join(30)
        resumes.thread.join(30)
    assert {a.status_code for a in inputs.answers} == {200}
    assert all([r["key"] for r in a.json()] == ["msg-1"] for a in inputs.answers)
    assert {a.json()["type"] for a in resumes.answers} == {"RUNNING"}


def test_a_local_client_still_waits_in_process() -> None:
    run = _new_run()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Pending(), force=True)
        seen = client.wait_for_flow_run_change(run.id, version=run.version, timeout=5)
    assert seen.version == run.version + 1


def _waits_in_progress() -> int:
    """Waits the test servers of this process hold (their hubs live in this process)."""
    return sum(hub.active for _, hub in async_waits._hubs.values())


def test_the_http_client_waits_out_a_full_server_and_retries() -> None:
    run = _new_run()
    path = f"/api/flow_runs/{run.id}/wait"
    with temporary_settings(max_concurrent_waits=1), serve(create_app()) as base:
        held = _Waits(base, path, {"version": run.version, "timeout": 3}, 1)
        wait_for(lambda: _waits_in_progress() == 1, message="the one wait held")
        refused = httpx.post(f"{base}{path}", json={"version": run.version, "timeout": 1})
        assert refused.status_code == 429
        with temporary_settings(api_url=f"{base}/api"), get_client(sync_client=True) as client:
            seen = client.wait_for_flow_run_change(run.id, version=run.version, timeout=0.1)
        held.thread.join(30)
    assert seen.id == run.id and [a.status_code for a in held.answers] == [200]


_SLOW_PATTERN = {"type": "string", "pattern": "^(a+)+$"}


def _nested_schema(levels: int, width: int = 10) -> dict[str, Any]:
    """Each level an anyOf of ``width`` references to the one below: width**levels paths."""
    defs: dict[str, Any] = {"L0": {"allOf": [{"type": "integer"}, {"minimum": 0}]}}
    for level in range(1, levels + 1):
        defs[f"L{level}"] = {"anyOf": [{"$ref": f"#/definitions/L{level - 1}"}] * width}
    return {
        "type": "object",
        "properties": {"x": {"$ref": f"#/definitions/L{levels}"}},
        "definitions": defs,
    }


def _deploy(base: str, schema: dict[str, Any], name: str = "d") -> httpx.Response:
    return httpx.post(
        f"{base}/api/deployments/",
        json={"flow_name": "f", "name": name, "parameter_openapi_schema": schema},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"x": {"type": ""}}}, "not a valid JSON schema"),
        ({"type": "object", "properties": {"x": {"enum": 5}}}, "not a valid JSON schema"),
        ({"type": "object", "required": 5}, "not a valid JSON schema"),
        (_nested_schema(6), "too complex"),
        ({"type": "object", "properties": {"x": {"$ref": "https://x.invalid/s"}}}, "local"),
        ({"type": "object", "properties": {"x": {"pattern": "(a)\\1"}}}, "backreferences"),
    ],
)
def test_malformed_or_explosive_parameter_schemas_are_422_when_stored(
    schema: dict[str, Any], problem: str
) -> None:
    with serve(create_app()) as base:
        answer = _deploy(base, schema)
    assert answer.status_code == 422, answer.text
    assert "parameter_openapi_schema" in answer.json()["detail"]
    assert problem in answer.json()["detail"]


def test_a_broken_schema_already_stored_is_a_clear_4xx_not_a_500(redis_client: Any) -> None:
    with serve(create_app()) as base:
        assert _deploy(base, {"type": "object"}).status_code == 201
        record_key = keys.record("deployment", "f/d")
        stored = redis_client.get(record_key)
        assert stored is not None
        record = orjson.loads(stored)
        record["parameter_openapi_schema"] = {"required": 5}
        redis_client.set(record_key, orjson.dumps(record))
        answer = httpx.post(f"{base}/api/deployments/name/f/d/create_flow_run", json={}, timeout=30)
    assert answer.status_code == 422, answer.text
    assert "stored parameter schema" in answer.json()["detail"]


def test_a_nested_schema_stored_before_the_checks_is_refused_within_the_budget(
    redis_client: Any,
) -> None:
    with serve(create_app()) as base:
        assert _deploy(base, {"type": "object"}).status_code == 201
        record_key = keys.record("deployment", "f/d")
        stored = redis_client.get(record_key)
        record = orjson.loads(stored)
        record["parameter_openapi_schema"] = _nested_schema(8)
        redis_client.set(record_key, orjson.dumps(record))
        answer = httpx.post(
            f"{base}/api/deployments/name/f/d/create_flow_run",
            json={"parameters": {"x": "not a number"}},
            timeout=30,
        )
    assert answer.status_code == 422, answer.text
    assert "too complex to check" in answer.json()["detail"]


def test_a_backtracking_pattern_in_a_resume_schema_is_matched_in_linear_time() -> None:
    run = _new_run()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Running())
        schema = {"type": "object", "properties": {"v": _SLOW_PATTERN}, "required": ["v"]}
        client.create_flow_run_input(run.id, "paused-p1-schema", schema)
        keyset = {"schema": "paused-p1-schema", "response": "paused-p1-response"}
        client.pause_flow_run(run.id, Paused(pause_key="p1", run_input_keyset=keyset))
    with serve(create_app()) as base:
        bad = httpx.post(
            f"{base}/api/flow_runs/{run.id}/resume",
            json={"run_input": {"v": "a" * 5000 + "!"}},
            timeout=30,
        )
        assert bad.status_code == 422, bad.text
        assert "does not match" in bad.json()["detail"]


def test_an_input_schema_with_a_backreference_is_refused_when_stored() -> None:
    run = _new_run()
    with serve(create_app()) as base:
        answer = httpx.post(
            f"{base}/api/flow_runs/{run.id}/input",
            json={"key": "paused-p1-schema", "value": {"pattern": "^(a+)+\\1$"}},
            timeout=30,
        )
    assert answer.status_code == 422, answer.text
    assert "input schema" in answer.json()["detail"]


_LONG = "n" * 300


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/flow_runs/", {"flow_name": _LONG}, "flow name"),
        ("/api/flow_runs/", {"flow_name": "f", "name": _LONG}, "flow run name"),
        ("/api/flow_runs/", {"flow_name": "f", "tags": [_LONG]}, "flow run tags"),
        ("/api/flow_runs/", {"flow_name": "f", "tags": ["t"] * 101}, "flow run tags"),
        ("/api/flows/", {"name": "f", "tags": [_LONG]}, "flow tags"),
        ("/api/deployments/", {"flow_name": "f", "name": _LONG}, "deployment name"),
        ("/api/deployments/", {"flow_name": "f", "name": "d", "tags": [_LONG]}, "deployment tags"),
        ("/api/variables/", {"name": _LONG, "value": 1}, "variable name"),
        ("/api/variables/", {"name": "v", "value": 1, "tags": [_LONG]}, "tags"),
        ("/api/work_pools/", {"name": _LONG}, "work pool name"),
        ("/api/work_pools/p/queues", {"name": _LONG}, "work queue name"),
    ],
)
def test_names_and_tags_over_their_limit_are_422_naming_the_field(
    path: str, body: dict[str, Any], field: str
) -> None:
    with serve(create_app()) as base:
        if "/queues" in path:
            assert httpx.post(f"{base}/api/work_pools/", json={"name": "p"}).status_code == 201
        answer = httpx.post(f"{base}{path}", json=body, timeout=30)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert field in detail and "limit" in detail


def test_a_long_block_document_name_is_422() -> None:
    document = {"name": "b" * 300, "block_type_slug": "secret", "data": {"value": "x"}}
    with serve(create_app()) as base:
        answer = httpx.post(
            f"{base}/api/block_documents/", json={"block_document": document}, timeout=30
        )
    assert answer.status_code == 422, answer.text
    assert "block document name" in answer.json()["detail"]


def test_a_run_update_cannot_grow_a_name_past_the_limit() -> None:
    run = _new_run()
    with serve(create_app()) as base:
        answer = httpx.patch(f"{base}/api/flow_runs/{run.id}", json={"name": _LONG}, timeout=30)
    assert answer.status_code == 422 and "flow run name" in answer.json()["detail"]


def _log(run_id: uuid.UUID, i: int) -> dict[str, Any]:
    return {"name": "t", "level": 20, "message": f"line {i}", "flow_run_id": str(run_id)}


def test_logs_past_the_cap_are_dropped_with_one_marker_even_from_concurrent_writers() -> None:
    run = _new_run()
    cap, writers, each = 50, 8, 20
    with temporary_settings(max_logs_per_run=cap), serve(create_app()) as base:

        def write(w: int) -> None:
            logs = [_log(run.id, w * each + i) for i in range(each)]
            for i in range(0, each, 5):
                answer = httpx.post(f"{base}/api/logs/", json={"logs": logs[i : i + 5]})
                assert answer.status_code == 201, answer.text

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        read = httpx.post(
            f"{base}/api/logs/filter", json={"flow_run_id": str(run.id), "limit": 1000}
        )
    assert read.status_code == 200
    logs = read.json()
    assert len(logs) == cap + 1
    assert all(log["message"].startswith("line ") for log in logs[:cap])
    marker = logs[-1]
    dropped = writers * each - cap
    assert marker["message"].startswith(f"{dropped} log lines were dropped")
    assert "PREFECT_LITE_MAX_LOGS_PER_RUN" in marker["message"] and marker["level"] == 30


def test_merged_parameters_are_held_to_the_payload_limit() -> None:
    half = "x" * 3000
    with temporary_settings(max_payload_bytes=5000), serve(create_app()) as base:
        created = httpx.post(
            f"{base}/api/deployments/",
            json={"flow_name": "f", "name": "d", "parameters": {"a": half}},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        answer = httpx.post(
            f"{base}/api/deployments/name/f/d/create_flow_run",
            json={"parameters": {"b": half}},
            timeout=30,
        )
    assert answer.status_code == 413, answer.text
    assert "max_payload_bytes".upper() in answer.json()["detail"]


@pytest.mark.parametrize("limit", [0, -1, 10_001])
@pytest.mark.parametrize(
    "path",
    [
        "/api/logs/filter",
        "/api/flow_runs/filter",
        "/api/deployments/filter",
        "/api/flows/filter",
        "/api/variables/filter",
        "/api/work_pools/filter",
        "/api/block_documents/filter",
        "/api/block_types/filter",
    ],
)
def test_every_limit_out_of_range_is_422(path: str, limit: int) -> None:
    body: dict[str, Any] = {"limit": limit}
    if path == "/api/logs/filter":
        body["flow_run_id"] = str(uuid.uuid4())
    with serve(create_app()) as base:
        answer = httpx.post(f"{base}{path}", json=body, timeout=30)
    assert answer.status_code == 422, answer.text
    assert "limit must be between 1 and 10000" in answer.json()["detail"]


def test_limit_one_reads_one_log() -> None:
    run = _new_run()
    with get_client(sync_client=True) as client:
        client.create_logs([Log.model_validate(_log(run.id, i)) for i in range(3)])
        assert [log.message for log in client.read_logs(run.id, limit=1)] == ["line 0"]


def test_the_in_process_flow_cache_is_bounded() -> None:
    for i in range(flows_api.KNOWN_FLOWS + 50):
        flows_api.create_flow(f"flow-{i}")
    assert len(flows_api._known) == flows_api.KNOWN_FLOWS
    assert "flow-0" not in flows_api._known and f"flow-{flows_api.KNOWN_FLOWS + 49}" in (
        flows_api._known
    )
