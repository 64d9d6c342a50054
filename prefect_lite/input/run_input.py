"""Typed run inputs: pydantic models that flow runs wait for, send and receive.

``RunInput`` subclasses describe what a paused run waits for (``pause_flow_run(
wait_for_input=Approval)``) or what flows send each other (``Approval(...).send_to(id)``,
``Approval.receive()``). Plain types (``str``, ``int``, ``dict``, ``list[int]``...) are
wrapped in an ``AutomaticRunInput`` with one ``value`` field, as in Prefect.

A paused run's ``Keyset`` names three inputs derived from its state name and pause key
(``paused-1-schema``, ``paused-1-response``, ``paused-1-description``): the JSON schema
that resuming validates against, the answer given at resume, and an optional description.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from inspect import isclass
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import pydantic
from pydantic import BaseModel, ConfigDict, PrivateAttr

from prefect_lite.exceptions import ObjectAlreadyExists, ValidationError
from prefect_lite.input.actions import (
    SENDER_PREFIX,
    _create_flow_run_input,
    _filter_flow_run_input,
    _read_record,
    ensure_flow_run_id,
)
from prefect_lite.schemas import RunInput as FlowRunInput
from prefect_lite.utilities.asyncutils import dispatch

T = TypeVar("T")
R = TypeVar("R", bound="RunInput")


class Keyset(dict[str, str]):
    """Input keys of a paused run: ``"description"``/``"response"``/``"schema"`` -> key.

    Built from a mapping, or from a set of keys (each naming itself); ``key in keyset``
    and ``keyset.keys()`` work either way."""

    def __init__(self, keys: Mapping[str, str] | Iterable[str] = ()) -> None:
        if isinstance(keys, Mapping):
            super().__init__(keys)
        else:
            super().__init__((str(k), str(k)) for k in keys)


MAX_WAIT_SLICE_SECONDS = 10.0


def keyset_from_base_key(base_key: str) -> Keyset:
    """The description/response/schema input keys under ``base_key``."""
    return Keyset(
        {
            "description": f"{base_key}-description",
            "response": f"{base_key}-response",
            "schema": f"{base_key}-schema",
        }
    )


def keyset_from_paused_state(state: Any) -> Keyset:
    """The keyset of a Paused/Suspended state: ``{name}-{pause key}-...``."""
    if not state.is_paused():
        raise RuntimeError(f"{state.type.value!r} is unsupported.")
    return keyset_from_base_key(f"{(state.name or '').lower()}-{state.state_details.pause_key}")


class RunInputMetadata(BaseModel):
    """Where a received input came from: its key, its sender and the run it was sent to."""

    key: str
    sender: str | None = None
    receiver: uuid.UUID
    created: datetime | None = None  # when it was stored (None for a pause's response)


class BaseRunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    _description: ClassVar[str | None] = None
    _metadata: RunInputMetadata | None = PrivateAttr(default=None)

    @property
    def metadata(self) -> RunInputMetadata:
        if self._metadata is None:
            raise AttributeError("this input was not received from a flow run")
        return self._metadata

    @classmethod
    def keyset_from_type(cls) -> Keyset:
        return keyset_from_base_key(cls.__name__.lower())

    @classmethod
    def input_schema(cls) -> dict[str, Any]:
        """The JSON schema stored for a paused run (what resuming validates against)."""
        schema = cls.model_json_schema(by_alias=True)
        schema.setdefault("title", cls.__name__)
        return schema

    # -- saving the schema and loading the response of a paused run
    @classmethod
    def _save(cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> None:
        values: dict[str, Any] = {keyset["schema"]: cls.input_schema()}
        if isinstance(cls._description, str):
            values[keyset["description"]] = cls._description
        for key, value in values.items():
            try:
                _create_flow_run_input(key, value, flow_run_id=flow_run_id)
            except ObjectAlreadyExists:
                pass  # saved by an earlier execution of the same pause

    @classmethod
    def save(cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> Any:
        """Store this class's schema (and description) under ``keyset``."""
        return dispatch(cls._save, keyset, flow_run_id)

    @classmethod
    def _load(
        cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None, wait_seconds: float = 0
    ) -> Any:
        run_id = ensure_flow_run_id(flow_run_id)
        key = keyset["response"]
        deadline = time.monotonic() + wait_seconds
        while True:
            record = _read_record(key, run_id)
            remaining = deadline - time.monotonic()
            if record is not None or remaining <= 0:
                break
            _filter_flow_run_input(
                key, flow_run_id=run_id, wait_seconds=min(remaining, MAX_WAIT_SLICE_SECONDS)
            )
        value = record.value if record is not None else None
        if value is not None and not isinstance(value, dict):
            raise ValidationError(f"the input {key!r} of flow run {run_id} is not an object")
        instance = cls(**(value or {}))
        instance._metadata = RunInputMetadata(
            key=key, sender=None, receiver=run_id, created=record.created if record else None
        )
        return instance

    @classmethod
    def load(cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None) -> Any:
        """The response given for ``keyset`` (an instance built from it)."""
        return dispatch(cls._load, keyset, flow_run_id)

    @classmethod
    def load_from_flow_run_input(cls, flow_run_input: FlowRunInput) -> Self:
        value = flow_run_input.value
        if not isinstance(value, dict):
            raise ValidationError(
                f"flow run input {flow_run_input.key!r} is not an object of {cls.__name__} "
                f"fields (got {type(value).__name__})"
            )
        instance = cls(**value)
        instance._metadata = RunInputMetadata(
            key=flow_run_input.key,
            sender=flow_run_input.sender,
            receiver=flow_run_input.flow_run_id,
            created=flow_run_input.created,
        )
        return instance

    @classmethod
    def with_initial_data(
        cls: type[Self], description: str | None = None, **kwargs: Any
    ) -> type[Self]:
        """A subclass whose fields default to ``kwargs`` (shown pre-filled when resuming);
        ``description`` is stored with the schema when a run pauses for this input."""
        fields: dict[str, Any] = {}
        for key, value in kwargs.items():
            original = cls.model_fields.get(key)
            fields[key] = (original.annotation if original else type(value), value)
        model = cast(type[Self], pydantic.create_model(cls.__name__, __base__=cls, **fields))
        if description is not None:
            model._description = description
        return model

    # -- messages between flow runs
    def respond(
        self, run_input: Any, sender: str | None = None, key_prefix: str | None = None
    ) -> Any:
        """Send ``run_input`` back to the flow run this input came from."""
        sent_by = self._metadata.sender if self._metadata is not None else None
        if not sent_by or not sent_by.startswith(SENDER_PREFIX):
            raise RuntimeError("Cannot respond to an input that was not sent by a flow run.")
        target = uuid.UUID(sent_by.rpartition(".")[2])
        from prefect_lite.input.handlers import _send_input

        return dispatch(_send_input, run_input, target, sender, key_prefix)

    def send_to(
        self, flow_run_id: uuid.UUID | str, sender: str | None = None, key_prefix: str | None = None
    ) -> Any:
        """Send this input to a flow run."""
        from prefect_lite.input.handlers import _send_input

        return dispatch(_send_input, self, flow_run_id, sender, key_prefix)

    @classmethod
    def receive(
        cls,
        timeout: float | None = 3600,
        poll_interval: float = 10,
        raise_timeout_error: bool = False,
        exclude_keys: set[str] | None = None,
        key_prefix: str | None = None,
        flow_run_id: uuid.UUID | str | None = None,
        with_metadata: bool = False,
    ) -> Any:
        """A handler yielding inputs of this type sent to the (current) flow run (for an
        ``AutomaticRunInput``: the values, or with ``with_metadata`` the inputs)."""
        from prefect_lite.input.handlers import GetInputHandler

        return GetInputHandler(
            run_input_cls=cls,
            key_prefix=key_prefix or f"{cls.__name__.lower()}-auto",
            timeout=timeout,
            poll_interval=poll_interval,
            raise_timeout_error=raise_timeout_error,
            exclude_keys=exclude_keys,
            flow_run_id=flow_run_id,
            with_metadata=with_metadata,
        )


