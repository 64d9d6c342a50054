"""Sending inputs to flow runs and receiving them: ``send_input``, ``receive_input``.

``receive_input(type, ...)`` returns a ``GetInputHandler`` over the inputs sent to a flow
run under a key prefix, oldest first. Each input reaches a given handler once (it
remembers the keys it gave out); other handlers see them too. Waiting blocks on the
store (the run's input log) in slices of at most 10 s, never by polling;
``poll_interval`` is accepted for compatibility and unused.

The handler has two faces:

- Prefect's iterator: ``for x in handler`` / ``async for x in handler`` /
  ``handler.next()`` / ``await handler.anext()`` yield each input as it arrives and stop
  (or raise ``TimeoutError`` with ``raise_timeout_error``) after ``timeout`` seconds
  without one.
- A mapping over the *current* input (the last one handed out, or the next one to arrive,
  waited for once): ``handler.get("decision")``, ``handler["comments"]``,
  ``handler.keys()``, ``"x" in handler`` read its fields (dict keys or model fields).
  An input fetched this way is still the next one iteration yields. In async code
  ``await handler`` first: it waits for the current input in a worker thread and returns
  the handler, whose mapping face then does not block.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from pydantic import BaseModel

from prefect_lite.input.actions import (
    _create_flow_run_input_from_model,
    _filter_flow_run_input,
    ensure_flow_run_id,
)
from prefect_lite.input.run_input import (
    AutomaticRunInput,
    BaseRunInput,
    run_input_subclass_from_type,
)
from prefect_lite.schemas import RunInput as FlowRunInput
from prefect_lite.utilities.asyncutils import sync_compatible

MAX_WAIT_SLICE_SECONDS = 10.0
_NOTHING: Any = object()


class GetInputHandler(Iterator[Any], AsyncIterator[Any]):
    """Inputs of one type sent to a flow run under a key prefix (see module doc)."""

    def __init__(
        self,
        run_input_cls: type[BaseRunInput],
        key_prefix: str,
        timeout: float | None = 3600,
        poll_interval: float = 10,
        raise_timeout_error: bool = False,
        exclude_keys: set[str] | None = None,
        flow_run_id: uuid.UUID | str | None = None,
        with_metadata: bool = False,
    ) -> None:
        self.run_input_cls = run_input_cls
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.raise_timeout_error = raise_timeout_error
        self.with_metadata = with_metadata
        self.exclude_keys: set[str] = set(exclude_keys or ())
        self.flow_run_id = ensure_flow_run_id(flow_run_id)
        self._current: Any = _NOTHING
        self._pending = False  # fetched for the mapping face, not yet yielded

    def __repr__(self) -> str:
        return (
            f"GetInputHandler({self.run_input_cls.__name__}, key_prefix={self.key_prefix!r}, "
            f"flow_run_id={self.flow_run_id})"
        )

    # -- receiving
    def _fetch(self) -> Any:
        """The next input not handed out yet; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            remaining = MAX_WAIT_SLICE_SECONDS
            if deadline is not None:
                remaining = min(remaining, max(0.0, deadline - time.monotonic()))
            found = _filter_flow_run_input(
                self.key_prefix,
                limit=1,
                exclude_keys=self.exclude_keys,
                flow_run_id=self.flow_run_id,
                wait_seconds=remaining,
            )
            if found:
                self.exclude_keys.add(found[0].key)
                return self.to_instance(found[0])
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no input with key prefix {self.key_prefix!r} arrived for flow run "
                    f"{self.flow_run_id} within {self.timeout:g} s"
                )

    def to_instance(self, flow_run_input: FlowRunInput) -> Any:
        instance = self.run_input_cls.load_from_flow_run_input(flow_run_input)
        if isinstance(instance, AutomaticRunInput) and not self.with_metadata:
            return instance.value
        return instance

    def next(self) -> Any:
        """The next input (waiting for it); ``TimeoutError`` after ``timeout`` seconds."""
        if self._pending:
            self._pending = False
            return self._current
        self._current = self._fetch()
        return self._current

    async def anext(self) -> Any:
        return await asyncio.to_thread(self.next)

    def __iter__(self) -> GetInputHandler:
        return self

    def __next__(self) -> Any:
        try:
            return self.next()
        except TimeoutError:
            if self.raise_timeout_error:
                raise
            raise StopIteration from None

    def __aiter__(self) -> GetInputHandler:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.anext()
        except TimeoutError:
            if self.raise_timeout_error:
                raise
            raise StopAsyncIteration from None

    # -- the mapping face: fields of the current input
    def _view(self) -> Any:
        if self._current is _NOTHING:
            try:
                self._current = self._fetch()
            except TimeoutError:
                if self.raise_timeout_error:
                    raise
                return _NOTHING
            self._pending = True
        return self._current

    def __await__(self) -> Generator[Any, None, GetInputHandler]:
        async def wait() -> GetInputHandler:
            await asyncio.to_thread(self._view)
            return self

        return wait().__await__()

    def _fields(self) -> Any:
        current = self._view()
        if isinstance(current, AutomaticRunInput):
            return current.value
        return current

    def get(self, key: str, default: Any = None) -> Any:
        """Field ``key`` of the current input; ``default`` if it has none, or if no input
        arrives within ``timeout`` (unless ``raise_timeout_error``)."""
        fields = self._fields()
        if isinstance(fields, dict):
            return fields.get(key, default)
        if isinstance(fields, BaseModel):
            return getattr(fields, key, default) if key in type(fields).model_fields else default
        return default

    def __getitem__(self, key: str) -> Any:
        fields = self._fields()
        if fields is _NOTHING:
            raise TimeoutError(
                f"no input with key prefix {self.key_prefix!r} arrived for flow run "
                f"{self.flow_run_id} within {self.timeout} s"
            )
        if isinstance(fields, dict) and key in fields:
            return fields[key]
        if isinstance(fields, BaseModel) and key in type(fields).model_fields:
            return getattr(fields, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def keys(self) -> set[str]:
        """The field names of the current input (empty if none arrived in time)."""
        fields = self._fields()
        if isinstance(fields, dict):
            return {str(k) for k in fields}
        if isinstance(fields, BaseModel):
            return set(type(fields).model_fields)
        return set()


def _send_input(
    run_input: Any,
    flow_run_id: uuid.UUID | str,
    sender: str | None = None,
    key_prefix: str | None = None,
) -> FlowRunInput:
    """Store ``run_input`` (a RunInput, or any value of a plain type) as a new input of
    the flow run, under ``{key_prefix}-{uuid}``."""
    if isinstance(run_input, BaseRunInput):
        wrapped: BaseRunInput = run_input
    else:
        input_cls = run_input_subclass_from_type(type(run_input))
        if issubclass(input_cls, AutomaticRunInput):
            wrapped = input_cls(value=run_input)
        else:  # a plain pydantic model
            wrapped = input_cls(**run_input.model_dump())
    if key_prefix is None:
        key_prefix = f"{type(wrapped).__name__.lower()}-auto"
    key = f"{key_prefix}-{uuid.uuid4()}"
    return _create_flow_run_input_from_model(key, wrapped, flow_run_id=flow_run_id, sender=sender)


@sync_compatible
def send_input(
    run_input: Any,
    flow_run_id: uuid.UUID | str,
    sender: str | None = None,
    key_prefix: str | None = None,
) -> FlowRunInput:
    """Send ``run_input`` to a flow run (receivers get it with ``receive_input``).

    ``sender`` defaults to the current flow run, so the receiver can ``respond``. Await it
    in async code."""
    return _send_input(run_input, flow_run_id, sender, key_prefix)


def receive_input(
    input_type: Any,
    timeout: float | None = 3600,
    poll_interval: float = 10,
    raise_timeout_error: bool = False,
    exclude_keys: set[str] | None = None,
    key_prefix: str | None = None,
    flow_run_id: uuid.UUID | str | None = None,
    with_metadata: bool = False,
) -> GetInputHandler:
    """A ``GetInputHandler`` over the inputs of ``input_type`` sent to a flow run (the
    current one by default) under ``key_prefix``."""
    input_cls = run_input_subclass_from_type(input_type)
    handler: GetInputHandler = input_cls.receive(
        timeout=timeout,
        poll_interval=poll_interval,
        raise_timeout_error=raise_timeout_error,
        exclude_keys=exclude_keys,
        key_prefix=key_prefix,
        flow_run_id=flow_run_id,
        with_metadata=with_metadata,
    )
    return handler
