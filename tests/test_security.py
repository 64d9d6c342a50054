"""Regression tests for attacks on a running system: one test per attack, each reproducing
it against real components (a real server on loopback, real subprocesses, real Redis) and
asserting that it is now refused."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from prefect_lite import _time, flow, get_run_logger, task
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
from prefect_lite.schemas import Deployment
from prefect_lite.server import create_app
from prefect_lite.server.auth import COOKIE_NAME, AuthMiddleware, KeyRing, parse_keys
from prefect_lite.server.hosts import host_name, trusted_hosts
from prefect_lite.server.runner import AUTH_OFF, check_exposure, is_loopback
from prefect_lite.settings import Settings, reload_settings, temporary_settings
from prefect_lite.states import Scheduled, StateType
from prefect_lite.storage.connection import get_redis
from prefect_lite.variables import Variable
from tests._live_server import serve
from tests._workers import read, trigger, wait_final, worker_process
from tests.helpers import REPO_ROOT, python_env, wait_for

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
    assert login.status_code == 404 and static.status_code == 404  # open, no such page yet
    assert signed_in.status_code == 404  # past auth: the page does not exist


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


def test_a_malformed_pull_step_is_a_clear_422(base: str) -> None:
    for steps in ([{}], [{"a": 1}], [{"a": {}, "b": {}}]):
        with _http(base, "admin") as admin:
            answer = admin.post("/api/deployments/", json={
                "flow_name": "sec", "name": "bad-steps", "entrypoint": "x.py:f",
                "pull_steps": steps,
            })  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert "pull step 1 must map one function name to its arguments" in answer.text
