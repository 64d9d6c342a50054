"""The interactive-workflow examples of seed 001, ported (``prefect`` -> ``prefect_lite``).

Each flow waits for its input in a thread while the test sends it, as the seed's
``send_approval`` does, once the flow run exists.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from prefect_lite import flow, task
from prefect_lite.client import get_client
from prefect_lite.input import receive_input, send_input
from tests.helpers import wait_for


@task
def process_document(doc_id: str) -> dict[str, Any]:
    return {"id": doc_id, "status": "processed"}


@task
def finalize_document(doc: dict[str, Any], comments: str) -> dict[str, Any]:
    return {"id": doc["id"], "status": "finalized", "comments": comments}


@task
def reject_document(doc: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"id": doc["id"], "status": "rejected", "reason": reason}


@flow
def approval_workflow(document_id: str) -> dict[str, Any]:
    """Workflow requiring human approval."""
    processed_doc = process_document(document_id)
    approval_input = receive_input(input_type=dict, timeout=3600, key_prefix="approval")
    approval = approval_input.get("decision")
    comments = approval_input.get("comments", "")
    if approval == "approved":
        return finalize_document(processed_doc, comments)
    return reject_document(processed_doc, comments)


async def send_approval(flow_run_id: uuid.UUID, decision: str, comments: str) -> None:
    """Send input to the waiting flow (the seed's ``send_approval``)."""
    await send_input(
        run_input={"decision": decision, "comments": comments},
        flow_run_id=flow_run_id,
        sender="manager@company.com",
        key_prefix="approval",
    )


@task
def process_with_config(config: dict[str, Any]) -> dict[str, Any]:
    return {"rows": config["batch_size"] * 2, "config": config}


@task
def revise_results(results: dict[str, Any], feedback: dict[str, Any]) -> dict[str, Any]:
    return {**results, "revised": True, "notes": feedback["notes"]}


@task
def finalize_results(results: dict[str, Any]) -> dict[str, Any]:
    return {**results, "final": True}


@flow
def data_collection_workflow() -> dict[str, Any]:
    """Collect multiple inputs over time."""
    config_input = receive_input(input_type=dict, key_prefix="config", timeout=1800)
    config = config_input.get("parameters")
    results = process_with_config(config)
    feedback_input = receive_input(input_type=dict, key_prefix="feedback", timeout=3600)
    feedback = feedback_input.get("review")
    if feedback.get("needs_revision"):
        return revise_results(results, feedback)
    return finalize_results(results)


@pytest.fixture
def start() -> Iterator[Callable[..., Future[Any]]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool.submit


def _run_of(flow_name: str) -> uuid.UUID:
    def find() -> list[Any]:
        with get_client(sync_client=True) as client:
            return list(client.read_flow_runs(flow_name=flow_name))

    return uuid.UUID(str(wait_for(find, timeout=30)[0].id))


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("approved", {"id": "doc-7", "status": "finalized", "comments": "Looks good"}),
        ("changes", {"id": "doc-7", "status": "rejected", "reason": "Looks good"}),
    ],
)
def test_approval_workflow(
    start: Callable[..., Future[Any]], decision: str, expected: dict[str, Any]
) -> None:
    running = start(approval_workflow, "doc-7")
    run_id = _run_of("approval-workflow")
    asyncio.run(send_approval(run_id, decision, "Looks good"))
    assert running.result(timeout=30) == expected
    with get_client(sync_client=True) as client:
        stored = client.filter_flow_run_input(run_id, "approval")
    assert stored[0].sender == "manager@company.com"


def test_multi_step_input_collection(start: Callable[..., Future[Any]]) -> None:
    running = start(data_collection_workflow)
    run_id = _run_of("data-collection-workflow")
    send_input({"parameters": {"batch_size": 50}}, flow_run_id=run_id, key_prefix="config")
    send_input(
        {"review": {"needs_revision": True, "notes": "add totals"}},
        flow_run_id=run_id,
        key_prefix="feedback",
    )
    assert running.result(timeout=30) == {
        "rows": 100,
        "config": {"batch_size": 50},
        "revised": True,
        "notes": "add totals",
    }


def test_multi_step_input_collection_without_revision(start: Callable[..., Future[Any]]) -> None:
    running = start(data_collection_workflow)
    run_id = _run_of("data-collection-workflow")
    send_input({"review": {"needs_revision": False}}, flow_run_id=run_id, key_prefix="feedback")
    send_input({"parameters": {"batch_size": 1}}, flow_run_id=run_id, key_prefix="config")
    result = running.result(timeout=30)
    assert result == {"rows": 2, "config": {"batch_size": 1}, "final": True}
