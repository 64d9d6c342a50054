"""Flow run inputs by key: create, read, filter, delete (through the client).

``flow_run_id`` defaults to the current flow run. Values are stored as JSON. The public
functions are ``sync_compatible`` (await them in async code); the ``_``-prefixed ones are
the plain sync implementations the SDK calls internally.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from prefect_lite.context import FlowRunContext
from prefect_lite.exceptions import ObjectNotFound
from prefect_lite.schemas import RunInput as FlowRunInput
from prefect_lite.utilities.asyncutils import sync_compatible

SENDER_PREFIX = "prefect.flow-run."


def ensure_flow_run_id(flow_run_id: uuid.UUID | str | None = None) -> uuid.UUID:
    """``flow_run_id``, else the current flow run's id."""
    if flow_run_id:
        return flow_run_id if isinstance(flow_run_id, uuid.UUID) else uuid.UUID(str(flow_run_id))
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("Must either provide a flow run ID or be within a flow run.")
    return uuid.UUID(str(context.flow_run.id))


def current_sender() -> str | None:
    """``prefect.flow-run.{id}`` inside a flow run (so a receiver can ``respond``)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return f"{SENDER_PREFIX}{context.flow_run.id}"


@contextlib.contextmanager
def client_scope() -> Iterator[Any]:
    """The current flow run's client, or a new sync client closed afterwards."""
    context = FlowRunContext.get()
    client = context.client if context is not None else None
    if client is not None and hasattr(client, "filter_flow_run_input"):
        yield client
        return
    from prefect_lite.client import get_client

    with get_client(sync_client=True) as own:
        yield own


def _create_flow_run_input(
    key: str | uuid.UUID,
    value: Any,
    flow_run_id: uuid.UUID | str | None = None,
    sender: str | None = None,
) -> FlowRunInput:
    if isinstance(key, uuid.UUID):  # the (flow_run_id, key, value, sender) order
        key, value, flow_run_id, sender = str(value), flow_run_id, key, sender
    run_id = ensure_flow_run_id(flow_run_id)
    with client_scope() as client:
        record: FlowRunInput = client.create_flow_run_input(
            flow_run_id=run_id, key=key, value=value, sender=sender
        )
    return record


def _create_flow_run_input_from_model(
    key: str,
    model_instance: BaseModel,
    flow_run_id: uuid.UUID | str | None = None,
    sender: str | None = None,
) -> FlowRunInput:
    if sender is None:
        sender = current_sender()
    value = model_instance.model_dump(mode="json")
    return _create_flow_run_input(key, value, flow_run_id=flow_run_id, sender=sender)


def _read_record(key: str, flow_run_id: uuid.UUID | str | None = None) -> FlowRunInput | None:
    run_id = ensure_flow_run_id(flow_run_id)
    with client_scope() as client:
        try:
            record: FlowRunInput = client.read_flow_run_input(flow_run_id=run_id, key=key)
        except ObjectNotFound:
            return None
    return record


def _read_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> Any:
    record = _read_record(key, flow_run_id)
    return None if record is None else record.value


def _filter_flow_run_input(
    key_prefix: str,
    limit: int = 1,
    exclude_keys: Iterable[str] | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    wait_seconds: float = 0.0,
) -> list[FlowRunInput]:
    run_id = ensure_flow_run_id(flow_run_id)
    with client_scope() as client:
        found: list[FlowRunInput] = client.filter_flow_run_input(
            flow_run_id=run_id,
            key_prefix=key_prefix,
            limit=limit,
            exclude_keys=exclude_keys,
            wait_seconds=wait_seconds,
        )
    return found


def _delete_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> None:
    run_id = ensure_flow_run_id(flow_run_id)
    with client_scope() as client:
        client.delete_flow_run_input(flow_run_id=run_id, key=key)


@sync_compatible
def create_flow_run_input(
    key: str | uuid.UUID,
    value: Any,
    flow_run_id: uuid.UUID | str | None = None,
    sender: str | None = None,
) -> FlowRunInput:
    """Store ``value`` (JSON) under ``key`` for a flow run; returns the stored record.

    Prefect's order ``(key, value, flow_run_id=None, sender=None)``; a UUID first argument
    means ``(flow_run_id, key, value, sender)``. A key the run already has is an
    ``ObjectAlreadyExists`` error."""
    return _create_flow_run_input(key, value, flow_run_id, sender)


@sync_compatible
def create_flow_run_input_from_model(
    key: str,
    model_instance: BaseModel,
    flow_run_id: uuid.UUID | str | None = None,
    sender: str | None = None,
) -> FlowRunInput:
    """Store a pydantic model's JSON form as an input (sender: the current flow run)."""
    return _create_flow_run_input_from_model(key, model_instance, flow_run_id, sender)


@sync_compatible
def read_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> Any:
    """The value stored under ``key``, or None if there is none."""
    return _read_flow_run_input(key, flow_run_id)


@sync_compatible
def filter_flow_run_input(
    key_prefix: str,
    limit: int = 1,
    exclude_keys: Iterable[str] | None = None,
    flow_run_id: uuid.UUID | str | None = None,
) -> list[FlowRunInput]:
    """Stored inputs whose key starts with ``key_prefix``, oldest first."""
    return _filter_flow_run_input(key_prefix, limit, exclude_keys, flow_run_id)


@sync_compatible
def delete_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> None:
    """Delete the input stored under ``key`` (``ObjectNotFound`` if there is none)."""
    _delete_flow_run_input(key, flow_run_id)
