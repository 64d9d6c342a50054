"""Flow run input handlers: JSON values stored per flow run under a key, in order.

Used for the schema and answer of a paused run (``paused-{key}-schema``,
``paused-{key}-response``...) and for messages between flows (``send_input`` creates
``{prefix}-{uuid}`` keys that ``receive_input`` filters by prefix). The filter can wait a
little (``wait_seconds``) for a matching input to arrive, so receivers block instead of
polling.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import anyio.to_thread

from prefect_lite.api.flow_runs import read_flow_run
from prefect_lite.api.json_schemas import check_schema
from prefect_lite.api.registry import operation, served_async
from prefect_lite.exceptions import (
    ObjectAlreadyExists,
    ObjectNotFound,
    PayloadTooLarge,
    ValidationError,
)
from prefect_lite.schemas import JSON_TYPES_HINT, RunInput, json_value_problem
from prefect_lite.settings import get_settings
from prefect_lite.storage import async_waits, inputs

MAX_KEY_LENGTH = 255
MAX_FILTER_LIMIT = 1000
MAX_WAIT_SECONDS = inputs.MAX_BLOCK_SECONDS
_BAD_KEY_CHARS = re.compile(r"[/\x00-\x1f\x7f]")
# The input schema a paused run stores (``keyset_from_paused_state``): checked on the way in.
_SCHEMA_KEY = re.compile(r"^(paused|suspended)-.+-schema$", re.IGNORECASE)


def check_input_key(key: object) -> str:
    """A non-empty string of at most 255 characters without '/' or control characters."""
    if not isinstance(key, str) or not key:
        raise ValidationError(f"invalid flow run input key {key!r}: use a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"flow run input key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if _BAD_KEY_CHARS.search(key):
        raise ValidationError(
            f"invalid flow run input key {key!r}: '/' and control characters are not allowed"
        )
    return key


def check_input_value(key: str, value: Any) -> Any:
    """Plain JSON, at most ``max_payload_bytes`` as compact JSON."""
    problem = json_value_problem(value)
    if problem is not None:
        raise ValidationError(f"flow run input {key!r}: {problem}; use {JSON_TYPES_HINT}")
    size = len(json.dumps(value, separators=(",", ":")).encode())
    limit = get_settings().max_payload_bytes
    if size > limit:
        raise PayloadTooLarge(
            f"flow run input {key!r} is {size} bytes as JSON; the limit is {limit} bytes "
            "(max_payload_bytes)"
        )
    return value


def store_input(record: RunInput, overwrite: bool = False) -> RunInput:
    """Check and store one input of an existing run (shared with the resume handler)."""
    check_input_key(record.key)
    check_input_value(record.key, record.value)
    if _SCHEMA_KEY.match(record.key):
        check_schema(record.value, f"input schema {record.key!r}")
    if not inputs.put(record, overwrite=overwrite):
        raise ObjectAlreadyExists(
            f"flow run {record.flow_run_id} already has an input with key {record.key!r}"
        )
    return record


@operation(
    "POST",
    "/flow_runs/{flow_run_id}/input",
    status_code=201,
    tag="flow_run_inputs",
    role=("run", "worker"),
)
def create_flow_run_input(
    flow_run_id: uuid.UUID, key: str, value: Any = None, sender: str | None = None
) -> RunInput:
    """Store ``value`` under ``key`` for the run; a key already used is a conflict."""
    check_input_key(key)
    read_flow_run(flow_run_id)  # an unknown run is a 404, not an orphan input
    record = RunInput(flow_run_id=flow_run_id, key=key, value=value, sender=sender)
    return store_input(record)


@operation("GET", "/flow_runs/{flow_run_id}/input/{key}", tag="flow_run_inputs", role="read")
def read_flow_run_input(flow_run_id: uuid.UUID, key: str) -> RunInput:
    check_input_key(key)
    found = inputs.get(flow_run_id, key)
    if found is None:
        raise ObjectNotFound(f"flow run {flow_run_id} has no input with key {key!r}")
    return found


@operation(
    "DELETE",
    "/flow_runs/{flow_run_id}/input/{key}",
    status_code=204,
    tag="flow_run_inputs",
    role="worker",
)
def delete_flow_run_input(flow_run_id: uuid.UUID, key: str) -> None:
    check_input_key(key)
    if not inputs.delete(flow_run_id, key):
        raise ObjectNotFound(f"flow run {flow_run_id} has no input with key {key!r}")


@operation("POST", "/flow_runs/{flow_run_id}/input/filter", tag="flow_run_inputs", role="read")
def filter_flow_run_input(
    flow_run_id: uuid.UUID,
    key_prefix: str = "",
    limit: int = 1,
    exclude_keys: list[str] | None = None,
    wait_seconds: float = 0.0,
) -> list[RunInput]:
    """Inputs whose key starts with ``key_prefix``, oldest first, leaving out
    ``exclude_keys``. With ``wait_seconds`` (at most 10) and none matching yet, wait that
    long for one to be created."""
    _check_filter(limit, wait_seconds)
    if wait_seconds > 0:
        read_flow_run(flow_run_id)  # never block on a run that does not exist
    return inputs.select(flow_run_id, key_prefix, limit, exclude_keys or (), wait_seconds)


@served_async(filter_flow_run_input)
async def filter_flow_run_input_async(
    flow_run_id: uuid.UUID,
    key_prefix: str = "",
    limit: int = 1,
    exclude_keys: list[str] | None = None,
    wait_seconds: float = 0.0,
) -> list[RunInput]:
    """``filter_flow_run_input`` waiting on the event loop (the HTTP server's): each check
    takes a thread briefly, the wait between them none."""
    _check_filter(limit, wait_seconds)
    excluded = exclude_keys or ()

    def select() -> list[RunInput]:
        return inputs.select(flow_run_id, key_prefix, limit, excluded, 0.0)

    if wait_seconds <= 0:
        return await anyio.to_thread.run_sync(select)
    await anyio.to_thread.run_sync(read_flow_run, flow_run_id)
    found: list[RunInput] = []

    async def matched() -> bool:
        nonlocal found
        found = await anyio.to_thread.run_sync(select)
        return bool(found)

    channel = async_waits.input_channel(str(flow_run_id))
    await async_waits.wait_until(channel, matched, wait_seconds)
    return found


def _check_filter(limit: int, wait_seconds: float) -> None:
    if not 1 <= limit <= MAX_FILTER_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_FILTER_LIMIT}, not {limit}")
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise ValidationError(
            f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:g}, not {wait_seconds}"
        )
