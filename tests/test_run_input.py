"""Flow run inputs: storage by key, typed RunInput classes, send_input/receive_input."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from prefect_lite import flow
from prefect_lite.client import get_client
from prefect_lite.context import FlowRunContext
from prefect_lite.exceptions import (
    ObjectAlreadyExists,
    ObjectNotFound,
    PayloadTooLarge,
    ValidationError,
)
from prefect_lite.input import (
    AutomaticRunInput,
    GetInputHandler,
    Keyset,
    RunInput,
    create_flow_run_input,
    delete_flow_run_input,
    filter_flow_run_input,
    keyset_from_paused_state,
    read_flow_run_input,
    receive_input,
    run_input_subclass_from_type,
    send_input,
)
from prefect_lite.server import create_app
from prefect_lite.settings import get_settings, temporary_settings
from prefect_lite.states import Paused, Suspended
from tests._live_server import serve
from tests.helpers import spawn_python, wait_for


class Number(RunInput):
    number: int


def _run_id() -> uuid.UUID:
    with get_client(sync_client=True) as client:
        return client.create_flow_run("inputs-test").id


# ------------------------------------------------------------------ inputs by key (actions)


def test_create_read_filter_delete_in_creation_order() -> None:
    run_id = _run_id()
    for key, value in (("b-1", {"x": 1}), ("a-1", [1, 2]), ("b-2", "two"), ("b-3", None)):
        record = create_flow_run_input(key, value, flow_run_id=run_id, sender="me")
        assert (record.key, record.value, record.sender) == (key, value, "me")
    assert read_flow_run_input("a-1", flow_run_id=run_id) == [1, 2]
    assert read_flow_run_input("missing", flow_run_id=run_id) is None
    found = filter_flow_run_input("b-", limit=10, flow_run_id=run_id)
    assert [r.key for r in found] == ["b-1", "b-2", "b-3"]
    found = filter_flow_run_input("b-", limit=10, exclude_keys={"b-2"}, flow_run_id=run_id)
    assert [r.key for r in found] == ["b-1", "b-3"]
    assert [r.key for r in filter_flow_run_input("b-", flow_run_id=run_id)] == ["b-1"]
    delete_flow_run_input("b-1", flow_run_id=run_id)
    assert [r.key for r in filter_flow_run_input("", limit=10, flow_run_id=run_id)] == [
        "a-1",
        "b-2",
        "b-3",
    ]
    with pytest.raises(ObjectNotFound, match="no input with key 'b-1'"):
        delete_flow_run_input("b-1", flow_run_id=run_id)


def test_create_accepts_the_flow_run_id_first_argument_order() -> None:
    run_id = _run_id()
    record = create_flow_run_input(run_id, "decision", {"ok": True}, "boss")
    assert (record.flow_run_id, record.key, record.value, record.sender) == (
        run_id,
        "decision",
        {"ok": True},
        "boss",
    )


def test_bad_inputs_are_clear_errors() -> None:
    run_id = _run_id()
    create_flow_run_input("k", 1, flow_run_id=run_id)
    with pytest.raises(ObjectAlreadyExists, match="already has an input with key 'k'"):
        create_flow_run_input("k", 2, flow_run_id=run_id)
    with pytest.raises(ObjectNotFound, match="no flow run"):
        create_flow_run_input("k", 1, flow_run_id=uuid.uuid4())
    for key in ("", "a/b", "tab\there", "x" * 256):
        with pytest.raises(ValidationError, match="key"):
            create_flow_run_input(key, 1, flow_run_id=run_id)
    with pytest.raises(ValidationError, match="not a JSON value"):
        create_flow_run_input("obj", object(), flow_run_id=run_id)
    with pytest.raises(ValidationError, match="JSON cannot represent"):
        create_flow_run_input("nan", float("nan"), flow_run_id=run_id)
    with temporary_settings(max_payload_bytes=100), pytest.raises(PayloadTooLarge, match="100"):
        create_flow_run_input("big", "x" * 200, flow_run_id=run_id)
    with pytest.raises(RuntimeError, match="provide a flow run ID or be within a flow run"):
        read_flow_run_input("k")
    with get_client(sync_client=True) as client:
        with pytest.raises(ValidationError, match="limit"):
            client.filter_flow_run_input(run_id, "", limit=0)
        with pytest.raises(ValidationError, match="wait_seconds"):
            client.filter_flow_run_input(run_id, "", wait_seconds=60)
        with pytest.raises(ObjectNotFound):
            client.filter_flow_run_input(uuid.uuid4(), "", wait_seconds=1)


def test_a_replaced_input_moves_to_the_end_of_the_order() -> None:
    run_id = _run_id()
    with get_client(sync_client=True) as client:
        client.create_flow_run_input(run_id, "a", 1)
        client.create_flow_run_input(run_id, "b", 2)
    from prefect_lite.schemas import RunInput as Record
    from prefect_lite.storage import inputs

    inputs.put(Record(flow_run_id=run_id, key="a", value=3), overwrite=True)
    found = filter_flow_run_input("", limit=5, flow_run_id=run_id)
    assert [(r.key, r.value) for r in found] == [("b", 2), ("a", 3)]


def test_a_waiting_filter_returns_as_soon_as_an_input_arrives() -> None:
    run_id = _run_id()
    started = threading.Event()
    results: list[Any] = []

    def receive() -> None:
        with get_client(sync_client=True) as client:
            started.set()
            results.append(client.filter_flow_run_input(run_id, "msg", wait_seconds=10))

    thread = threading.Thread(target=receive)
    thread.start()
    started.wait(5)
    create_flow_run_input("other-1", "not for me", flow_run_id=run_id)
    create_flow_run_input("msg-1", "hello", flow_run_id=run_id)
    thread.join(15)
    assert [r.value for r in results[0]] == ["hello"]


# ---------------------------------------------------------------------- RunInput classes


def test_plain_types_and_models_become_input_classes() -> None:
    assert run_input_subclass_from_type(Number) is Number
    str_input = run_input_subclass_from_type(str)
    assert issubclass(str_input, AutomaticRunInput)
    assert str_input.__name__ == "strAutomaticRunInput"
    assert str_input(value="x").value == "x"
    assert run_input_subclass_from_type(list[int]).__name__ == "listAutomaticRunInput"

    class Point(BaseModel):
        x: int

    point_input = run_input_subclass_from_type(Point)
    assert issubclass(point_input, RunInput)
    assert point_input(x=1).x == 1
    with pytest.raises(ValidationError, match="needs a type"):
        run_input_subclass_from_type(None)


def test_with_initial_data_sets_defaults_and_description() -> None:
    class Approval(RunInput):
        approved: bool
        reason: str = ""

    prefilled = Approval.with_initial_data(description="Ship it?", approved=True, extra=3)
    made = prefilled()
    assert (made.approved, made.reason, made.extra) == (True, "", 3)  # type: ignore[attr-defined]
    assert prefilled._description == "Ship it?"
    assert Approval._description is None
    schema = prefilled.input_schema()
    assert schema["properties"]["approved"]["default"] is True


def test_keysets_follow_the_paused_state() -> None:
    assert keyset_from_paused_state(Paused(pause_key="1")) == {
        "description": "paused-1-description",
        "response": "paused-1-response",
        "schema": "paused-1-schema",
    }
    assert keyset_from_paused_state(Suspended(pause_key="k"))["response"] == "suspended-k-response"
    assert Number.keyset_from_type()["schema"] == "number-schema"
    given = Keyset({"approval-schema", "approval-response"})
    assert "approval-schema" in given and set(given.keys()) == {
        "approval-schema",
        "approval-response",
    }
    from prefect_lite.states import Running

    with pytest.raises(RuntimeError, match="unsupported"):
        keyset_from_paused_state(Running())


# ---------------------------------------------------------------- send_input / receive_input


def test_each_receiver_gets_every_input_once_in_order() -> None:
    run_id = _run_id()
    for n in (1, 2, 3):
        send_input(n, flow_run_id=run_id)
    send_input("not an int", flow_run_id=run_id, key_prefix="other")
    first = receive_input(int, timeout=0.2, flow_run_id=run_id)
    assert list(first) == [1, 2, 3]
    assert list(first) == []  # this receiver has had them all
    second = receive_input(int, timeout=0.2, flow_run_id=run_id, exclude_keys=set())
    assert second.next() == 1
    send_input(4, flow_run_id=run_id)
    assert list(second) == [2, 3, 4]


def test_timeouts_stop_iteration_or_raise() -> None:
    run_id = _run_id()
    assert list(receive_input(str, timeout=0.1, flow_run_id=run_id)) == []
    strict = receive_input(str, timeout=0.1, raise_timeout_error=True, flow_run_id=run_id)
    with pytest.raises(TimeoutError, match="no input with key prefix 'strautomaticruninput-auto'"):
        next(strict)
    handler = receive_input(dict, timeout=0.1, flow_run_id=run_id)
    assert handler.get("decision", "none yet") == "none yet"
    assert handler.keys() == set()
    with pytest.raises(TimeoutError):
        handler["decision"]


def test_the_mapping_face_reads_the_current_input() -> None:
    run_id = _run_id()
    send_input({"decision": "approved", "n": 1}, flow_run_id=run_id, key_prefix="approval")
    send_input({"decision": "rejected", "n": 2}, flow_run_id=run_id, key_prefix="approval")
    handler = receive_input(dict, timeout=1, key_prefix="approval", flow_run_id=run_id)
    assert isinstance(handler, GetInputHandler)
    assert handler.get("decision") == "approved"
    assert handler["n"] == 1
    assert handler.keys() == {"decision", "n"}
    assert "n" in handler and "missing" not in handler
    assert handler.get("missing", 5) == 5
    with pytest.raises(KeyError):
        handler["missing"]
    # the input the mapping face fetched is still the first one iteration yields
    assert [d["n"] for d in handler] == [1, 2]
    assert handler.get("decision") == "rejected"


def test_model_inputs_carry_metadata_and_fields() -> None:
    run_id = _run_id()
    Number(number=7).send_to(run_id, sender="someone")
    received = Number.receive(timeout=1, flow_run_id=run_id).next()
    assert received.number == 7
    assert received.metadata.sender == "someone"
    assert received.metadata.receiver == run_id
    assert received.metadata.key.startswith("number-auto-")
    assert received.metadata.created is not None
    with pytest.raises(RuntimeError, match="not sent by a flow run"):
        received.respond(Number(number=1))
    send_input("hi", flow_run_id=run_id)
    wrapped = receive_input(str, timeout=1, flow_run_id=run_id, with_metadata=True).next()
    assert wrapped.value == "hi" and wrapped.metadata.receiver == run_id
    handler = Number.receive(timeout=1, flow_run_id=run_id, exclude_keys=set())
    assert handler.get("number") == 7


RECEIVER = """
from prefect_lite import flow
from prefect_lite.input import RunInput

