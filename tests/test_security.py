"""Regression tests for attacks on a running system: one test per attack, each reproducing
it against real components (a real server on loopback, real subprocesses, real Redis) and
asserting that it is now refused."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from prefect_lite import flow, get_run_logger, task
from prefect_lite.api.registry import all_operations
from prefect_lite.api.roles import ROLES, allows
from prefect_lite.blocks.system import Secret
from prefect_lite.client import get_client
from prefect_lite.deployments import run_deployment
from prefect_lite.exceptions import AuthenticationError, ConfigurationError, PermissionDenied
from prefect_lite.server import create_app
from prefect_lite.server.auth import COOKIE_NAME, AuthMiddleware, KeyRing, parse_keys
from prefect_lite.server.hosts import host_name, trusted_hosts
from prefect_lite.server.runner import AUTH_OFF, check_exposure, is_loopback
from prefect_lite.settings import Settings, temporary_settings
from prefect_lite.states import StateType
from tests._live_server import serve
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
