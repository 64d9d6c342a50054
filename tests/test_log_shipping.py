"""Run logs reach the store: in order, in batches, on flush, at exit, and across outages."""

from __future__ import annotations

import contextvars
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.context import FlowRunContext, TaskRunContext
from prefect_lite.logging import flush_logs, get_run_logger, shipper
from prefect_lite.schemas import Log
from prefect_lite.settings import temporary_settings
from tests._run_contexts import flow_context, task_context
from tests.helpers import run_python, wait_for


@pytest.fixture(autouse=True)
def _settle_logs() -> Iterator[None]:
    yield
    assert flush_logs(timeout=10)


def read_logs(flow_run_id: uuid.UUID) -> list[Log]:
    with get_client(sync_client=True) as client:
        return list(client.read_logs(flow_run_id, limit=10_000))


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_logs_are_stored_in_order_across_batches() -> None:
    count = shipper.BATCH_SIZE * 2 + 37
    with flow_context() as ctx:
        logger = get_run_logger()
        for i in range(count):
            logger.info("line %d", i)
    assert flush_logs(timeout=10)
    logs = read_logs(ctx.flow_run.id)
    assert [log.message for log in logs] == [f"line {i}" for i in range(count)]
    assert {log.flow_run_id for log in logs} == {ctx.flow_run.id}
    assert [log.timestamp for log in logs] == sorted(log.timestamp for log in logs)


def test_stored_records_keep_level_name_task_and_traceback() -> None:
    with flow_context() as ctx:
        get_run_logger().debug("below the INFO level: not stored")
        with task_context() as task_ctx:
            try:
                raise ValueError("boom")
            except ValueError:
                get_run_logger().exception("it failed")
    assert flush_logs(timeout=10)
    [log] = read_logs(ctx.flow_run.id)
    assert (log.name, log.level) == ("prefect_lite.task_runs", logging.ERROR)
    assert log.task_run_id == task_ctx.task_run.id
    assert log.message.startswith("it failed\nTraceback (most recent call last):")
    assert log.message.endswith("ValueError: boom")


def test_extra_values_are_stored_json_or_repr() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    with flow_context() as ctx:
        get_run_logger(source="seed").info(
            "Configuration",
            extra={"batch_size": 1000, "env": "production", "ids": [uuid.UUID(int=1)]},
        )
        get_run_logger().info("odd", extra={"thing": Opaque()})
    assert flush_logs(timeout=10)
    first, second = read_logs(ctx.flow_run.id)
    assert first.extra == {
        "batch_size": 1000,
        "env": "production",
        "ids": [str(uuid.UUID(int=1))],
        "source": "seed",
    }
    assert second.extra == {"thing": "<Opaque>"}


def test_task_runner_threads_log_under_their_own_runs() -> None:
    with flow_context() as ctx:
        runs = {}

        def work(i: int) -> None:
            with task_context(name=f"work-{i}") as task_ctx:
                runs[f"task {i}"] = task_ctx.task_run.id
                for j in range(20):
                    get_run_logger().info("task %d line %d", i, j)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(8)]
            for future in futures:
                future.result()
    assert flush_logs(timeout=10)
    logs = read_logs(ctx.flow_run.id)
    assert len(logs) == 8 * 20
    for i in range(8):
        mine = [log for log in logs if log.message.startswith(f"task {i} ")]
        assert [log.message for log in mine] == [f"task {i} line {j}" for j in range(20)]
        assert {log.task_run_id for log in mine} == {runs[f"task {i}"]}


def test_plain_loggers_inside_a_run_are_attributed_to_it() -> None:
    with flow_context() as ctx:
        logging.getLogger("prefect_lite.flow_runs").info("no adapter, still this run")
    assert flush_logs(timeout=10)
    assert [log.message for log in read_logs(ctx.flow_run.id)] == ["no adapter, still this run"]


def test_flush_with_nothing_pending_returns_at_once() -> None:
    assert flush_logs(timeout=0)