class Number(RunInput):
    number: int

@flow(name="squarer")
def squarer():
    seen = []
    for data in Number.receive(timeout=30):
        if data.number < 0:
            break
        seen.append(data.number)
        data.respond(Number(number=data.number ** 2))
    return seen

print("RESULT", squarer())
"""


def test_two_flows_in_two_processes_exchange_messages() -> None:
    proc = spawn_python(RECEIVER)
    try:
        with get_client(sync_client=True) as client:
            runs = wait_for(lambda: client.read_flow_runs(flow_name="squarer"), timeout=30)
        receiver_id = runs[0].id

        @flow
        def asker(receiver: uuid.UUID) -> list[int]:
            answers = Number.receive(timeout=30)
            squares = []
            for n in (2, 3, 4):
                Number(number=n).send_to(receiver)
                squares.append(answers.next().number)
            send_input(Number(number=-1), flow_run_id=receiver)
            return squares

        assert asker(receiver_id) == [4, 9, 16]
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "RESULT [2, 3, 4]" in out


def test_async_flows_await_sends_and_iterate_asynchronously() -> None:
    @flow
    async def collector(count: int) -> list[str]:
        run_id = FlowRunContext.get().flow_run.id  # type: ignore[union-attr]
        for word in ("a", "b", "c")[:count]:
            await send_input(word, flow_run_id=run_id)
        words = []
        async for word in receive_input(str, timeout=0.5):
            words.append(word)
        handler = await receive_input(str, timeout=0.5)  # waits for the first, then maps
        assert handler.keys() == set()  # a str input has no fields
        return words

    assert asyncio.run(collector(3)) == ["a", "b", "c"]


def test_inputs_over_http() -> None:
    run_id = _run_id()
    with serve(create_app(get_settings())) as base:
        with temporary_settings(api_url=f"{base}/api"), get_client(sync_client=True) as client:
            client.create_flow_run_input(run_id, "greeting-1", {"text": "hi"}, sender="web")
            assert client.read_flow_run_input(run_id, "greeting-1").value == {"text": "hi"}
            found = client.filter_flow_run_input(run_id, "greeting", wait_seconds=0.1)
            assert [(r.key, r.sender) for r in found] == [("greeting-1", "web")]
            with pytest.raises(ObjectAlreadyExists):
                client.create_flow_run_input(run_id, "greeting-1", 1)
            with pytest.raises(ValidationError, match="'/'"):
                client.create_flow_run_input(run_id, "a/b", 1)
            send_input(5, flow_run_id=run_id)
            assert receive_input(int, timeout=1, flow_run_id=run_id).next() == 5
            client.delete_flow_run_input(run_id, "greeting-1")
            with pytest.raises(ObjectNotFound):
                client.read_flow_run_input(run_id, "greeting-1")
        response = httpx.post(
            f"{base}/api/flow_runs/{run_id}/input/filter", json={"key_prefix": "", "limit": 0}
        )
        assert response.status_code == 422
