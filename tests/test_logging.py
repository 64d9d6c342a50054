"""Run loggers, console output, disable_run_logger, LogEavesdropper and log_prints.

Most tests enter run contexts by hand (tests/_run_contexts.py) so they do not depend on the
engine; the seed examples also run with real ``@flow``/``@task`` at the end. Shipping to
the store (batches, flush, exit, outages) is in tests/test_log_shipping.py.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.context import FlowRunContext
from prefect_lite.exceptions import MissingContextError
from prefect_lite.logging import (
    LogEavesdropper,
    disable_run_logger,
    flush_logs,
    get_logger,
    get_run_logger,
    log_prints_context,
    setup_logging,
)
from prefect_lite.settings import temporary_settings
from tests._run_contexts import flow_context, task_context

RUN_FIELDS = ("flow_run_id", "task_run_id", "flow_run_name", "task_run_name", "flow_name")


@pytest.fixture(autouse=True)
def _settle_logs() -> Iterator[None]:
    """No record of this test may reach the store during the next one."""
    yield
    assert flush_logs(timeout=10)


def stored_messages(flow_run_id: uuid.UUID) -> list[str]:
    assert flush_logs(timeout=10)
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(flow_run_id, limit=10_000)]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name, "<missing>") for name in (*RUN_FIELDS, "task_name")}


# -- run loggers


def test_flow_run_logger_records_carry_the_run() -> None:
    with (
        flow_context(name="happy-run", flow_name="etl") as ctx,
        LogEavesdropper("prefect_lite.flow_runs") as spy,
    ):
        get_run_logger().info("hello %s", "world")
    [record] = spy.get_logs()
    assert record.name == "prefect_lite.flow_runs"
    assert record.getMessage() == "hello world"
    assert fields(record) == {
        "flow_run_id": str(ctx.flow_run.id),
        "task_run_id": None,
        "flow_run_name": "happy-run",
        "task_run_name": None,
        "flow_name": "etl",
        "task_name": None,
    }


def test_task_run_logger_records_carry_task_and_flow() -> None:
    with (
        flow_context(name="happy-run", flow_name="etl") as flow_ctx,
        task_context(name="load-0", task_name="load") as task_ctx,
        LogEavesdropper("prefect_lite.task_runs") as spy,
    ):
        get_run_logger().warning("careful")
    [record] = spy.get_logs()
    assert record.name == "prefect_lite.task_runs"
    assert record.levelno == logging.WARNING
    assert fields(record) == {
        "flow_run_id": str(flow_ctx.flow_run.id),
        "task_run_id": str(task_ctx.task_run.id),
        "flow_run_name": "happy-run",
        "task_run_name": "load-0",
        "flow_name": "etl",
        "task_name": "load",
    }


def test_a_subflow_called_inside_a_task_logs_as_the_subflow() -> None:
    with (
        flow_context(name="parent"),
        task_context(),
        flow_context(name="child") as child,
        LogEavesdropper("prefect_lite") as spy,
    ):
        get_run_logger().info("in the subflow")
    [record] = spy.get_logs()
    assert record.name == "prefect_lite.flow_runs"
    assert record.flow_run_id == str(child.flow_run.id)  # type: ignore[attr-defined]


def test_outside_a_run_is_a_clear_error() -> None:
    with pytest.raises(MissingContextError, match="outside of a flow or task run"):
        get_run_logger()
    assert issubclass(MissingContextError, RuntimeError)  # Prefect users catch it as such


def test_a_context_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="FlowRunContext or TaskRunContext, not dict"):
        get_run_logger(context={})  # type: ignore[arg-type]


def test_an_explicit_context_wins_over_the_current_one() -> None:
    with flow_context(name="first") as first:
        pass
    with flow_context(name="second"), LogEavesdropper("prefect_lite") as spy:
        get_run_logger(first).info("positional context, as in Prefect")
        get_run_logger(context=first).info("keyword context")
    assert [r.flow_run_name for r in spy.get_logs()] == ["first", "first"]  # type: ignore[attr-defined]


def test_named_child_logger_and_keyword_extras() -> None:
    with flow_context() as ctx, LogEavesdropper("prefect_lite.flow_runs") as spy:
        logger = get_run_logger("extract", stage="bronze")
        logger.info("child")
    [record] = spy.get_logs()
    assert record.name == "prefect_lite.flow_runs.extract"
    assert record.stage == "bronze"  # type: ignore[attr-defined]
    assert stored_messages(ctx.flow_run.id) == ["child"]


def test_call_extras_are_merged_with_the_run_fields() -> None:
    with flow_context() as ctx, LogEavesdropper("prefect_lite.flow_runs") as spy:
        get_run_logger().info("Configuration", extra={"batch_size": 1000, "env": "production"})
    [record] = spy.get_logs()
    assert record.batch_size == 1000  # type: ignore[attr-defined]
    assert record.flow_run_id == str(ctx.flow_run.id)  # type: ignore[attr-defined]


def test_a_logger_handed_to_another_thread_keeps_its_run() -> None:
    with flow_context() as ctx:
        logger = get_run_logger()
    with LogEavesdropper("prefect_lite") as spy:
        thread = threading.Thread(target=logger.info, args=("from a plain thread",))
        thread.start()
        thread.join()
    [record] = spy.get_logs()
    assert record.flow_run_id == str(ctx.flow_run.id)  # type: ignore[attr-defined]


# -- console and get_logger


def test_console_lines_look_like_prefects(capsys: pytest.CaptureFixture[str]) -> None:
    with flow_context(name="happy-run"):
        get_run_logger().info("flow says hi")
        with task_context(name="load-0"):
            get_run_logger().error("task says hi")
    get_logger("jobs").warning("outside says hi")
    err = capsys.readouterr().err
    stamp = r"^\d\d:\d\d:\d\d\.\d{3} \| "
    assert re.search(stamp + r"INFO    \| Flow run 'happy-run' - flow says hi$", err, re.M)
    assert re.search(stamp + r"ERROR   \| Task run 'load-0' - task says hi$", err, re.M)
    assert re.search(stamp + r"WARNING \| prefect_lite.jobs - outside says hi$", err, re.M)


def test_get_logger_names() -> None:
    assert get_logger().name == "prefect_lite"
    assert get_logger("my.module").name == "prefect_lite.my.module"
    assert get_logger("prefect_lite.engine").name == "prefect_lite.engine"
    assert get_logger(__name__) is get_logger(__name__)


def test_level_comes_from_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        with temporary_settings(logging_level="WARNING"):
            setup_logging(force=True)
            get_logger("lvl").info("hidden")
            get_logger("lvl").warning("shown")
        with temporary_settings(logging_level="DEBUG"):
            setup_logging(force=True)
            get_logger("lvl").debug("debug shown")
    finally:
        setup_logging(force=True)
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "| WARNING | prefect_lite.lvl - shown" in err
    assert "| DEBUG   | prefect_lite.lvl - debug shown" in err


# -- disable_run_logger


def test_disable_run_logger_as_a_block(capsys: pytest.CaptureFixture[str]) -> None:
    with flow_context() as ctx, LogEavesdropper("prefect_lite") as spy:
        logger = get_run_logger()
        logger.info("before")
        with disable_run_logger():
            logger.info("quiet")
            get_run_logger().warning("quiet too")
            logging.getLogger("prefect_lite.flow_runs").error("quiet as well")
        logger.info("after")
    assert [r.getMessage() for r in spy.get_logs()] == ["before", "after"]
    assert stored_messages(ctx.flow_run.id) == ["before", "after"]
    assert "quiet" not in capsys.readouterr().err


def test_disable_run_logger_outside_a_run_gives_a_silent_logger() -> None:
    with disable_run_logger(), LogEavesdropper("prefect_lite") as spy:
        logger = get_run_logger()  # no MissingContextError: e.g. testing task.fn() directly
        logger.info("nobody hears this")
    assert spy.get_logs() == []
    with pytest.raises(MissingContextError):
        get_run_logger()


def quiet_task() -> str:
    """The seed's quiet task: ``disable_run_logger()`` as a plain statement."""
    disable_run_logger()
    get_run_logger().info("This task won't generate run logs")
    return "completed quietly"


