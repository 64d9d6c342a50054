"""Regression tests for the attacks of the security review: each one reproduced for real
and shown refused (a clear error, a refused start, a file never written)."""

from __future__ import annotations

import base64
import contextlib
import os
import pickle
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from prefect_lite.client import get_client
from prefect_lite.schemas import CacheRecord
from prefect_lite.serializers import PickleSerializer
from prefect_lite.server import create_app
from prefect_lite.settings import Settings, reload_settings, temporary_settings
from prefect_lite.signing import KEY_FILE, signing_key
from prefect_lite.states import ResultRef
from prefect_lite.storage.connection import get_redis, reset_connections
from prefect_lite.storage.embedded import EmbeddedRedis
from prefect_lite.storage.private_files import runtime_dir
from tests._live_server import serve
from tests._workers import wait_final, worker_process
from tests.helpers import REPO_ROOT, kill_redis_servers_under, run_python, spawn_python, wait_for

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
