"""A hung Redis (SIGSTOP: connections open, nothing answered) fails calls fast.

Bounds are behaviour checks: the HTTP client's own timeout is the bound plus a margin
(5 s for an API route, 2 s for health), so a request that hangs fails the test.
"""

from __future__ import annotations

import contextlib
import re
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from prefect_lite.api.registry import all_operations
from prefect_lite.server import create_app
from prefect_lite.settings import Settings
from tests._live_server import serve
from tests._redis import RestartableRedis, restartable_redis
from tests._workers import deploy, scheduler_process, trigger, wait_final, worker_process
from tests.helpers import wait_for

ROUTE_BOUND = 5.0
HEALTH_BOUND = 2.0
MARGIN = 1.5  # a loaded 2-core machine


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableRedis]:
    with restartable_redis(tmp_path, monkeypatch) as server:
        yield server


@contextlib.contextmanager
def frozen(server: RestartableRedis) -> Iterator[None]:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)


def _fill(path: str) -> str:
    """A concrete path for a route template (ids are fresh uuids, names are made up)."""
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1 : end]
        value = str(uuid.uuid4()) if name.endswith("id") else "some-name"
        out = out[:start] + value + out[end + 1 :]
    return out


def test_every_read_route_answers_503_within_the_bound_while_redis_is_frozen(
    server: RestartableRedis,
) -> None:
    routes = [op for op in all_operations().values() if op.method == "GET"]
    paths = [op.path for op in routes]
    assert len(routes) >= 10
    with serve(create_app(Settings(api_key=None))) as base:
        api = f"{base}/api"
        assert httpx.get(f"{api}/health", timeout=HEALTH_BOUND).json() is True
        assert httpx.get(f"{api}/ready", timeout=HEALTH_BOUND).json() == {
            "status": "ok",
            "store": "ok",
        }
        with frozen(server):

            def reports_down() -> bool:
                health = httpx.get(f"{api}/health", timeout=HEALTH_BOUND + MARGIN)
                assert health.status_code == 200  # liveness: the server itself is fine
                return health.json() is False

            wait_for(reports_down, timeout=HEALTH_BOUND + MARGIN, interval=0.1)
            ready = httpx.get(f"{api}/ready", timeout=HEALTH_BOUND + MARGIN)
            assert ready.status_code == 503
            assert ready.json()["status"] == "degraded"
            assert "Timeout" in ready.json()["store"]

            def status(path: str) -> tuple[int, str]:
                answer = httpx.get(f"{api}{_fill(path)}", timeout=ROUTE_BOUND + MARGIN)
                return answer.status_code, answer.text

            with ThreadPoolExecutor(max_workers=8) as pool:  # each waits out one timeout
                statuses = dict(zip(paths, pool.map(status, paths), strict=True))
            for path, (code, text) in statuses.items():
                assert code in (503, 422), (path, text)
            codes = [code for code, _ in statuses.values()]
            assert codes.count(503) >= len(routes) - 2, statuses
            create = httpx.post(
                f"{api}/flow_runs/", json={"flow_name": "etl"}, timeout=ROUTE_BOUND + MARGIN
            )
            assert create.status_code == 503
            assert "cannot reach Redis" in create.json()["detail"]
        wait_for(lambda: httpx.get(f"{api}/health", timeout=5).json() is True, timeout=10)
        assert httpx.get(f"{api}/flow_runs/{uuid.uuid4()}", timeout=5).status_code == 404


def test_workers_and_schedulers_log_a_frozen_redis_once_and_carry_on(
    server: RestartableRedis, tmp_path: Path
) -> None:
    from prefect_lite.client import get_client

    with get_client(sync_client=True) as client:
        client.create_work_pool("pool")
    dep = deploy("hello")
    with scheduler_process(tmp_path) as scheduler, worker_process(tmp_path) as worker:
        assert wait_final(trigger(dep).id).state_name == "Completed"
        with frozen(server):
            for proc in (worker, scheduler):
                wait_for(
                    lambda proc=proc: "Redis unavailable" in proc.output(),
                    timeout=30,
                    message="nobody noticed the frozen Redis",
                )
            # Several more retries happen meanwhile: none of them is logged again.
            wait_for(lambda: worker.output().count("Redis unavailable") >= 2, timeout=15)
        assert wait_final(trigger(dep).id, timeout=30).state_name == "Completed"
        for proc in (worker, scheduler):
            wait_for(lambda proc=proc: "reachable again" in proc.output(), timeout=30)
            lines = [x for x in proc.output().splitlines() if "Redis unavailable" in x]
            sources = [
                re.findall(r"(heartbeat|worker|scheduler)[^:]*: Redis unavail", x) for x in lines
            ]
            assert len(sources) == len({tuple(s) for s in sources}), lines  # once per component
        assert worker.proc.poll() is None and scheduler.proc.poll() is None