def test_disable_run_logger_as_a_statement_quiets_the_rest_of_the_task() -> None:
    with flow_context() as ctx, LogEavesdropper("prefect_lite") as spy:
        with task_context():
            get_run_logger().info("task before")
            assert quiet_task() == "completed quietly"
            get_run_logger().info("task after, still quiet")
        get_run_logger().info("the flow logs again")
        with task_context(name="next-0"):
            get_run_logger().info("a later task logs again")
    expected = ["task before", "the flow logs again", "a later task logs again"]
    assert [r.getMessage() for r in spy.get_logs()] == expected
    assert stored_messages(ctx.flow_run.id) == expected


def test_disabling_in_one_thread_leaves_other_threads_alone() -> None:
    quiet_in, loud_done = threading.Event(), threading.Event()

    def quiet() -> None:
        with disable_run_logger():
            quiet_in.set()
            loud_done.wait(10)
            get_run_logger().info("quiet thread")

    def loud() -> None:
        quiet_in.wait(10)
        get_run_logger().info("loud thread")
        loud_done.set()

    with flow_context(), LogEavesdropper("prefect_lite") as spy:
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(fn,))
            for fn in (quiet, loud)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.getMessage() for r in spy.get_logs()] == ["loud thread"]


# -- LogEavesdropper


