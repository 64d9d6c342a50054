"""The flow/task/mapping/annotation/context examples of the seeds, run with prefect_lite.

Each example is the seed's code with ``prefect`` replaced by ``prefect_lite`` (names the
seed leaves undefined, such as ``extract_data`` in the logging example, are defined
minimally). Expected outputs are the seed's, or Prefect 3's behaviour where the seed
shows none.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from prefect_lite import flow, get_client, get_run_logger, tags, task
from prefect_lite.context import (
    FlowRunContext,
    TaskRunContext,
    hydrated_context,
    serialize_context,
)
from prefect_lite.logging import disable_run_logger, flush_logs, get_logger
from prefect_lite.states import Completed, Failed, Running, State, StateType
from prefect_lite.tasks import task_input_hash
from prefect_lite.utilities.annotations import Quote, allow_failure, quote, unmapped


@pytest.fixture(autouse=True)
def _settle_logs() -> Iterator[None]:
    yield
    assert flush_logs(timeout=10)


def client() -> Any:
    return get_client(sync_client=True)


def flow_run_of(flow_name: str) -> Any:
    (run,) = client().read_flow_runs(flow_name=flow_name)
    return run


def stored_log_messages(flow_run_id: uuid.UUID) -> list[str]:
    assert flush_logs(timeout=10)
    return [log.message for log in client().read_logs(flow_run_id, limit=10_000)]


# --------------------------------------------------------------- seed 000: ETL


@task
def extract_data(url: str) -> dict[str, Any]:
    """Extract data from a source."""
    logger = get_run_logger()
    logger.info(f"Extracting data from {url}")
    return {"records": 100, "source": url}


@task
def transform_data(raw_data: dict[str, Any]) -> dict[str, Any]:
    """Transform the extracted data."""
    logger = get_run_logger()
    logger.info("Transforming data")
    return {"processed_records": raw_data["records"], "status": "transformed"}


@task
def load_data(processed_data: dict[str, Any]) -> dict[str, Any]:
    """Load data to destination."""
    logger = get_run_logger()
    logger.info(f"Loading {processed_data['processed_records']} records")
    return {"loaded": True}


@flow(name="ETL Pipeline")
def etl_flow(source_url: str) -> dict[str, Any]:
    """Complete ETL workflow."""
    raw = extract_data(source_url)
    processed = transform_data(raw)
    result = load_data(processed)
    return result


def test_seed_000_etl_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    result = etl_flow("https://api.example.com/data")
    print(result)
    assert capsys.readouterr().out.strip() == "{'loaded': True}"

    run = flow_run_of("ETL Pipeline")
    assert run.state_name == "Completed"
    assert run.parameters == {"source_url": "https://api.example.com/data"}
    task_runs = {r.name: r for r in client().read_task_runs(run.id)}
    assert sorted(task_runs) == ["extract_data-0", "load_data-0", "transform_data-0"]
    assert [i.id for i in task_runs["transform_data-0"].task_inputs["raw_data"]] == [
        task_runs["extract_data-0"].id
    ]
    assert [i.id for i in task_runs["load_data-0"].task_inputs["processed_data"]] == [
        task_runs["transform_data-0"].id
    ]
    messages = stored_log_messages(run.id)
    for expected in (
        "Extracting data from https://api.example.com/data",
        "Transforming data",
        "Loading 100 records",
    ):
        assert expected in messages


def test_seed_000_common_imports_and_signatures() -> None:
    assert callable(task_input_hash)
    assert Completed().type == StateType.COMPLETED
    assert Failed().type == StateType.FAILED
    assert Running().type == StateType.RUNNING
    assert TaskRunContext.get() is None
    flow_options = {
        "name", "description", "version", "flow_run_name", "task_runner", "timeout_seconds",
        "validate_parameters", "retries", "retry_delay_seconds", "persist_result",
        "result_storage", "result_serializer", "cache_result_in_memory", "on_completion",
        "on_failure", "on_cancellation", "on_crashed", "on_running", "log_prints",
    }  # fmt: skip
    task_options = {
        "name", "description", "tags", "version", "cache_key_fn", "cache_expiration",
        "task_run_name", "retries", "retry_delay_seconds", "retry_condition_fn",
        "persist_result", "result_storage", "result_serializer", "cache_result_in_memory",
        "timeout_seconds", "log_prints", "refresh_cache", "on_completion", "on_failure",
    }  # fmt: skip
    from prefect_lite.flows import Flow
    from prefect_lite.tasks import Task

    assert flow_options <= set(inspect.signature(Flow.__init__).parameters)
    assert task_options <= set(inspect.signature(Task.__init__).parameters)

    def fn() -> None:
        pass

    every_flow_option: dict[str, Any] = {
        "name": "n", "description": "d", "version": "v", "flow_run_name": "r",
        "task_runner": None, "timeout_seconds": 5, "validate_parameters": True, "retries": 1,
        "retry_delay_seconds": 1, "persist_result": True, "result_storage": None,
        "result_serializer": None, "cache_result_in_memory": True, "on_completion": [],
        "on_failure": [], "on_cancellation": [], "on_crashed": [], "on_running": [],
        "log_prints": False,
    }  # fmt: skip
    assert flow(**every_flow_option)(fn).name == "n"
    every_task_option: dict[str, Any] = {
        "name": "n", "description": "d", "tags": ["t"], "version": "v",
        "cache_key_fn": task_input_hash, "cache_expiration": None, "task_run_name": "r",
        "retries": 1, "retry_delay_seconds": 1, "retry_condition_fn": None,
        "persist_result": None, "result_storage": None, "result_serializer": None,
        "cache_result_in_memory": True, "timeout_seconds": 5, "log_prints": True,
        "refresh_cache": None, "on_completion": [], "on_failure": [],
    }  # fmt: skip
    assert task(**every_task_option)(fn).name == "n"


# ------------------------------------------------------------ seed 001: logging

module_logger = get_logger(__name__)


def complex_operation(data: list[int]) -> list[int]:
    return [x * 2 for x in data]


@task(name="extract_data")
def extract_numbers() -> list[int]:
    return [1, 2, 3]


@task
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


@flow
def data_pipeline() -> list[int]:
    logger = get_run_logger()
    logger.info("Starting data pipeline")
    logger.info("Configuration", extra={"batch_size": 1000, "env": "production"})
    data = extract_numbers()
    result = process_data(data)
    logger.info(f"Pipeline completed successfully with {len(result)} records")
    return result


@task
def quiet_task() -> str:
    disable_run_logger()
    get_run_logger().info("this must not be stored")
    return "completed quietly"


@flow
def quiet_flow() -> str:
    return quiet_task()


def test_seed_001_logging() -> None:
    assert data_pipeline() == [2, 4, 6]
    messages = stored_log_messages(flow_run_of("data-pipeline").id)
    for expected in (
        "Starting data pipeline",
        "Configuration",
        "Processing 3 records",
        "Successfully processed 3 records",
        "Pipeline completed successfully with 3 records",
    ):
        assert expected in messages
    assert messages.index("Starting data pipeline") < messages.index("Processing 3 records")

    assert quiet_flow() == "completed quietly"
    assert "this must not be stored" not in stored_log_messages(flow_run_of("quiet-flow").id)


# ------------------------------------------------------- seed 001: context, tags


@task
def analyze_data() -> str:
    context = TaskRunContext.get()
    if context:
        print(f"Task: {context.task.name}")
        print(f"Task Run ID: {context.task_run.id}")
    return "analysis complete"


@flow
def data_workflow() -> list[str]:
    context = FlowRunContext.get()
    if context:
        print(f"Flow: {context.flow.name}")
        print(f"Flow Run ID: {context.flow_run.id}")
    with tags("critical", "production"):
        result1 = analyze_data()
        result2 = analyze_data()
    result3 = analyze_data()
    return [result1, result2, result3]


def test_seed_001_context_and_tags(capsys: pytest.CaptureFixture[str]) -> None:
    assert data_workflow() == ["analysis complete"] * 3
    run = flow_run_of("data-workflow")
    task_runs = client().read_task_runs(run.id)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Flow: data-workflow", f"Flow Run ID: {run.id}"]
    assert lines[2:] == [
        line
        for task_run in task_runs
        for line in ("Task: analyze_data", f"Task Run ID: {task_run.id}")
    ]
    assert [sorted(r.tags) for r in task_runs] == [
        ["critical", "production"],
        ["critical", "production"],
        [],
    ]


@task(name="extract_data")
def extract_step() -> list[int]:
    return [1, 2]


@task(name="transform_data")
def transform_step(data: list[int]) -> list[int]:
    return [x + 1 for x in data]


@task(name="load_data")
def load_step(data: list[int]) -> int:
    return sum(data)


@flow
def complex_workflow() -> int:
    with tags("pipeline"):
        with tags("extract"):
            extract_result = extract_step()
        with tags("transform"):
            transform_result = transform_step(extract_result)
        with tags("load"):
            load_result = load_step(transform_result)
    return load_result


def test_seed_001_nested_tags() -> None:
    assert complex_workflow() == 5
    runs = {
        r.name: sorted(r.tags) for r in client().read_task_runs(flow_run_of("complex-workflow").id)
    }
    assert runs == {
        "extract_data-0": ["extract", "pipeline"],
        "transform_data-0": ["pipeline", "transform"],
        "load_data-0": ["load", "pipeline"],
    }


# ------------------------------------------------------- seed 001: annotations


@task
def process_item(item: int, config: dict[str, int], multiplier: int) -> int:
    return item * config["factor"] * multiplier


@task
def handle_result(result: Any) -> str:
    if isinstance(result, Exception):
        return f"Error: {result}"
    return f"Success: {result}"


@flow
def mapping_example() -> Any:
    items = [1, 2, 3, 4, 5]
    config = {"factor": 10}  # Shared configuration
    multiplier = 2  # Another shared value
    results = process_item.map(items, unmapped(config), unmapped(multiplier))
    return results


@task
def risky_task(value: int) -> int:
    if value < 0:
        raise ValueError("Negative value")
    return value * 2


@flow
def failure_handling_example() -> Any:
    values = [-1, 2, 3, -4, 5]
    results = risky_task.map(allow_failure(values))
    handled = handle_result.map(results)
    return handled


@task
def expression_task(expr_string: Any) -> str:
    return f"Expression: {expr_string}"


@flow
def quote_example() -> tuple[str, str]:
    x = 10
    y = 20
    result1 = expression_task(x + y)
    result2 = expression_task(quote("x + y"))
    return result1, result2


def test_seed_001_mapping_with_unmapped() -> None:
    # As in Prefect 3, a flow returning futures gives back their final states.
    states = mapping_example()
    assert all(isinstance(s, State) and s.is_completed() for s in states)
    assert [s.result() for s in states] == [20, 40, 60, 80, 100]
    assert flow_run_of("mapping-example").state_name == "Completed"


def test_seed_001_failure_handling() -> None:
    states = failure_handling_example()
    assert [s.type for s in states] == [
        StateType.FAILED,
        StateType.COMPLETED,
        StateType.COMPLETED,
        StateType.FAILED,
        StateType.COMPLETED,
    ]
    assert [s.result() for s in states if s.is_completed()] == [
        "Success: 4",
        "Success: 6",
        "Success: 10",
    ]
    run = flow_run_of("failure-handling-example")
    assert run.state_type == StateType.FAILED
    assert run.state is not None and run.state.message == "2/5 states failed."
    by_name = {r.name: r for r in client().read_task_runs(run.id)}
    assert by_name["risky_task-0"].state_name == "Failed"
    not_run = client().read_task_run_states(by_name["handle_result-0"].id)
    assert [s.name for s in not_run] == ["Pending", "NotReady", "Failed"]


def test_seed_001_quote() -> None:
    assert quote_example() == ("Expression: 30", "Expression: x + y")
    assert Quote is quote


# --------------------------------------------------- seed 001: context transfer


@task
def child_task() -> str | None:
    context = TaskRunContext.get()
    if context:
        print(f"Restored task context: {context.task_run.id}")
        return str(context.task_run.id)
    return None


@flow
def parent_flow() -> str | None:
    context_data = serialize_context()
    context_json = json.dumps(context_data, default=str)
    restored_data = json.loads(context_json)
    with hydrated_context(restored_data):
        return child_task()


def test_seed_001_serialize_and_hydrate_context(capsys: pytest.CaptureFixture[str]) -> None:
    task_run_id = parent_flow()
    assert task_run_id is not None
    assert capsys.readouterr().out.strip() == f"Restored task context: {task_run_id}"
    run = flow_run_of("parent-flow")
    (task_run,) = client().read_task_runs(run.id)
    assert str(task_run.id) == task_run_id
    assert task_run.flow_run_id == run.id
