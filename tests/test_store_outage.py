"""A run that has started rides out a Redis restart; one that outlasts the window fails
with a clear error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.exceptions import StoreUnavailable
from prefect_lite.settings import temporary_settings
from tests._redis import RestartableRedis, restartable_redis


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableRedis]:
    with restartable_redis(tmp_path, monkeypatch) as server:
        yield server


class _OnOutage(logging.Handler):
    """Calls ``action`` (in a thread) the first time the engine says the store is gone."""

    def __init__(self, action: object) -> None:
        super().__init__()
        self.action, self.seen = action, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "Store unreachable" in record.getMessage() and not self.seen.is_set():
            self.seen.set()
            threading.Thread(target=self.action).start()  # type: ignore[arg-type]


@pytest.fixture
def on_outage(server: RestartableRedis) -> Iterator[_OnOutage]:
    handler = _OnOutage(server.start)
    logger = logging.getLogger("prefect_lite.engine")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@task
def add_one(x: int) -> int:
    return x + 1


def test_a_running_flow_rides_out_a_redis_restart(
    server: RestartableRedis, on_outage: _OnOutage
) -> None:
    @flow
    def through_a_restart() -> int:
        first = add_one(1)
        server.stop()  # the engine notices, says so, and the handler starts it again
        return add_one(first)

    state = through_a_restart(return_state=True)
    assert on_outage.seen.is_set()
    assert state.is_completed() and state.result() == 3
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        assert run.state_name == "Completed"
        names = [s.name for s in client.read_flow_run_states(run.id)]
        assert names == ["Pending", "Running", "Completed"]
        tasks = client.read_task_runs(flow_run_id=run.id)
        assert sorted(t.state_name for t in tasks) == ["Completed", "Completed"]


def test_an_outage_longer_than_the_window_is_a_clear_error(server: RestartableRedis) -> None:
    @flow
    def store_goes_away() -> int:
        server.stop()
        return 1

    with (
        temporary_settings(store_outage_seconds=0.3),
        pytest.raises(StoreUnavailable, match="cannot reach Redis"),
    ):
        store_goes_away()