def test_eavesdropper_collects_a_logger_and_its_children() -> None:
    target = logging.getLogger("eavesdrop_target")
    target.setLevel(logging.INFO)
    try:
        with LogEavesdropper("eavesdrop_target") as spy:
            target.info("Hello, world!")
            logging.getLogger("eavesdrop_target.child_module").warning("Another one!")
            logging.getLogger("elsewhere").warning("not this one")
        target.info("after the block")
    finally:
        target.setLevel(logging.NOTSET)
    assert spy.text() == "[INFO]: Hello, world!\n[WARNING]: Another one!"
    assert [r.levelno for r in spy.get_logs()] == [logging.INFO, logging.WARNING]
    assert spy not in target.handlers


def test_eavesdropper_level_is_applied_for_the_block_only() -> None:
    target = logging.getLogger("eavesdrop_level")
    target.setLevel(logging.WARNING)
    try:
        with LogEavesdropper("eavesdrop_level", level=logging.DEBUG) as spy:
            target.debug("debug detail")
        with LogEavesdropper(target, level=logging.ERROR) as strict:
            target.warning("too low")
            target.error("kept")
        assert target.level == logging.WARNING
    finally:
        target.setLevel(logging.NOTSET)
    assert spy.text() == "[DEBUG]: debug detail"
    assert strict.text() == "[ERROR]: kept"


# -- log_prints


def test_prints_go_to_the_run_logger(capsys: pytest.CaptureFixture[str]) -> None:
    with flow_context() as ctx, log_prints_context(True), LogEavesdropper("prefect_lite") as spy:
        print("Processing", 3, "records", sep=" ")
        print("a", "b", sep="-", end="!\n")
        print("to stderr", file=sys.stderr)
    assert [(r.levelno, r.getMessage()) for r in spy.get_logs()] == [
        (logging.INFO, "Processing 3 records"),
        (logging.INFO, "a-b!"),
    ]
    assert spy.get_logs()[0].funcName == "test_prints_go_to_the_run_logger"
    out, err = capsys.readouterr()
    assert out == ""  # the text went to the logger (shown on stderr by the console handler)
    assert "Flow run 'happy-run' - Processing 3 records" in err
    assert "to stderr" in err
    assert stored_messages(ctx.flow_run.id) == ["Processing 3 records", "a-b!"]


def test_prints_are_left_alone_without_log_prints(capsys: pytest.CaptureFixture[str]) -> None:
    with log_prints_context(True):
        print("outside any run")
    with flow_context(), log_prints_context(False), LogEavesdropper("prefect_lite") as spy:
        print("log_prints off")
    with flow_context(), log_prints_context(True), task_context(), log_prints_context(False):
        print("a task that opted out")
    with flow_context(), log_prints_context(True), disable_run_logger():
        print("run logs disabled")
    assert spy.get_logs() == []
    assert capsys.readouterr().out.splitlines() == [
        "outside any run",
        "log_prints off",
        "a task that opted out",
        "run logs disabled",
    ]


