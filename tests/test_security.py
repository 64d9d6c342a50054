"""Regression tests for attacks on a running system: one test per attack, each reproducing
it against real components (a real server on loopback, real subprocesses, real Redis) and
asserting that it is now refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import pickle
import shutil
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import redis
from pydantic import SecretStr

from prefect_lite import _time, flow, get_run_logger, task
from prefect_lite.api import flows as flows_api
from prefect_lite.api.registry import all_operations
from prefect_lite.api.roles import ROLES, allows
from prefect_lite.blocks.system import Secret
from prefect_lite.client import get_client
from prefect_lite.deployments import RunnerDeployment, run_deployment
from prefect_lite.deployments.execution import load_deployment_flow, read_deployment_to_run
from prefect_lite.deployments.git import git_clone
from prefect_lite.deployments.policy import ExecutionPolicy
from prefect_lite.deployments.runner import Runner
from prefect_lite.deployments.steps import run_steps
from prefect_lite.exceptions import (
    AuthenticationError,
    CodeRefused,
    ConfigurationError,
    PermissionDenied,
    PullStepError,
)
from prefect_lite.redaction import MASK
from prefect_lite.schemas import CacheRecord, Deployment, FlowRun, Log
from prefect_lite.serializers import PickleSerializer
from prefect_lite.server import create_app
from prefect_lite.server.auth import COOKIE_NAME, AuthMiddleware, KeyRing, parse_keys
from prefect_lite.server.hosts import host_name, trusted_hosts
from prefect_lite.server.runner import AUTH_OFF, check_exposure, is_loopback
from prefect_lite.settings import Settings, reload_settings, temporary_settings
from prefect_lite.signing import KEY_FILE, signing_key
from prefect_lite.states import Paused, Pending, ResultRef, Running, Scheduled, StateType
from prefect_lite.storage import async_waits, keys
from prefect_lite.storage.connection import get_redis, reset_connections
from prefect_lite.storage.embedded import EmbeddedRedis
from prefect_lite.storage.private_files import runtime_dir
from prefect_lite.variables import Variable
from tests._live_server import serve
from tests._workers import read, trigger, wait_final, worker_process
from tests.helpers import (
    REPO_ROOT,
    kill_redis_servers_under,
    python_env,
    run_python,
    spawn_python,
    wait_for,
)

# ---- network exposure and roles ----

KEYS = {role: f"{role}-key-{uuid.uuid4().hex}" for role in ROLES}
KEYS_SETTING = ",".join(f"{role}:{key}" for role, key in KEYS.items())


def _cli(*args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect_lite", *args],
        env=python_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """A server with one key per role (no legacy key)."""
    with serve(create_app(Settings(api_key=None, api_keys=SecretStr(KEYS_SETTING)))) as url:
        yield url


def _http(base: str, role: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[role]}"} if role else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def _deployment(base: str) -> dict[str, Any]:
    with _http(base, "admin") as admin:
        made = admin.post(
            "/api/deployments/",
            json={"flow_name": "sec", "name": f"d-{uuid.uuid4().hex[:8]}", "entrypoint": "x.py:f"},
        )
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_a_non_loopback_start_without_a_key_is_refused_with_one_line() -> None:
    with pytest.raises(ConfigurationError, match=r"refusing to listen on 0\.0\.0\.0 without"):
        check_exposure("0.0.0.0", KeyRing(()))
    with pytest.raises(ConfigurationError, match="all interfaces"):
        check_exposure("", KeyRing(()))
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    # The real command: refused before Redis or a socket is touched.
    done = _cli("server", "start", "--host", "0.0.0.0", "--port", "0")
    line = _one_error_line(done)
    assert line.startswith("Error: refusing to listen on 0.0.0.0 without an API key"), line
    assert "--insecure-no-auth" in line and "api-key generate" in line


def test_insecure_no_auth_overrides_the_refusal_with_a_loud_warning() -> None:
    shown = check_exposure("0.0.0.0", KeyRing(()), insecure_no_auth=True)
    assert shown.startswith("WARNING: --insecure-no-auth") and "NO AUTHENTICATION" in shown
    # The real command gets past the check (its store is unreachable, so it never binds).
    done = _cli(
        "server", "start", "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth",
        env={"PREFECT_LITE_REDIS_URL": "redis://127.0.0.1:1/0"},
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "WARNING: --insecure-no-auth: the API on 0.0.0.0 has NO AUTHENTICATION" in done.stderr


def test_loopback_without_a_key_stays_open_and_says_auth_is_off() -> None:
    assert check_exposure("127.0.0.1", KeyRing(())) == AUTH_OFF
    assert "Auth: off" in AUTH_OFF
    keys = KeyRing.from_settings(Settings(api_key=None, api_keys=SecretStr(KEYS_SETTING)))
    line = check_exposure("0.0.0.0", keys)
    assert line == "Auth: on, 4 keys (read, run, worker, admin)"
    assert not any(key in line for key in KEYS.values())


def test_a_foreign_host_header_is_refused_dns_rebinding() -> None:
    app = create_app(Settings(api_key=None, server_trusted_hosts="api.internal"))
    with serve(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/version").status_code == 200  # Host: 127.0.0.1:port
        for trusted in ("localhost:4200", "[::1]:4200", "API.internal", "api.internal:80"):
            assert http.get("/api/version", headers={"Host": trusted}).status_code == 200
        refused = http.get("/api/flows/filter", headers={"Host": "rebind.attacker.example"})
        posted = http.post("/api/work_pools/", headers={"Host": "evil:4200"}, json={})
    assert refused.status_code == 400 and posted.status_code == 400
    assert "untrusted Host header 'rebind.attacker.example'" in refused.json()["detail"]
    assert "PREFECT_LITE_SERVER_TRUSTED_HOSTS" in refused.json()["detail"]
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:1") == "example.com"
    assert "10.1.2.3" in trusted_hosts("", bound_host="10.1.2.3")
    assert "*" not in trusted_hosts("")
    with serve(create_app(Settings(api_key=None, server_trusted_hosts="*"))) as url:
        assert httpx.get(f"{url}/api/version", headers={"Host": "any.name"}).status_code == 200


def test_every_operation_declares_its_role_and_a_read_key_reaches_no_other(base: str) -> None:
    operations = all_operations()
    undeclared = sorted(name for name, op in operations.items() if not op.role_declared)
    assert undeclared == []
    assert {role for op in operations.values() for role in op.roles} == set(ROLES)
    published = {
        route["operationId"]: route.get("x-required-roles")
        for methods in create_app(Settings(api_key=None)).openapi()["paths"].values()
        for route in methods.values()
    }
    assert {name: published[name] for name in operations} == {
        name: list(op.roles) for name, op in operations.items()
    }
    with _http(base, "read") as http:
        for op in operations.values():
            path = "/api" + op.path
            for name in op.path.split("{")[1:]:
                path = path.replace("{" + name.split("}")[0] + "}", str(uuid.uuid4()))
            body = {} if op.method in ("POST", "PATCH", "PUT") else None
            answer = http.request(op.method, path, json=body)
            if "read" in op.roles:
                assert answer.status_code != 403, f"{op.name}: {answer.text}"
                continue
            assert answer.status_code == 403, f"{op.name} let a read key in: {answer.text}"
            needed = " or ".join(f"'{r}'" for r in op.roles)
            assert answer.json()["detail"].startswith(f"this needs the {needed} role"), op.name


@pytest.mark.parametrize(
    ("role", "allowed", "forbidden"),
    [
        ("read", ["read_flows", "read_runs"], ["trigger", "write_logs", "create_pool"]),
        ("run", ["read_flows", "trigger", "cancel"], ["write_logs", "create_pool", "deploy"]),
        ("worker", ["read_flows", "write_logs", "create_run"], ["cancel", "create_pool"]),
        ("admin", ["trigger", "write_logs", "create_pool", "deploy"], []),
    ],
)
def test_each_role_is_allowed_its_operations_and_refused_the_others(
    base: str, role: str, allowed: list[str], forbidden: list[str]
) -> None:
    deployment = _deployment(base)
    with _http(base, "admin") as admin:
        victim = admin.post("/api/flow_runs/", json={"flow_name": "sec"}).json()

    def attempt(http: httpx.Client, action: str) -> httpx.Response:
        return {
            "read_flows": lambda: http.post("/api/flows/filter", json={}),
            "read_runs": lambda: http.get(f"/api/flow_runs/{victim['id']}"),
            "trigger": lambda: http.post(
                f"/api/deployments/{deployment['id']}/create_flow_run", json={}
            ),
            "cancel": lambda: http.post(f"/api/flow_runs/{victim['id']}/cancel", json={}),
            "write_logs": lambda: http.post("/api/logs/", json={"logs": []}),
            "create_run": lambda: http.post("/api/flow_runs/", json={"flow_name": "sec"}),
            "create_pool": lambda: http.post(
                "/api/work_pools/", json={"name": f"p-{uuid.uuid4().hex[:8]}"}
            ),
            "deploy": lambda: http.post(
                "/api/deployments/", json={"flow_name": "sec", "name": "x", "entrypoint": "a:b"}
            ),
        }[action]()

    with _http(base, role) as http:
        for action in allowed:
            answer = attempt(http, action)
            assert answer.status_code < 300, f"{role} {action}: {answer.text}"
        for action in forbidden:
            answer = attempt(http, action)
            assert answer.status_code == 403, f"{role} {action}: {answer.text}"
            assert answer.json()["detail"].endswith(f"your key has '{role}'")


def test_a_worker_key_cannot_create_a_run_aimed_at_a_deployment_or_pool(base: str) -> None:
    deployment = _deployment(base)
    with _http(base, "worker") as http:
        aimed = http.post(
            "/api/flow_runs/", json={"flow_name": "sec", "deployment_id": deployment["id"]}
        )
        pooled = http.post("/api/flow_runs/", json={"flow_name": "sec", "work_pool_name": "p"})
    assert aimed.status_code == 403 and pooled.status_code == 403
    assert aimed.json()["detail"] == (
        "deployment_id: this needs the 'admin' role; your key has 'worker'"
    )


def test_a_403_names_the_missing_role_and_the_client_says_it_in_one_line(base: str) -> None:
    with _http(base, "run") as http:
        answer = http.post("/api/work_pools/", json={"name": "x"})
    assert answer.status_code == 403
    assert answer.json() == {"detail": "this needs the 'admin' role; your key has 'run'"}
    with (
        temporary_settings(api_url=f"{base}/api", api_key=KEYS["run"]),
        get_client(sync_client=True) as client,
        pytest.raises(PermissionDenied, match="needs the 'admin' role; your key has 'run'"),
    ):
        client.create_work_pool("x")
    done = _cli(
        "work-pool", "create", "x",
        env={"PREFECT_LITE_API_URL": f"{base}/api", "PREFECT_LITE_API_KEY": KEYS["run"]},
    )  # fmt: skip
    line = _one_error_line(done)
    assert "this needs the 'admin' role; your key has 'run'" in line, line
    assert KEYS["run"] not in done.stderr + done.stdout


def test_include_secrets_needs_the_worker_or_admin_role(base: str) -> None:
    Secret(value="hunter2-value").save("db-password")  # in process, straight to the store
    path = "/api/block_documents/name/secret/db-password"
    shown: dict[str, Any] = {}
    for role in ROLES:
        with _http(base, role) as http:
            masked = http.get(path)
            full = http.get(path, params={"include_secrets": "true"})
        assert masked.status_code == 200 and "hunter2-value" not in masked.text
        shown[role] = full.status_code
        if role in ("read", "run"):
            assert full.json()["detail"] == (
                f"include_secrets: this needs the 'worker' role; your key has '{role}'"
            )
            assert "hunter2-value" not in full.text
        else:
            assert full.json()["data"]["value"] == "hunter2-value"
    assert shown == {"read": 403, "run": 403, "worker": 200, "admin": 200}
    with _http(base, "run") as http:
        listed = http.post("/api/block_documents/filter", json={"include_secrets": True})
    assert listed.status_code == 403


def test_the_legacy_single_key_is_admin() -> None:
    with serve(create_app(Settings(api_key=SecretStr("legacy-key")))) as url:
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer legacy-key"}) as http:
            made = http.post("/api/work_pools/", json={"name": "legacy-pool"})
            assert made.status_code == 201, made.text
        assert httpx.get(f"{url}/api/work_pools/legacy-pool").status_code == 401
    assert KeyRing.from_settings(Settings(api_key=SecretStr("k"))).role_of(b"k") == "admin"


def test_malformed_keys_are_one_clear_line_that_never_shows_a_key() -> None:
    with pytest.raises(ConfigurationError, match="entry 2: expected ROLE:KEY") as err:
        parse_keys("run:good-key,superuser:secret-value")
    assert "secret-value" not in str(err.value)
    with pytest.raises(ConfigurationError, match="configured twice"):
        KeyRing.from_settings(Settings(api_key=SecretStr("same"), api_keys=SecretStr("run:same")))
    done = _cli(
        "server", "start", "--port", "0", env={"PREFECT_LITE_API_KEYS": "root:leaked-value"}
    )
    line = _one_error_line(done)
    assert "PREFECT_LITE_API_KEYS entry 1" in line and "leaked-value" not in done.stderr


def test_keys_are_compared_whole_and_the_scheme_matters(base: str) -> None:
    key = KEYS["admin"]
    for header in (f"Bearer {key[:-1]}", f"Bearer {key}x", f"Basic {key}", key, "Bearer"):
        answer = httpx.get(f"{base}/api/version", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert answer.json()["detail"] == "invalid API key: check PREFECT_LITE_API_KEY"
    missing = httpx.get(f"{base}/api/version")
    assert missing.status_code == 401 and missing.json()["detail"].startswith("missing API key")
    assert httpx.get(f"{base}/api/health").status_code == 200


def test_cookie_auth_needs_a_same_origin_request_to_change_anything(base: str) -> None:
    cookie = {"Cookie": f"{COOKIE_NAME}={KEYS['admin']}"}
    host = base.removeprefix("http://")

    def create(headers: dict[str, str]) -> httpx.Response:
        name = f"c-{uuid.uuid4().hex[:8]}"
        return httpx.post(f"{base}/api/work_pools/", json={"name": name}, headers=headers)

    assert httpx.post(f"{base}/api/flows/filter", json={}, headers=cookie).status_code == 403
    assert httpx.get(f"{base}/api/version", headers=cookie).status_code == 200
    refused = [
        create(cookie),
        create({**cookie, "Sec-Fetch-Site": "cross-site"}),
        create({**cookie, "Sec-Fetch-Site": "same-site"}),
        create({**cookie, "Origin": "http://attacker.example"}),
        create({**cookie, "Origin": f"http://{host}.attacker.example"}),
        create({**cookie, "Origin": "null"}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "cross-site request refused" in refused[0].json()["detail"]
    assert create({**cookie, "Sec-Fetch-Site": "same-origin"}).status_code == 201
    assert create({**cookie, "Sec-Fetch-Site": "none"}).status_code == 201
    assert create({**cookie, "Origin": f"http://{host}"}).status_code == 201
    # A bearer key needs no origin check (no browser sends one by itself).
    bearer = {"Authorization": f"Bearer {KEYS['admin']}", "Origin": "http://attacker.example"}
    assert create(bearer).status_code == 201
    # The cookie's role counts like the header's.
    run_cookie = {"Cookie": f"{COOKIE_NAME}={KEYS['run']}", "Sec-Fetch-Site": "same-origin"}
    assert create(run_cookie).status_code == 403
    wrong = httpx.get(f"{base}/api/version", headers={"Cookie": f"{COOKIE_NAME}=nope"})
    assert wrong.status_code == 401


def test_a_page_without_credentials_redirects_to_login_and_the_api_answers_401(
    base: str,
) -> None:
    with httpx.Client(base_url=base, follow_redirects=False) as http:
        page = http.get("/flow-runs/abc", params={"tab": "logs"})
        root = http.get("/")
        api = http.get("/api/flow_runs/abc")
        login = http.get("/login")
        static = http.get("/static/app.css")
        signed_in = http.get("/flow-runs/abc", headers={"Cookie": f"{COOKIE_NAME}={KEYS['read']}"})
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/flow-runs/abc%3Ftab%3Dlogs"
    assert root.status_code == 303 and root.headers["location"] == "/login?next=/"
    assert api.status_code == 401 and api.headers["content-type"] == "application/json"
    assert login.status_code == 200 and "Sign in" in login.text  # open: the UI's sign-in page
    assert static.status_code == 404  # open, but no such file
    assert signed_in.status_code == 404  # past auth: no flow run "abc"


def test_roles_include_what_the_contract_says() -> None:
    assert all(allows("admin", role) for role in ROLES)
    assert allows("run", "read") and allows("worker", "read")
    assert not allows("run", "worker") and not allows("worker", "run")
    assert not allows("read", "run") and not allows("", "read") and not allows("root", "read")


def test_api_key_generate_prints_a_fresh_key_and_config_view_never_shows_keys() -> None:
    first, second = _cli("api-key", "generate", "--role", "run"), _cli("api-key", "generate")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    key = first.stdout.splitlines()[0]
    assert len(key) >= 40 and key != second.stdout.splitlines()[0]
    assert f"PREFECT_LITE_API_KEYS=run:{key}" in first.stdout
    assert f"PREFECT_LITE_API_KEY={key}" in first.stdout
    assert "PREFECT_LITE_API_KEYS=admin:" in second.stdout
    assert _cli("api-key", "generate", "--role", "root").returncode != 0
    view = _cli("config", "view", env={"PREFECT_LITE_API_KEYS": KEYS_SETTING})
    assert view.returncode == 0, view.stderr
    assert "PREFECT_LITE_API_KEYS" in view.stdout
    assert not any(key in view.stdout for key in KEYS.values())


# A flow executed against the API with a worker key: what the engine calls must be allowed.
@task(persist_result=True, cache_key_fn=lambda context, parameters: f"sec-{parameters['x']}")
def _double(x: int) -> int:
    get_run_logger().info("doubling %s", x)
    return 2 * x


@flow(name="sec-child")
def _child(x: int) -> int:
    return _double(x) + 1


@flow(name="sec-parent", persist_result=True)
def _parent(x: int, downstream: str) -> int:
    token = Secret.load("worker-token").get()
    assert token == "t0ken"
    triggered = run_deployment(downstream, timeout=0)
    assert triggered.state_type is StateType.SCHEDULED
    return _double(x) + _child(x)


def test_a_flow_runs_end_to_end_with_a_worker_key_and_not_with_a_run_key(base: str) -> None:
    Secret(value="t0ken").save("worker-token")
    downstream = "sec/" + _deployment(base)["name"]
    with temporary_settings(api_url=f"{base}/api", api_key=KEYS["worker"]):
        state = _parent(5, downstream, return_state=True)
        assert state.type is StateType.COMPLETED, state
        assert state.result() == 21
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_name="sec-child")
            assert [r.state_type for r in runs] == [StateType.COMPLETED]
            parent = client.read_flow_runs(flow_name="sec-parent")[0]
            wait_for(
                lambda: any("doubling 5" in log.message for log in client.read_logs(parent.id)),
                message="the task's log line, shipped with the worker key",
            )
    with (
        temporary_settings(api_url=f"{base}/api", api_key=KEYS["run"]),
        pytest.raises((PermissionDenied, AuthenticationError), match="'worker' role"),
    ):
        _parent(6, downstream)


def test_a_websocket_handshake_needs_a_key_too() -> None:
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["state"]["role"])

    keys = KeyRing.from_settings(Settings(api_key=None, api_keys=SecretStr(KEYS_SETTING)))
    app = AuthMiddleware(inner, keys)

    def handshake(headers: list[tuple[bytes, bytes]]) -> list[Any]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "websocket.connect"}

        scope = {"type": "websocket", "path": "/ws", "headers": headers}
        asyncio.run(app(scope, receive, send))
        return sent

    assert handshake([]) == [{"type": "websocket.close", "code": 1008}]
    cookie = (b"cookie", f"{COOKIE_NAME}={KEYS['run']}".encode())
    assert handshake([cookie]) == [{"type": "websocket.close", "code": 1008}]  # not same-origin
    assert handshake([cookie, (b"sec-fetch-site", b"same-origin")]) == []
    assert handshake([(b"authorization", f"Bearer {KEYS['read']}".encode())]) == []
    assert reached == ["run", "read"]


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
    each = WAITS // 2  # 2 x 60 waits: more than the 40 threads, quick to set up under load
    with temporary_settings(max_concurrent_waits=2 * each), serve(create_app()) as base:
        inputs = _Waits(base, input_path, {"key_prefix": "msg", "wait_seconds": 10}, each)
        resumes = _Waits(base, resume_path, {"timeout": 10}, each)
        wait_for(lambda: _waits_in_progress() == 2 * each, timeout=30, message="waits held")
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
    hubs = async_waits._hubs.values()
    return sum(hub.active for loop, hub in hubs if loop.is_running() and not hub.broken)


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


def _deploy_schema(base: str, schema: dict[str, Any], name: str = "d") -> httpx.Response:
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
        answer = _deploy_schema(base, schema)
    assert answer.status_code == 422, answer.text
    assert "parameter_openapi_schema" in answer.json()["detail"]
    assert problem in answer.json()["detail"]


def test_a_broken_schema_already_stored_is_a_clear_4xx_not_a_500(redis_client: Any) -> None:
    with serve(create_app()) as base:
        assert _deploy_schema(base, {"type": "object"}).status_code == 201
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
        assert _deploy_schema(base, {"type": "object"}).status_code == 201
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


# ---- code execution on workers ----

STEPS = "prefect.deployments.steps"
FLOW_SOURCE = """
from pathlib import Path