def test_nothing_is_lost_at_normal_process_exit() -> None:
    run_id = uuid.uuid4()
    result = run_python(
        f"""
        import uuid
        from prefect_lite.context import FlowRunContext
        from prefect_lite.logging import get_run_logger
        from prefect_lite.schemas import FlowRun

        run = FlowRun(id=uuid.UUID("{run_id}"), name="exit-run", flow_id=uuid.uuid4())
        with FlowRunContext(flow_run=run):
            logger = get_run_logger()
            for i in range(1000):
                logger.info("line %d", i)
        """
    )
    assert result.returncode == 0, result.stderr
    assert [log.message for log in read_logs(run_id)] == [f"line {i}" for i in range(1000)]
    assert "prefect_lite:" not in result.stderr  # no warnings


def test_unreachable_store_warns_once_and_reports_what_was_lost() -> None:
    result = run_python(
        """
        import uuid
        from prefect_lite.context import FlowRunContext
        from prefect_lite.logging import get_run_logger, shipper
        from prefect_lite.schemas import FlowRun

        from tests.helpers import wait_for

        shipper.EXIT_FLUSH_TIMEOUT = 0.5
        run = FlowRun(name="offline-run", flow_id=uuid.uuid4())
        with FlowRunContext(flow_run=run):
            for i in range(10):
                get_run_logger().info("line %d", i)
        wait_for(lambda: shipper.get_shipper().failed_attempts >= 2, timeout=30)
        """,
        env={"PREFECT_LITE_REDIS_URL": closed_port_url()},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("cannot write run logs to the store, will retry") == 1
    assert "10 run log records could not be written to the store within 0.5 s" in result.stderr


def test_a_full_queue_drops_new_records_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shipper, "MAX_PENDING", 20)
    with flow_context() as ctx:
        logger = get_run_logger()
        with temporary_settings(redis_url=closed_port_url()):
            logger.info("line 0")
            wait_for(
                lambda: "cannot write run logs" in capsys.readouterr().err,
                message="no warning about the unreachable store",
            )
            for i in range(1, 30):
                logger.info("line %d", i)
            assert "dropping new ones" in capsys.readouterr().err
        assert flush_logs(timeout=15)  # the store is back
    assert [log.message for log in read_logs(ctx.flow_run.id)] == [f"line {i}" for i in range(20)]
    assert "10 run log records were dropped while the store was behind" in capsys.readouterr().err


def test_records_that_do_not_fit_the_store_are_skipped_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with flow_context() as ctx:
        logger = get_run_logger()
        logger.info("good one")
        logger.info("bad run id", extra={"flow_run_id": "not-a-uuid"})
        logger.info("good two")
    assert flush_logs(timeout=10)
    assert [log.message for log in read_logs(ctx.flow_run.id)] == ["good one", "good two"]
    assert "skipped a run log record that does not fit the store" in capsys.readouterr().err


def test_flush_waits_for_records_emitted_by_other_threads() -> None:
    with flow_context() as ctx:
        logger = get_run_logger()
        threads = [
            threading.Thread(target=lambda n=n: [logger.info("t%d %d", n, i) for i in range(100)])
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert flush_logs(timeout=10)
    assert len(read_logs(ctx.flow_run.id)) == 400


def test_tasks_submitted_to_the_task_runner_log_under_their_runs() -> None:
    @task
    def work(i: int) -> uuid.UUID:
        for j in range(10):
            get_run_logger().info("task %d line %d", i, j)
        ctx = TaskRunContext.get()
        assert ctx is not None
        return ctx.task_run.id

    @flow
    def fan_out() -> tuple[uuid.UUID, dict[int, uuid.UUID]]:
        futures = {i: work.submit(i) for i in range(6)}
        ctx = FlowRunContext.get()
        assert ctx is not None
        return ctx.flow_run.id, {i: future.result() for i, future in futures.items()}

    flow_run_id, task_run_ids = fan_out()
    assert flush_logs(timeout=10)
    logs = read_logs(flow_run_id)
    for i, task_run_id in task_run_ids.items():
        mine = [log for log in logs if log.message.startswith(f"task {i} line")]
        assert [log.message for log in mine] == [f"task {i} line {j}" for j in range(10)]
        assert {log.task_run_id for log in mine} == {task_run_id}