def test_the_context_flag_decides_when_the_engine_did_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with log_prints_context(True):  # installs the hook
        pass
    with flow_context(log_prints=True), LogEavesdropper("prefect_lite") as spy:
        print("flagged on the context")
    assert [r.getMessage() for r in spy.get_logs()] == ["flagged on the context"]
    assert capsys.readouterr().out == ""


def test_log_prints_is_per_thread(capsys: pytest.CaptureFixture[str]) -> None:
    barrier = threading.Barrier(2)

    def printer(enabled: bool, label: str) -> None:
        with task_context(name=label), log_prints_context(enabled):
            barrier.wait(10)
            for i in range(50):
                print(f"{label} {i}")

    with flow_context(), LogEavesdropper("prefect_lite") as spy:
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(printer, on, label))
            for on, label in ((True, "logged"), (False, "printed"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.getMessage() for r in spy.get_logs()] == [f"logged {i}" for i in range(50)]
    assert capsys.readouterr().out.splitlines() == [f"printed {i}" for i in range(50)]


# -- seed 001's logging example, on hand-made contexts


def complex_operation(data: list[int]) -> list[int]:
    return [x * 2 for x in data]


def process_data(data: list[int]) -> list[int]:
    logger = get_run_logger()
    logger.info(f"Processing {len(data)} records")
    try:
        result = complex_operation(data)
        logger.info(f"Successfully processed {len(result)} records")
        return result
    except Exception as e:
        logger.error(f"Processing failed: {e}")
        raise


def data_pipeline() -> list[int]:
    logger = get_run_logger()
    logger.info("Starting data pipeline")
    logger.info("Configuration", extra={"batch_size": 1000, "env": "production"})
    data = list(range(5))
    with task_context(name="process_data-0", task_name="process_data"):
        result = process_data(data)
    logger.info(f"Pipeline completed successfully with {len(result)} records")
    return result


SEED_MESSAGES = [
    "Starting data pipeline",
    "Configuration",
    "Processing 5 records",
    "Successfully processed 5 records",
    "Pipeline completed successfully with 5 records",
]


def test_seed_logging_example_on_contexts() -> None:
    module_logger = get_logger(__name__)
    assert module_logger.name == "prefect_lite.tests.test_logging"
    with flow_context(flow_name="data-pipeline") as ctx:
        assert data_pipeline() == [0, 2, 4, 6, 8]
        with task_context(name="quiet_task-0", task_name="quiet_task"):
            assert quiet_task() == "completed quietly"
    assert flush_logs(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(ctx.flow_run.id)
    assert [log.message for log in logs] == SEED_MESSAGES
    assert logs[1].extra == {"batch_size": 1000, "env": "production"}
    assert [log.task_run_id is not None for log in logs] == [False, False, True, True, False]


# -- the same with the engine


def test_seed_logging_example_with_flows_and_tasks() -> None:
    process = task(process_data)
    quiet = task(quiet_task)

    @flow
    def pipeline() -> tuple[list[int], str, uuid.UUID]:
        logger = get_run_logger()
        logger.info("Starting data pipeline")
        logger.info("Configuration", extra={"batch_size": 1000, "env": "production"})
        result = process(list(range(5)))
        logger.info(f"Pipeline completed successfully with {len(result)} records")
        ctx = FlowRunContext.get()
        assert ctx is not None
        return result, quiet(), ctx.flow_run.id

    result, quiet_result, run_id = pipeline()
    assert result == [0, 2, 4, 6, 8] and quiet_result == "completed quietly"
    messages = stored_messages(run_id)
    assert [m for m in messages if m in SEED_MESSAGES] == SEED_MESSAGES
    assert not any("won't generate run logs" in m for m in messages)


def test_log_prints_with_flows_and_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    @task
    def chatty() -> None:
        print("from the task")

    @task(log_prints=False)
    def silent() -> None:
        print("task opted out")

    @flow(log_prints=True)
    def printing() -> uuid.UUID:
        print("from the flow")
        chatty()
        silent()
        ctx = FlowRunContext.get()
        assert ctx is not None
        return ctx.flow_run.id

    run_id = printing()
    messages = stored_messages(run_id)
    assert "from the flow" in messages and "from the task" in messages
    assert "task opted out" not in messages
    assert "task opted out" in capsys.readouterr().out