class RunInput(BaseRunInput):
    """Base of user-defined inputs: subclass it with the fields you want."""

    @classmethod
    def subclass_from_base_model_type(cls, model_cls: type[BaseModel]) -> type[RunInput]:
        """A ``RunInput`` subclass with the fields of a plain pydantic model."""
        made = type(f"{model_cls.__name__}RunInput", (RunInput, model_cls), {})
        return cast(type[RunInput], made)


class AutomaticRunInput(BaseRunInput, Generic[T]):
    """A plain type wrapped as an input: its one field is ``value``."""

    value: T

    @classmethod
    def _load(
        cls, keyset: Keyset, flow_run_id: uuid.UUID | str | None = None, wait_seconds: float = 0
    ) -> Any:
        return super()._load(keyset, flow_run_id, wait_seconds).value

    @classmethod
    def subclass_from_type(cls, _type: Any) -> type[AutomaticRunInput[Any]]:
        """``{type name}AutomaticRunInput`` with ``value: _type`` (so ``list[int]``
        inputs share the ``list`` key prefix)."""
        prefix = str(getattr(_type, "__name__", getattr(_type, "_name", "")) or "").lower()
        model = pydantic.create_model(
            f"{prefix}AutomaticRunInput", __base__=AutomaticRunInput, value=(_type, ...)
        )
        return cast(type[AutomaticRunInput[Any]], model)


def run_input_subclass_from_type(_type: Any) -> type[RunInput] | type[AutomaticRunInput[Any]]:
    """The input class for ``_type``: a ``RunInput`` subclass as is, a pydantic model as a
    ``RunInput``, anything else wrapped in an ``AutomaticRunInput``."""
    if isclass(_type):
        if issubclass(_type, RunInput):
            return _type
        if issubclass(_type, BaseModel):
            return RunInput.subclass_from_base_model_type(_type)
    if _type is None:
        raise ValidationError("wait_for_input needs a type (a RunInput subclass, str, dict...)")
    try:
        return AutomaticRunInput.subclass_from_type(_type)
    except (pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise ValidationError(f"{_type!r} cannot be used as an input type: {exc}") from exc
