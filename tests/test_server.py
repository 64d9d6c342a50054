"""The HTTP API server: generated routes, OpenAPI, errors, auth, body limit, CORS, CLI.

Every test talks to a real uvicorn server on a loopback port (``tests._live_server``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from prefect_lite.api.registry import Operation, all_operations
from prefect_lite.exceptions import (
    AuthenticationError,
    ObjectAlreadyExists,
    ObjectNotFound,
    ParameterTypeError,
    PayloadTooLarge,
    PrefectLiteError,
    StoreUnavailable,
    UnserializableValue,
    UserError,
    ValidationError,
)
from prefect_lite.server import create_app
from prefect_lite.server import errors as server_errors
from prefect_lite.server.auth import AuthMiddleware, KeyRing
from prefect_lite.server.routes import MAX_INT, build_router
from prefect_lite.server.runner import bind_socket
from prefect_lite.server.services import ServiceThread, load_scheduler
from prefect_lite.settings import Settings, get_settings, temporary_settings
from prefect_lite.storage import connection
from tests._live_server import serve
from tests.helpers import REPO_ROOT, python_env, redis_servers_under, wait_for


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    """An httpx client on a live server of the default app (no API key), shared by the
    module: handlers read the per-test settings (Redis URL) at each request."""
    app = create_app(Settings(api_key=None))
    with serve(app) as base, httpx.Client(base_url=base) as client:
        yield client


def _create_run(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/flow_runs/", json={"flow_name": "etl", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


# ----------------------------------------------------------------------------- the basics


def test_health_and_version(api: httpx.Client) -> None:
    assert api.get("/api/health").json() is True
    version = api.get("/api/version").json()
    assert version["version"] and version["api_version"] == "1"


def test_openapi_describes_every_registered_operation(api: httpx.Client) -> None:
    document = api.get("/api/openapi.json").json()
    by_id = {
        spec["operationId"]: (method.upper(), path, spec)
        for path, methods in document["paths"].items()
        for method, spec in methods.items()
    }
    for op in all_operations().values():
        method, path, spec = by_id[op.name]
        assert (method, path) == (op.method, "/api" + op.path)
        assert str(op.status_code) in spec["responses"]
        assert spec["responses"]["404"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    create = by_id["create_flow_run"][2]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert body["required"] == ["flow_name"]
    assert body["additionalProperties"] is False
    assert body["properties"]["limit" if "limit" in body["properties"] else "flow_name"]
    answer = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/FlowRun"}
    read = by_id["read_flow_run"][2]
    assert [p["name"] for p in read["parameters"]] == ["flow_run_id"]
    assert read["parameters"][0]["schema"]["format"] == "uuid"


def test_create_and_read_a_flow_run_over_http(api: httpx.Client) -> None:
    created = _create_run(api, parameters={"x": 1}, tags=["a"])
    assert created["parameters"] == {"x": 1} and created["tags"] == ["a"]
    assert created["state"]["type"] == "PENDING"
    assert created["state"]["data"] is None  # only a ResultRef ever leaves the process
    read = api.get(f"/api/flow_runs/{created['id']}")
    assert read.status_code == 200
    assert read.json()["id"] == created["id"]
    assert read.headers["content-type"] == "application/json"


def test_post_with_optional_body_may_omit_it(api: httpx.Client) -> None:
    _create_run(api)
    response = api.post("/api/flow_runs/filter")
    assert response.status_code == 200
    assert len(response.json()) == 1


def test_patch_answers_204_without_a_body(api: httpx.Client) -> None:
    run = _create_run(api)
    response = api.patch(f"/api/flow_runs/{run['id']}", json={"name": "renamed"})
    assert response.status_code == 204 and response.content == b""
    assert api.get(f"/api/flow_runs/{run['id']}").json()["name"] == "renamed"


def test_state_data_other_than_a_result_ref_is_not_stored(api: httpx.Client) -> None:
    run = _create_run(api)
    ref = {"result_ref": 1, "storage": "local", "key": "abc", "serializer": "json"}
    answer = api.post(
        f"/api/flow_runs/{run['id']}/set_state", json={"state": {"type": "COMPLETED", "data": ref}}
    ).json()
    assert answer["status"] == "ACCEPT" and answer["state"]["data"] == ref


# ------------------------------------------------------------------------ errors: 4xx, not 5xx


def _detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    return detail


def test_unknown_run_is_404_with_detail(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    assert _detail(api.get(f"/api/flow_runs/{missing}"), 404) == f"no flow run with id {missing}"


def test_malformed_path_parameter_is_422(api: httpx.Client) -> None:
    detail = _detail(api.get("/api/flow_runs/not-a-uuid"), 422)
    assert "path.flow_run_id" in detail and "UUID" in detail


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "body.flow_name: Field required"),
        ({"flow_name": 5}, "body.flow_name"),
        ({"flow_name": "f", "bogus": 1}, "body.bogus: Extra inputs are not permitted"),
        ({"flow_name": "f", "tags": "not-a-list"}, "body.tags"),
        ({"flow_name": "f", "state": {"type": "NOPE"}}, "body.state.type"),
        ({"flow_name": "f", "expected_start_time": 1700000000}, "body.expected_start_time"),
        ([1, 2], "body"),
    ],
)
def test_invalid_bodies_are_422_with_detail(api: httpx.Client, body: Any, expected: str) -> None:
    assert expected in _detail(api.post("/api/flow_runs/", json=body), 422)


def test_strict_body_rejects_a_boolean_for_an_integer(api: httpx.Client) -> None:
    assert "body.limit" in _detail(api.post("/api/flow_runs/filter", json={"limit": True}), 422)


def test_malformed_json_is_422(api: httpx.Client) -> None:
    response = api.post(
        "/api/flow_runs/", content=b'{"flow_name": ', headers={"content-type": "application/json"}
    )
    assert "JSON" in _detail(response, 422)


@pytest.mark.parametrize("limit", [MAX_INT + 1, -MAX_INT - 1, 2**64])
def test_integers_beyond_the_json_safe_range_are_422(api: httpx.Client, limit: int) -> None:
    assert "body.limit" in _detail(api.post("/api/flows/filter", json={"limit": limit}), 422)


def test_values_json_cannot_store_are_422(api: httpx.Client) -> None:
    state = {"type": "PENDING", "state_details": {"extra": 2**70}}
    response = api.post("/api/flow_runs/", json={"flow_name": "f", "state": state})
    assert "cannot store as JSON" in _detail(response, 422)


def test_unknown_route_and_method(api: httpx.Client) -> None:
    assert _detail(api.get("/api/nothing-here"), 404) == "Not Found"
    assert _detail(api.delete("/api/health"), 405) == "Method Not Allowed"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ObjectNotFound("x"), 404),
        (ObjectAlreadyExists("x"), 409),
        (ValidationError("x"), 422),
        (ParameterTypeError("x"), 422),
        (UnserializableValue("x"), 422),
        (PayloadTooLarge("x"), 413),
        (AuthenticationError("x"), 401),
        (StoreUnavailable("x"), 503),
        (UserError("x"), 400),
        (PrefectLiteError("x"), 500),
        (RuntimeError("x"), 500),
    ],
)
def test_exception_status_table(exc: Exception, status: int) -> None:
    assert server_errors.status_for(exc) == status


def test_unreachable_redis_is_503_naming_it(api: httpx.Client) -> None:
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    with temporary_settings(redis_url=dead):
        connection.reset_connections()
        detail = _detail(api.get(f"/api/flow_runs/{uuid.uuid4()}"), 503)
    connection.reset_connections()
    assert "cannot reach Redis" in detail and dead in detail


def _closed_port() -> int:
    sock = bind_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# ------------------------------------------------------------------ route generation details


def _echo_query(
    when: uuid.UUID, tags: list[str] | None = None, spec: dict[str, int] | None = None
) -> dict[str, Any]:
    return {"when": str(when), "tags": tags, "spec": spec}


def _echo_schema(schema: str, model_config: int = 0) -> list[Any]:
    """Parameters named like BaseModel attributes keep their names on the wire."""
    return [schema, model_config]


def _nothing(item_id: str) -> None:
    return None


def _broken() -> int:
    raise KeyError("a bug")


@pytest.fixture
def synthetic() -> Iterator[httpx.Client]:
    ops = {
        "echo_query": Operation("echo_query", "GET", "/echo/{when}", _echo_query),
        "echo_schema": Operation("echo_schema", "POST", "/echo_schema", _echo_schema),
        "nothing": Operation("nothing", "DELETE", "/items/{item_id}", _nothing, 204),
        "broken": Operation("broken", "GET", "/broken", _broken),
    }
    app = FastAPI()
    server_errors.install(app)
    app.include_router(build_router(ops))
    app.add_middleware(AuthMiddleware, keys=KeyRing(()))  # auth off: every caller is admin
    with serve(app) as base, httpx.Client(base_url=base) as client:
        yield client


def test_get_parameters_travel_in_the_query_string(synthetic: httpx.Client) -> None:
    when = uuid.uuid4()
    answer = synthetic.get(f"/api/echo/{when}", params={"tags": ["a", "b"], "spec": '{"n": 1}'})
    assert answer.json() == {"when": str(when), "tags": ["a", "b"], "spec": {"n": 1}}
    assert synthetic.get(f"/api/echo/{when}").json()["spec"] is None
    detail = _detail(synthetic.get(f"/api/echo/{when}", params={"spec": "[1"}), 422)
    assert "query.spec" in detail


def test_parameters_clashing_with_model_attributes(synthetic: httpx.Client) -> None:
    answer = synthetic.post("/api/echo_schema", json={"schema": "s", "model_config": 3})
    assert answer.json() == ["s", 3]


def test_none_returning_delete_is_204(synthetic: httpx.Client) -> None:
    response = synthetic.delete("/api/items/abc")
    assert response.status_code == 204 and response.content == b""


def test_a_bug_is_a_json_500(synthetic: httpx.Client) -> None:
    assert "KeyError" in _detail(synthetic.get("/api/broken"), 500)


def test_a_path_naming_an_unknown_parameter_is_refused() -> None:
    op = Operation("broken", "GET", "/x/{nope}", _nothing)
    with pytest.raises(RuntimeError, match="unknown parameter"):
        build_router({"broken": op})


# ------------------------------------------------------------------------------------- auth


@pytest.fixture
def secured() -> Iterator[str]:
    settings = Settings(api_key="s3cret")
    with serve(create_app(settings)) as base:
        yield base


def test_health_needs_no_key(secured: str) -> None:
    assert httpx.get(f"{secured}/api/health").json() is True


@pytest.mark.parametrize("path", ["/api/version", "/api/openapi.json", "/api/docs"])
def test_everything_else_needs_the_key(secured: str, path: str) -> None:
    missing = httpx.get(secured + path)
    assert "missing API key" in _detail(missing, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(secured + path, headers={"Authorization": "Bearer nope"})
    assert "invalid API key" in _detail(wrong, 401)
    basic = httpx.get(secured + path, headers={"Authorization": "Basic czNjcmV0"})
    assert basic.status_code == 401
    right = httpx.get(secured + path, headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200


def test_unauthenticated_writes_are_refused_before_reading_the_body(secured: str) -> None:
    response = httpx.post(f"{secured}/api/flow_runs/", json={"flow_name": "f"})
    assert response.status_code == 401
    runs = httpx.post(
        f"{secured}/api/flow_runs/filter", headers={"Authorization": "Bearer s3cret"}
    ).json()
    assert runs == []


# ------------------------------------------------------------------------------- body limit


@pytest.fixture
def small_limit() -> Iterator[str]:
    with serve(create_app(Settings(max_payload_bytes=1000))) as base:
        yield base


def test_declared_oversized_body_is_413(small_limit: str) -> None:
    body = {"flow_name": "f", "parameters": {"x": "y" * 2000}}
    response = httpx.post(f"{small_limit}/api/flow_runs/", json=body)
    assert "1000-byte limit" in _detail(response, 413)


def test_chunked_oversized_body_is_413(small_limit: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"flow_name": "f", "parameters": {"x": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}}'

    response = httpx.post(
        f"{small_limit}/api/flow_runs/",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "limit" in _detail(response, 413)


def test_chunked_body_under_the_limit_is_served(small_limit: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"flow_name": '
        yield b'"small"}'

    response = httpx.post(
        f"{small_limit}/api/flow_runs/",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201 and response.json()["flow_name"] == "small"


# ------------------------------------------------------------------------------------- CORS


def test_cors_is_off_by_default(api: httpx.Client) -> None:
    preflight = api.options(
        "/api/health",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_for_configured_origins_only() -> None:
    app = create_app(get_settings(), cors_origins=["http://ui.example"])
    with serve(app) as base:
        ok = httpx.get(f"{base}/api/health", headers={"Origin": "http://ui.example"})
        other = httpx.get(f"{base}/api/health", headers={"Origin": "http://evil.example"})
    assert ok.headers["access-control-allow-origin"] == "http://ui.example"
    assert "access-control-allow-origin" not in other.headers


# ---------------------------------------------------------------------------------- services


class _Ticker:
    """Stands in for a service exposing only ``tick(now)`` (the scheduler's shape)."""

    def __init__(self) -> None:
        self.ticks: list[Any] = []

    def tick(self, now: Any) -> None:
        self.ticks.append(now)
        if len(self.ticks) == 2:
            raise RuntimeError("a failing tick must not end the loop")


def test_service_thread_ticks_until_stopped() -> None:
    ticker = _Ticker()
    service = ServiceThread("ticker", ticker, tick_seconds=0.01)
    service.start()
    wait_for(lambda: len(ticker.ticks) >= 4, message="ticks")
    service.stop()
    assert service.thread is not None and not service.thread.is_alive()


def test_scheduler_service_loads_when_installed() -> None:
    import importlib.util

    loaded = load_scheduler(get_settings())
    if importlib.util.find_spec("scheduler.service") is None:
        assert loaded is None
    else:
        assert loaded is not None and loaded.name == "scheduler"


def test_the_app_runs_the_scheduler_when_asked() -> None:
    """A deployment with a schedule gets its runs planned by the in-process scheduler."""
    with serve(create_app(get_settings(), run_services=True)) as base:
        api = f"{base}/api"
        schedule = {"interval": 60, "anchor_date": "2026-01-01T00:00:00Z"}
        body = {"flow_name": "ticker", "name": "every-minute", "schedules": [schedule]}
        deployment = httpx.post(f"{api}/deployments/", json=body).json()

        def planned() -> list[Any]:
            found = httpx.post(f"{api}/flow_runs/filter", json={"deployment_id": deployment["id"]})
            return list(found.json())

        runs = wait_for(planned, message="the scheduler planned no runs")
    assert all(run["state"]["type"] == "SCHEDULED" for run in runs)


# -------------------------------------------------------------------------- `server start`


def _start_server(*args: str, env: dict[str, str | None] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "prefect_lite", "server", "start", "--port", "0", *args],
        env=python_env(env),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _api_url(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip())
        if "export PREFECT_LITE_API_URL=" in line:
            return line.split("=", 1)[1].strip(), lines
    raise AssertionError(f"no API URL printed: {lines}; stderr: {proc.communicate()[1]}")


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    out, _err = proc.communicate(timeout=30)
    return proc.returncode, out


def test_server_start_serves_the_api_and_stops_cleanly_on_sigterm() -> None:
    proc = _start_server("--no-services")
    try:
        url, lines = _api_url(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
        assert "Scheduler: off (--no-services)" in lines
        assert any("Redis:" in line and "PREFECT_LITE_REDIS_URL" in line for line in lines)
        assert httpx.get(f"{url}/health").json() is True
    finally:
        code, _out = _stop(proc)
    assert code == 0


def test_server_start_runs_the_embedded_redis_and_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "embedded-home"
    proc = _start_server(env={"PREFECT_LITE_REDIS_URL": None, "PREFECT_LITE_HOME": str(home)})
    try:
        url, lines = _api_url(proc)
        assert any("started the embedded server" in line for line in lines)
        run = httpx.post(f"{url}/flow_runs/", json={"flow_name": "f"}).json()
        assert httpx.get(f"{url}/flow_runs/{run['id']}").status_code == 200
        assert redis_servers_under(home)
    finally:
        code, out = _stop(proc, signal.SIGINT)
    assert code == 0 and "Embedded Redis stopped." in out
    assert redis_servers_under(home) == []


def test_server_start_on_a_taken_port_is_one_clear_line() -> None:
    taken = bind_socket("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "prefect_lite", "server", "start", "--port", port],
            env=python_env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"Error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr


def test_server_start_with_unreachable_redis_is_one_clear_line() -> None:
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    env = {**os.environ, "PREFECT_LITE_REDIS_URL": dead}
    result = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "server", "start", "--port", "0"],
        env=python_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr and "Traceback" not in result.stderr
