"""Store outages change no outcome; dead workers are settled fast; cut-off ones are fenced.

Real processes and signals: a worker and a scheduler as ``prefect-lite`` processes, Redis
restarted for real, a worker killed with SIGKILL, and a worker cut off from Redis by a
silent TCP proxy (no FIN, no RST: a pulled cable). Bounds are behaviour checks with a
margin; the distributions are measured by ``bench/chaos.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from prefect_lite.client import get_client
from tests._proxy import SilentProxy
from tests._redis import RestartableRedis, restartable_redis
from tests._workers import deploy, scheduler_process, trigger, wait_final, worker_process
from tests.helpers import pid_alive, wait_for

GONE_BOUND = 3.0  # kill -9 of a worker -> its runs settled
MARGIN = 4.0  # a loaded 2-core machine


@pytest.fixture
def client() -> Iterator[Any]:
    with get_client(sync_client=True) as c:
        yield c


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def bodies(marks: Path, run_id: Any) -> list[int]:
    """Pids of the processes that started the run's body."""
    return [int(p.name.rsplit("-", 1)[1]) for p in marks.glob(f"body-{run_id}-*")]


def test_a_redis_restart_of_ten_seconds_mid_run_crashes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marks: Path
) -> None:
    """The issue's reproduction: 4 two-second runs, Redis stopped 0.5 s in, back 10 s
    later on the same port and data: every run Completed, no crash hook ran."""
    server: RestartableRedis
    with restartable_redis(tmp_path, monkeypatch) as server:
        with get_client(sync_client=True) as client:
            client.create_work_pool("pool")
        dep = deploy("marked_sleeper")
        with scheduler_process(tmp_path), worker_process(tmp_path, "pool", "--limit", "4"):
            runs = [trigger(dep, seconds=2.0, marks=str(marks)) for _ in range(4)]
            for run in runs:
                wait_for(lambda run=run: bodies(marks, run.id), timeout=30, message="no start")
            time.sleep(0.5)  # the scenario: Redis goes away while the bodies run
            server.stop()
            time.sleep(10.0)  # an outage of 10 s, well inside the 30 s tolerance
            server.start()
            for run in runs:
                done = wait_final(run.id, timeout=60)
                with get_client(sync_client=True) as client:
                    names = [s.name for s in client.read_flow_run_states(run.id)]
                assert done.state_name == "Completed", names
                assert "Crashed" not in names and "AwaitingRetry" not in names, names
                assert len(bodies(marks, run.id)) == 1
        assert not (marks / "on_crashed").exists()


def test_a_killed_worker_s_runs_are_settled_at_once(
    client: Any, tmp_path: Path, marks: Path
) -> None:
    """Its connections close with it: the reaper does not wait for the lease to expire."""
    client.create_work_pool("pool")
    dep = deploy("marked_sleeper")
    with scheduler_process(tmp_path), worker_process(tmp_path, "pool", "--limit", "2") as w:
        runs = [trigger(dep, seconds=120, marks=str(marks)) for _ in range(2)]
        for run in runs:
            wait_for(lambda run=run: bodies(marks, run.id), timeout=30, message="no start")
        w.kill_group()
        for run in runs:
            done = wait_final(run.id, timeout=GONE_BOUND + MARGIN)
            assert done.state_name == "Crashed"
            assert "its process is gone" in (done.state.message or "")
        with worker_process(tmp_path, "pool"):  # hooks run on a live worker of the pool
            wait_for((marks / "on_crashed").exists, timeout=30, message="no on_crashed hook")


def test_a_cut_off_worker_stops_its_run_before_anyone_takes_it_over(
    client: Any, tmp_path: Path, marks: Path, redis_url: str
) -> None:
    """A worker behind a silent proxy cannot renew: it kills the run's process (fencing)
    and only afterwards does the reaper take the run over. Short settings make the
    window small: lease 2 s, tolerance 4 s -> fence at 6 s, take-over at 11 s."""
    short = {"PREFECT_LITE_LEASE_SECONDS": "2", "PREFECT_LITE_STORE_OUTAGE_SECONDS": "4"}
    client.create_work_pool("pool")
    dep = deploy("marked_sleeper")
    proxy = SilentProxy(urlsplit(redis_url).port or 6379)
    died: dict[str, float] = {}
    try:
        with (
            scheduler_process(tmp_path, **short),
            worker_process(tmp_path, "pool", PREFECT_LITE_REDIS_URL=proxy.url, **short) as w,
        ):
            run = trigger(dep, seconds=300, marks=str(marks))
            pid = wait_for(lambda: bodies(marks, run.id), timeout=30, message="no start")[0]

            def watch() -> None:
                while pid_alive(pid):
                    time.sleep(0.01)
                died["at"] = time.time()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            proxy.cut()
            done = wait_final(run.id, timeout=30)
            watcher.join(5)
            assert "at" in died, "the run's process still lives after the take-over"
            assert done.state_name == "Crashed"
            assert "fencing window" in (done.state.message or "")
            assert done.state.timestamp.timestamp() > died["at"]  # fenced first
            assert "stopping its process" in w.output()
            proxy.heal()
    finally:
        proxy.close()