from prefect_lite import flow

Path({marker!r}).write_text("imported")


@flow
def f() -> str:
    return "ran"
"""


def _pool() -> None:
    with get_client(sync_client=True) as client:
        client.create_work_pool("pool")


def _deploy(name: str, **fields: Any) -> Deployment:
    """A deployment of the worker fixture flow ``hello`` unless fields say otherwise."""
    fields.setdefault("entrypoint", "tests/fixtures/worker_flows.py:hello")
    fields.setdefault("path", str(REPO_ROOT))
    with get_client(sync_client=True) as client:
        return client.create_deployment("hello", name, work_pool_name="pool", **fields)


def _flow_file(directory: Path, marker: Path) -> Path:
    """``directory/x.py`` with flow ``f``; importing it writes ``marker``."""
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "x.py"
    file.write_text(FLOW_SOURCE.format(marker=str(marker)))
    return file


def _message(run: Any) -> str:
    return str(run.state.message or "")


def test_a_dotted_callable_pull_step_never_runs_without_the_workers_opt_in(
    tmp_path: Path,
) -> None:
    _pool()
    marker = tmp_path / "pwned"
    attack = [{"subprocess.run": {"args": f"touch {marker}", "shell": True}}]
    deployment = _deploy("custom", pull_steps=attack)
    with worker_process(tmp_path, name="plain"):
        refused = wait_final(trigger(deployment).id)
    assert refused.state_name == "Failed"
    assert "pull step 1 ('subprocess.run') is not a built-in step" in _message(refused)
    assert "--allow-custom-steps" in _message(refused)
    assert not marker.exists()
    with worker_process(tmp_path, "pool", "--allow-custom-steps", name="trusting"):
        ran = wait_final(trigger(deployment).id)
    assert marker.exists()  # the operator allowed it: the callable ran
    assert "built-in" not in _message(ran)


def test_a_worker_narrowed_to_some_steps_refuses_the_others_before_any_runs(
    tmp_path: Path,
) -> None:
    _pool()
    marker = tmp_path / "shell-ran"
    steps = [
        {f"{STEPS}.set_working_directory": {"directory": str(REPO_ROOT)}},
        {f"{STEPS}.run_shell_script": {"script": f"touch {marker}"}},
    ]
    deployment = _deploy("narrow", pull_steps=steps)
    with worker_process(tmp_path, "pool", "--allowed-step", "set_working_directory"):
        refused = wait_final(trigger(deployment).id)
    assert refused.state_name == "Failed" and not marker.exists()
    assert "pull step 2 ('prefect.deployments.steps.run_shell_script')" in _message(refused)
    assert "--allowed-step" in _message(refused)


def test_an_allowed_steps_list_is_the_whole_list_in_any_spelling() -> None:
    policy = ExecutionPolicy(allowed_steps=("prefect.deployments.steps.git_clone", "my.step"))
    policy.check_step(1, "git_clone")
    policy.check_step(2, "prefect_lite.deployments.steps.git_clone")
    policy.check_step(3, "my.step")  # a custom step named by the operator is allowed
    for refused in ("run_shell_script", "my.other_step"):
        with pytest.raises(CodeRefused, match="not among the steps this worker allows"):
            policy.check_step(4, refused)


def test_run_shell_script_runs_no_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_steps([{f"{STEPS}.run_shell_script": {
        "script": "echo one; touch never-made\necho $HOME | cat",
        "stream_output": False,
    }}])  # fmt: skip
    assert out["stdout"] == "one; touch never-made\n$HOME | cat"
    assert not Path("never-made").exists()
    expanded = run_steps([{f"{STEPS}.run_shell_script": {
        "script": "echo $GREETING", "env": {"GREETING": "hi there"},
        "expand_env_vars": True, "stream_output": False,
    }}])  # fmt: skip
    assert expanded["stdout"] == "hi there"
    with pytest.raises(PullStepError, match="exited with status 3"):
        run_steps([{"run_shell_script": {"script": f"{sys.executable} -c 'exit(3)'",
                                         "stream_output": False}}])  # fmt: skip


def test_pip_install_requirements_installs_from_the_steps_directory(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")
    out = run_steps(
        [{f"{STEPS}.pip_install_requirements": {"directory": str(tmp_path),
                                                "stream_output": False}}]
    )  # fmt: skip
    assert set(out) == {"stdout", "stderr"}
    with pytest.raises(PullStepError, match="exited with status"):
        run_steps([{"pip_install_requirements": {"directory": str(tmp_path),
                                                 "requirements_file": "missing.txt",
                                                 "stream_output": False}}])  # fmt: skip


def test_an_entrypoint_outside_the_deployments_path_is_refused_by_a_worker(
    tmp_path: Path,
) -> None:
    _pool()
    project, marker = tmp_path / "project", tmp_path / "imported"
    project.mkdir()
    _flow_file(tmp_path / "elsewhere", marker)
    deployment = _deploy("dotdot", entrypoint="../elsewhere/x.py:f", path=str(project))
    with worker_process(tmp_path, name="strict"):
        refused = wait_final(trigger(deployment).id)
    assert refused.state_name == "Failed" and not marker.exists()
    assert "entrypoint '../elsewhere/x.py:f' resolves to" in _message(refused)
    assert "outside the deployment's path" in _message(refused)
    assert "--allow-entrypoint-escape" in _message(refused)
    with worker_process(tmp_path, "pool", "--allow-entrypoint-escape", name="lenient"):
        allowed = wait_final(trigger(deployment).id)
    assert allowed.state_name == "Completed" and marker.exists()


def _escaping(entrypoint: str, path: Path) -> Deployment:
    return Deployment(
        name="d", flow_name="f", flow_id=uuid.uuid4(), entrypoint=entrypoint, path=str(path)
    )


def test_an_absolute_entrypoint_is_refused_unless_its_directory_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project, marker = tmp_path / "project", tmp_path / "imported"
    project.mkdir()
    file = _flow_file(tmp_path / "elsewhere", marker)
    deployment = _escaping(f"{file}:f", project)
    with pytest.raises(CodeRefused, match="outside the deployment's path"):
        load_deployment_flow(deployment, ExecutionPolicy())
    assert not marker.exists()
    allowed = ExecutionPolicy(allowed_code_paths=(str(project), str(file.parent)))
    assert load_deployment_flow(deployment, allowed).name == "f" and marker.exists()


def test_a_symlink_leading_out_of_the_deployments_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    project, marker = tmp_path / "project", tmp_path / "imported"
    project.mkdir()
    file = _flow_file(tmp_path / "elsewhere", marker)
    (project / "inside.py").symlink_to(file)
    (project / "pkg").symlink_to(file.parent, target_is_directory=True)
    for entrypoint in ("inside.py:f", "pkg/x.py:f"):
        with pytest.raises(CodeRefused, match=f"entrypoint '{entrypoint}' resolves to"):
            load_deployment_flow(_escaping(entrypoint, project), ExecutionPolicy())
    with pytest.raises(CodeRefused, match="outside"):  # a module found outside, not imported
        load_deployment_flow(_escaping("subprocess:run", project), ExecutionPolicy())
    assert not marker.exists()
    lenient = ExecutionPolicy(allow_entrypoint_escape=True)
    assert load_deployment_flow(_escaping("inside.py:f", project), lenient).name == "f"


def test_code_outside_the_allowed_code_paths_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    allowed_root, other = tmp_path / "srv", tmp_path / "home-dir"
    _flow_file(allowed_root / "flows", tmp_path / "ok")
    _flow_file(other, tmp_path / "not-ok")
    policy = ExecutionPolicy(allowed_code_paths=(str(allowed_root),))
    assert load_deployment_flow(_escaping("x.py:f", allowed_root / "flows"), policy).name == "f"
    with pytest.raises(CodeRefused, match="not inside a code path this worker allows"):
        load_deployment_flow(_escaping("x.py:f", other), policy)
    assert not (tmp_path / "not-ok").exists()


@pytest.mark.parametrize(
    "repository",
    [
        "--upload-pack=touch {marker}",
        "-u touch {marker}",
        "ext::sh -c touch% {marker}",
        "fd::3",
    ],
)
def test_git_urls_that_are_options_or_transport_helpers_are_refused(
    repository: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    url = repository.format(marker=marker)
    step = {f"{STEPS}.git_clone": {"repository": url}}
    lenient = ExecutionPolicy(allow_file_urls=True, allow_custom_steps=True)
    with pytest.raises(CodeRefused, match="is not a URL git may clone"):
        run_steps([step], lenient)
    with pytest.raises(PullStepError, match="is not a URL git may clone"):
        git_clone(url)  # called directly, too
    assert not marker.exists()


def test_git_branches_and_commits_cannot_be_options(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(PullStepError, match="is not a branch name"):
        git_clone("https://example.invalid/r.git", branch=f"--upload-pack=touch {marker}")
    with pytest.raises(PullStepError, match="is not a hexadecimal commit id"):
        git_clone("https://example.invalid/r.git", commit=f"--upload-pack=touch {marker}")
    assert not marker.exists()


def test_only_https_ssh_and_opted_in_file_urls_are_cloned() -> None:
    strict = ExecutionPolicy()
    for url in ("https://h/r.git", "ssh://git@h/r.git", "git@github.com:org/r.git"):
        strict.check_git_url(url)
    for url in ("http://h/r.git", "git://h/r.git", "ftp://h/r", "/srv/repo", "repo"):
        with pytest.raises(CodeRefused, match="only https://, ssh:// and user@host:path"):
            strict.check_git_url(url)
    with pytest.raises(CodeRefused, match=r"local file:// URL; .*--allow-file-urls"):
        strict.check_git_url("file:///srv/repo")
    ExecutionPolicy(allow_file_urls=True).check_git_url("file:///srv/repo")
    narrow = ExecutionPolicy(allowed_git_urls=("https://github.com/acme/",))
    narrow.check_git_url("https://github.com/acme/flows.git")
    with pytest.raises(CodeRefused, match="not under a URL this worker allows"):
        narrow.check_git_url("https://github.com/evil/flows.git")


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def flow_repo(tmp_path: Path) -> Path:
    """A local git repository holding ``flows.py`` with flow ``f``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    (repo / "flows.py").write_text(FLOW_SOURCE.format(marker=str(tmp_path / "cloned-flow")))
    _git("add", "flows.py", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x", cwd=repo)
    return repo


def test_git_gets_a_double_dash_before_the_url(
    flow_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``git`` on PATH that records its arguments, then runs the real one."""
    shim = tmp_path / "bin"
    shim.mkdir()
    calls = tmp_path / "git-calls"
    real_git = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real_git} "$@"\n')
    (shim / "git").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    steps = [
        {f"{STEPS}.git_clone": {"id": "clone", "repository": f"file://{flow_repo}"}},
        {f"{STEPS}.set_working_directory": {"directory": "{{ clone.directory }}"}},
    ]
    out = run_steps(steps, ExecutionPolicy(allow_file_urls=True))
    assert (Path(out["directory"]) / "flows.py").exists()
    clone = next(line for line in calls.read_text().splitlines() if line.startswith("clone"))
    assert f" -- file://{flow_repo} " in f"{clone} "
    run_steps(steps, ExecutionPolicy(allow_file_urls=True))  # updates the cached checkout
    fetch = next(line for line in calls.read_text().splitlines() if line.startswith("fetch"))
    assert f" -- file://{flow_repo} " in f"{fetch} "


def test_a_secret_block_in_a_pull_step_is_resolved_on_the_worker_and_stored_nowhere(
    tmp_path: Path,
) -> None:
    _pool()
    secret = f"s3cr3t-{uuid.uuid4().hex[:8]}"
    Secret(value=secret).save("deploy-token")
    marker_prefix = tmp_path / "token"
    step = {f"{STEPS}.run_shell_script": {
        "script": f"touch {marker_prefix}-$TOKEN",
        "env": {"TOKEN": "{{ prefect.blocks.secret.deploy-token }}"},
        "expand_env_vars": True,
    }}  # fmt: skip
    deployment = _deploy("templated", pull_steps=[step])
    with worker_process(tmp_path, name="secretive"):
        done = wait_final(trigger(deployment).id)
    assert done.state_name == "Completed"
    assert Path(f"{marker_prefix}-{secret}").exists()  # the worker had the value
    r = get_redis()
    holders = [_text(key) for key in r.scan_iter() if secret.encode() in _dump(r, key)]
    assert holders and all(":block:" in key for key in holders), holders  # the block only
    with serve(create_app(Settings(api_key=None))) as base:
        answer = httpx.get(f"{base}/api/deployments/{deployment.id}").text
    assert "{{ prefect.blocks.secret.deploy-token }}" in answer and secret not in answer


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


def _dump(r: Any, key: Any) -> bytes:
    kind = _text(r.type(key))
    if kind == "string":
        value = r.get(key)
        return value if isinstance(value, bytes) else str(value).encode()
    if kind == "hash":
        return repr(r.hgetall(key)).encode()
    if kind in ("list", "stream", "zset", "set"):
        return repr(r.dump(key)).encode()
    return b""


def test_pull_steps_template_variables_and_earlier_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # set_working_directory changes it; put back after
    Variable.set("clone_dir", str(tmp_path))
    out = run_steps([
        {f"{STEPS}.set_working_directory": {"id": "cd",
                                            "directory": "{{ prefect.variables.clone_dir }}"}},
        {f"{STEPS}.run_shell_script": {"script": "echo {{ cd.directory }}",
                                       "stream_output": False}},
    ])  # fmt: skip
    assert out["stdout"] == str(tmp_path.resolve())
    with pytest.raises(PullStepError, match="no secret block named 'ghost'"):
        run_steps([{"run_shell_script": {"script": "echo {{ prefect.blocks.secret.ghost }}"}}])


def test_a_failing_step_does_not_reveal_the_secret_it_used() -> None:
    Secret(value="hunter2-token").save("pw")
    step = {"run_shell_script": {"script": "no-such-command-{{ prefect.blocks.secret.pw }}"}}
    with pytest.raises(PullStepError) as caught:
        run_steps([step])
    assert "hunter2-token" not in str(caught.value) and MASK in str(caught.value)


def test_credentials_in_stored_pull_steps_are_masked_on_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "https://deployer:ghp_tok3n@git.example.com/acme/flows.git"
    steps = [{f"{STEPS}.git_clone": {"repository": url, "access_token": "glpat-xyz"}}]
    with caplog.at_level(logging.WARNING, logger="prefect_lite.api.deployments"):
        created = _deploy("inline", pull_steps=steps)
    assert "stores credentials inline" in caplog.text and "Secret block" in caplog.text
    assert "ghp_tok3n" not in caplog.text and "glpat-xyz" not in caplog.text
    shown = {
        "repository": f"https://deployer:{MASK}@git.example.com/acme/flows.git",
        "access_token": MASK,
    }
    with get_client(sync_client=True) as client:
        for read in (
            created,
            client.read_deployment(created.id),
            client.read_deployment_by_name("hello/inline"),
            client.read_deployments()[0],
        ):
            assert read.pull_steps == [{f"{STEPS}.git_clone": shown}]
        assert read_deployment_to_run(client, created.id).pull_steps == steps  # the worker's
        # A masked copy sent back (read, edited elsewhere, registered again) keeps the real one.
        resent = client.read_deployment(created.id).pull_steps
        _deploy("inline", pull_steps=resent)
        assert client.read_deployment(created.id, include_secrets=True).pull_steps == steps
    with serve(create_app(Settings(api_key=None))) as base:
        for answer in (
            httpx.get(f"{base}/api/deployments/{created.id}"),
            httpx.get(f"{base}/api/deployments/name/hello/inline"),
            httpx.post(f"{base}/api/deployments/filter", json={}),
        ):
            assert answer.status_code == 200 and "ghp_tok3n" not in answer.text
            assert "glpat-xyz" not in answer.text and MASK in answer.text
    cli = subprocess.run(
        [sys.executable, "-m", "prefect_lite", "deployment", "inspect", "hello/inline"],
        env=python_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0 and "git.example.com" in cli.stdout
    assert "ghp_tok3n" not in cli.stdout + cli.stderr and "glpat-xyz" not in cli.stdout


def test_a_runner_refuses_custom_steps_written_over_its_deployment(tmp_path: Path) -> None:
    """Anyone who may deploy can overwrite a served deployment: its runs obey the policy."""
    marker = tmp_path / "pwned"
    runner = Runner()
    served = RunnerDeployment.from_entrypoint(
        "tests/fixtures/worker_flows.py:hello", "served", base_dir=REPO_ROOT
    )
    deployment_id = runner.add_deployment(served)
    with get_client(sync_client=True) as client:
        client.create_deployment(
            "hello", "served", entrypoint=served.entrypoint, path=served.path,
            pull_steps=[{"os.system": {"command": f"touch {marker}"}}],
        )  # fmt: skip
        run = client.create_flow_run(
            "hello", deployment_id=deployment_id, state=Scheduled(scheduled_time=_time.now())
        )

    def ended() -> Any:
        runner.run_once()
        found = read(run.id)
        return found if found.state.is_final() and not runner.running else None

    done = wait_for(ended, timeout=30, interval=0.05, message="the served run did not end")
    assert done.state_name == "Failed" and "not a built-in step" in _message(done)
    assert not marker.exists()


def test_worker_settings_read_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_LITE_WORKER_ALLOWED_STEPS", "git_clone, set_working_directory")
    monkeypatch.setenv("PREFECT_LITE_WORKER_ALLOW_CUSTOM_STEPS", "true")
    reload_settings()
    policy = ExecutionPolicy.from_settings(allowed_git_urls=("https://h/",))
    assert policy.allowed_steps == ("git_clone", "set_working_directory")
    assert policy.allow_custom_steps and policy.allowed_git_urls == ("https://h/",)


def test_unmasked_deployment_reads_need_the_worker_or_admin_role(base: str) -> None:
    url = "https://deployer:ghp_r0le@git.example.com/acme/flows.git"
    steps = [{f"{STEPS}.git_clone": {"repository": url}}]
    with _http(base, "admin") as admin:
        made = admin.post("/api/deployments/", json={
            "flow_name": "sec", "name": f"d-{uuid.uuid4().hex[:8]}", "entrypoint": "x.py:f",
            "pull_steps": steps,
        })  # fmt: skip
    assert made.status_code == 201 and "ghp_r0le" not in made.text
    path, shown = f"/api/deployments/{made.json()['id']}", {}
    for role in ROLES:
        with _http(base, role) as http:
            assert "ghp_r0le" not in http.get(path).text
            full = http.get(path, params={"include_secrets": "true"})
            listed = http.post("/api/deployments/filter", json={"include_secrets": True})
        shown[role] = (full.status_code, listed.status_code)
        if role in ("worker", "admin"):
            assert full.json()["pull_steps"] == steps
        else:
            assert "ghp_r0le" not in full.text + listed.text
    assert shown == {"read": (403, 403), "run": (403, 403), "worker": (200, 200),
                     "admin": (200, 200)}  # fmt: skip


# ---- stored data and output ----

API_KEY = "security-tests-admin-key-0123456789"
OTHER_KEY = "a-key-some-other-machine-has-0123456789"


class _Payload:
    """Unpickling this creates ``marker``: proof that the payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _unsigned(marker: Path) -> str:
    """What an attacker posts: a plain pickle, base64 as the store holds pickles."""
    return base64.b64encode(pickle.dumps(_Payload(marker))).decode()


def _forged(marker: Path) -> str:
    """The right key id (anyone can read it off a stored result), a made-up signature."""
    key_id = signing_key().key_id.decode()
    return f"pls1.{key_id}.{'0' * 64}.{_unsigned(marker)}"


def _other_key(marker: Path) -> str:
    """Validly signed, but with a key this machine does not have."""
    with temporary_settings(result_signing_key=OTHER_KEY):
        return PickleSerializer().dumps(_Payload(marker)).decode()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """A live API server on the test's Redis; subprocesses inherit its URL and key."""
    with serve(create_app(Settings(api_key=API_KEY))) as base:
        monkeypatch.setenv("PREFECT_LITE_API_URL", base + "/api")
        monkeypatch.setenv("PREFECT_LITE_API_KEY", API_KEY)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=base, headers=headers) as client:
            yield client


def _post_result(api: httpx.Client, key: str, blob: str) -> None:
    response = api.post("/api/results/", json={"key": key, "blob": blob})
    assert response.status_code == 204, response.text


def _completed_run_pointing_at(api: httpx.Client, key: str) -> str:
    ref = {"result_ref": 1, "storage": "redis", "key": key, "serializer": "pickle"}
    created = api.post("/api/flow_runs/", json={"flow_name": "victim"})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    state = {"type": "COMPLETED", "data": ref}
    answer = api.post(f"/api/flow_runs/{run_id}/set_state", json={"state": state, "force": True})
    assert answer.status_code in (200, 201), answer.text
    return str(run_id)


READ_RESULT = """
    import uuid
    from prefect_lite.client import get_client
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID({run_id!r}))
    try:
        print("VALUE", run.state.result())
    except Exception as exc:
        print("ERROR", type(exc).__name__, exc)
"""


@pytest.mark.parametrize("make_blob", [_unsigned, _forged, _other_key])
def test_a_pickle_posted_to_the_results_api_is_never_unpickled_by_a_reader(
    api: httpx.Client, tmp_path: Path, make_blob: Any
) -> None:
    genuine = PickleSerializer().dumps({"answer": 42}).decode()  # written with the key
    _post_result(api, "genuine", genuine)
    marker = tmp_path / "payload-ran"
    _post_result(api, "poisoned", make_blob(marker))

    good = run_python(READ_RESULT.format(run_id=_completed_run_pointing_at(api, "genuine")))
    bad = run_python(READ_RESULT.format(run_id=_completed_run_pointing_at(api, "poisoned")))

    assert good.stdout.strip() == "VALUE {'answer': 42}", good.stderr
    assert bad.stdout.startswith("ERROR ResultSignatureError result 'poisoned'"), bad.stderr
    assert "not unpickled" in bad.stdout
    if make_blob is not _forged:  # a key mix-up: the message says which setting to align
        assert "PREFECT_LITE_RESULT_SIGNING_KEY" in bad.stdout
    assert not marker.exists()


def _poison_cache(api: httpx.Client, marker: Path) -> None:
    from tests.fixtures.security_flows import CACHE_KEY, cached_step

    record = CacheRecord(
        key=f"{cached_step.task_key}:{CACHE_KEY}",
        result=ResultRef(storage="redis", key="cached-result"),
        inline=_unsigned(marker),
    )
    response = api.post("/api/cache_records/", json={"records": [record.model_dump(mode="json")]})
    assert response.status_code == 204, response.text


def test_a_poisoned_cache_record_fails_a_local_flow_without_running_the_payload(
    api: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    _poison_cache(api, marker)

    ran = run_python(
        """
        from tests.fixtures.security_flows import uses_cache
        state = uses_cache(return_state=True)
        print("STATE", state.name, state.message)
        """
    )

    assert "STATE Failed" in ran.stdout, ran.stdout + ran.stderr
    assert "ResultSignatureError" in ran.stdout and "not unpickled" in ran.stdout
    assert not marker.exists()


def test_a_poisoned_cache_record_fails_a_worker_flow_without_running_the_payload(
    api: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    _poison_cache(api, marker)
    with get_client(sync_client=True) as client:
        client.create_work_pool("pool")
        deployment = client.create_deployment(
            "uses-cache",
            "poisoned",
            entrypoint="tests.fixtures.security_flows:uses_cache",
            path=str(REPO_ROOT),
            work_pool_name="pool",
        )
        with worker_process(tmp_path):
            run = client.create_flow_run_from_deployment(deployment.id)
            final = wait_final(run.id)

    assert final.state is not None and final.state.name == "Failed"
    assert "ResultSignatureError" in (final.state.message or "")
    assert not marker.exists()


def test_signed_results_cross_processes_and_json_needs_no_key(tmp_path: Path) -> None:
    """Another machine (another home, so another generated key) reads JSON results, and
    gets the clear error for pickles until the key setting is the same on both."""
    write = """
        from prefect_lite import flow
        @flow(persist_result=True, result_storage="redis", result_serializer="{kind}")
        def f():
            return {{"n": 1}}
        print(f(return_state=True).state_details.flow_run_id)
    """
    runs = {}
    for kind in ("json", "pickle"):
        made = run_python(write.format(kind=kind))
        assert made.returncode == 0, made.stderr
        runs[kind] = made.stdout.strip().splitlines()[-1]
    elsewhere = {"PREFECT_LITE_HOME": str(tmp_path / "other-machine")}

    def read(kind: str, **env: str) -> str:
        done = run_python(READ_RESULT.format(run_id=runs[kind]), env={**elsewhere, **env})
        return done.stdout.strip() + done.stderr

    assert read("json") == "VALUE {'n': 1}"
    assert read("pickle").startswith("ERROR ResultSignatureError")
    assert "signed with another result-signing key" in read("pickle")
    assert "PREFECT_LITE_RESULT_SIGNING_KEY" in read("pickle")
    # With the key set alike everywhere, pickles cross machines.
    shared = {"PREFECT_LITE_RESULT_SIGNING_KEY": OTHER_KEY}
    made = run_python(write.format(kind="pickle"), env=shared)
    runs["pickle"] = made.stdout.strip().splitlines()[-1]
    assert read("pickle", **shared) == "VALUE {'n': 1}"


def test_the_generated_key_is_private_and_made_once_by_racing_processes(home: Path) -> None:
    code = "from prefect_lite.signing import signing_key; print(signing_key().key_id.decode())"
    racers = [spawn_python(code) for _ in range(4)]
    outputs = [racer.communicate(timeout=60) for racer in racers]

    assert all(r.returncode == 0 for r in racers), [err for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1
    key_file = home / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []
    # A key file others can read is made private again before use.
    key_file.chmod(0o644)
    assert run_python(code).stdout.strip() == outputs[0][0].strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``embedded(home)``: this process (and its children) on the embedded Redis of
    ``home``; every server is stopped afterwards and none may be left running."""
    used: list[EmbeddedRedis] = []

    def use(home: Path) -> EmbeddedRedis:
        monkeypatch.delenv("PREFECT_LITE_REDIS_URL", raising=False)
        monkeypatch.setenv("PREFECT_LITE_HOME", str(home))
        reload_settings()
        reset_connections()
        used.append(EmbeddedRedis(home))
        return used[-1]

    yield use
    reset_connections()
    stopped = [server.stop() for server in used]
    for server in used:
        private = runtime_dir(server.home)
        if private.is_dir():
            shutil.rmtree(private)
        else:
            private.unlink(missing_ok=True)
    leftovers = kill_redis_servers_under(tmp_path)
    assert all(stopped) and not leftovers, f"redis-server left running: {leftovers}"


def _tcp_listeners(pid: int) -> list[str]:
    """``addr:port`` of every TCP socket in LISTEN state that process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


def test_an_embedded_redis_under_a_long_home_does_not_listen_on_tcp(
    embedded: Any, tmp_path: Path
) -> None:
    long_home = tmp_path / ("h" * 60) / ("o" * 60)
    server = embedded(long_home)

    url = server.ensure_running()
    pid = server.pid()

    assert pid is not None and url.startswith("unix://")
    assert _tcp_listeners(pid) == []
    assert get_redis().set("k", "v")
    # The check above can fail: a server pushed to TCP (its socket directory squatted)
    # is seen listening, and then only with a password.
    server.stop()
    reset_connections()
    private = runtime_dir(long_home)
    shutil.rmtree(private)
    private.write_text("squatted")
    url = server.ensure_running()
    pid = server.pid()
    assert pid is not None and len(_tcp_listeners(pid)) == 1
    port = urlsplit(url).port
    anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    with anonymous, pytest.raises(redis.AuthenticationError):
        anonymous.config_set("dir", str(tmp_path))


def test_embedded_redis_files_are_private_even_when_made_open_before(
    embedded: Any, tmp_path: Path
) -> None:
    home = tmp_path / "home-open"
    data = home / "redis"
    data.mkdir(parents=True)
    data.chmod(0o755)
    for name in ("appendonly.aof", "dump.rdb", "redis.log", "url"):
        (data / name).write_bytes(b"")
        (data / name).chmod(0o644)
    server = embedded(home)

    server.ensure_running()
    r = get_redis()
    r.set("secret-block", "value")
    r.bgrewriteaof()  # the server writes a fresh AOF: born private too
    wait_for(lambda: b"secret-block" in (data / "appendonly.aof").read_bytes())

    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir() if p.is_file()}
    assert modes and set(modes.values()) == {0o600}, modes
    assert {"appendonly.aof", "dump.rdb", "redis.log", "url", "redis.conf"} <= set(modes)


# Markup that crashed rich, a colour and an OSC title sequence, a bell, a carriage return,
# a C1 CSI, a bidi override.
HOSTILE = "[/bold]x\x1b[31mred\x1b]0;pwned\x07\rover\x9b2J\u202eevil"
FORGED_LOG = "ok\n12:00:00.000 | CRITICAL | prefect_lite - forged line\x1b[2K"
HOSTILE_FLOW = HOSTILE.replace("/", "")  # flow and deployment names refuse '/'
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


@pytest.fixture
def hostile_store() -> dict[str, str]:
    """A store full of hostile names and messages, as anyone with API access can make it;
    the ids the CLI needs to reach them."""
    from prefect_lite.schemas import BlockDocument, Log
    from prefect_lite.states import Failed

    with get_client(sync_client=True) as client:
        client.create_work_pool("pool", description=HOSTILE)
        deployment = client.create_deployment(
            HOSTILE_FLOW, HOSTILE_FLOW, entrypoint="flows.py:f", path="/tmp", work_pool_name="pool",
            tags=[HOSTILE], parameters={"p": HOSTILE}, description=HOSTILE,
        )  # fmt: skip
        run = client.create_flow_run(
            HOSTILE, name=HOSTILE, tags=[HOSTILE], parameters={"p": HOSTILE}
        )
        client.set_flow_run_state(run.id, Failed(message=HOSTILE), force=True)
        client.create_logs(
            [Log(name=HOSTILE, level=20, message=FORGED_LOG + HOSTILE, flow_run_id=run.id)]
        )
        client.create_variable("hostile", HOSTILE, tags=[HOSTILE])
        client.create_block_document(
            BlockDocument(name="hostile", block_type_slug="json", data={"value": HOSTILE})
        )
    return {"run": str(run.id), "deployment": str(deployment.id)}


CLI_READS = [
    ("flow-run", "ls"),
    ("flow-run", "inspect", "{run}"),
    ("flow-run", "logs", "{run}"),
    ("flow-run", "logs", "{run}", "--json"),
    ("flow-run", "ls", "--json"),
    ("deployment", "ls"),
    ("deployment", "inspect", "{deployment}"),
    ("deployment", "pause", "{deployment}"),
    ("deployment", "run", "{deployment}", "--flow-run-name", HOSTILE),
    ("work-pool", "ls"),
    ("work-pool", "inspect", "pool"),
    ("variable", "ls"),
    ("variable", "get", "hostile"),
    ("block", "ls"),
    ("block", "inspect", "json/hostile"),
    ("flow-run", "inspect", HOSTILE),  # an error that echoes its input
]


@pytest.mark.parametrize("argv", CLI_READS, ids=lambda argv: " ".join(argv[:2]) + str(len(argv)))
def test_the_cli_shows_hostile_stored_text_escaped(
    hostile_store: dict[str, str],
    argv: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_lite.cli import cli
    from prefect_lite.cli._errors import run_cli

    monkeypatch.setenv("COLUMNS", "500")  # rich folds nothing, so escapes stay whole
    args = [arg.format(**hostile_store) for arg in argv]

    code = run_cli(cli, args)

    out, err = capsys.readouterr()
    shown = out + err
    assert code == (1 if args[-1] == HOSTILE and args[0] == "flow-run" else 0), shown
    for raw in RAW:
        assert raw not in shown, f"{raw!r} reached the terminal: {shown!r}"
    assert "Traceback" not in shown
    if "--json" in args or tuple(args) in (("work-pool", "inspect", "pool"), ("block", "ls")):
        return  # nothing hostile in what these show (names there are validated)
    assert "\\x1b" in shown  # made visible, not dropped
    if args[:2] != ["flow-run", "inspect"] and args[0] != "block":  # repr() there
        assert "[/bold]x" in shown or "[bold]x" in shown  # as text, not markup
    if args[:2] == ["flow-run", "logs"]:
        assert "\n    | 12:00:00.000 | CRITICAL | prefect_lite - forged line\\x1b[2K" in out


@pytest.mark.parametrize(
    "store_url",
    [
        "redis://:pw-redis-1@127.0.0.1:1/0",
        "redis://alice:pw-redis-1@127.0.0.1:1/0",
        "rediss://alice:pw-redis-1@redis.example:6380/0",
        "unix:///tmp/redis.sock?db=0&password=pw-redis-1",
    ],
)
def test_config_view_masks_url_passwords_and_never_prints_keys(store_url: str) -> None:
    secrets_ = {
        "PREFECT_LITE_REDIS_URL": store_url,
        "PREFECT_LITE_API_URL": "https://bob:pw-api-2@api.example/api?token=tok-3",
        "PREFECT_LITE_API_KEY": "api-key-secret-4",
        "PREFECT_LITE_RESULT_SIGNING_KEY": "signing-key-secret-5",
    }
    for args in (["config", "view"], ["config", "view", "--json"]):
        done = run_python(
            f"from prefect_lite.cli import main; main({args!r})", env=secrets_, timeout=60
        )
        text = done.stdout + done.stderr
        assert done.returncode == 0, text
        for secret in ("pw-redis-1", "pw-api-2", "tok-3", "api-key-secret-4"):
            assert secret not in text
        assert "signing-key-secret-5" not in text
        assert "***" in text and "api.example" in text


def test_a_worker_console_shows_hostile_parameters_escaped(tmp_path: Path) -> None:
    with get_client(sync_client=True) as client:
        client.create_work_pool("pool")
        deployment = client.create_deployment(
            "echo",
            "hostile",
            entrypoint="tests.fixtures.security_flows:echo",
            path=str(REPO_ROOT),
            work_pool_name="pool",
        )
        with worker_process(tmp_path) as worker:
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters={"text": HOSTILE}
            )
            final = wait_final(run.id)
            output = wait_for(lambda: "got " in worker.output() and worker.output())

    assert final.state is not None and final.state.name == "Completed"
    for raw in RAW:
        assert raw not in output, f"{raw!r} reached the worker's console"
    assert "got [/bold]x\\x1b[31mred\\x1b]0;pwned\\x07\\rover\\x9b2J\\u202eevil" in output


def test_a_malformed_pull_step_is_a_clear_422(base: str) -> None:
    for steps in ([{}], [{"a": 1}], [{"a": {}, "b": {}}]):
        with _http(base, "admin") as admin:
            answer = admin.post("/api/deployments/", json={
                "flow_name": "sec", "name": "bad-steps", "entrypoint": "x.py:f",
                "pull_steps": steps,
            })  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert "pull step 1 must map one function name to its arguments" in answer.text
