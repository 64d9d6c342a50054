"""States of flow and task runs, and the one transition table.

A ``State`` is a type (``StateType``) plus a display name ("Late", "Cached", "Retrying"...),
a message, optional data and details. ``TRANSITIONS`` decides every proposal
``(current type, proposed type)``: accept it, reject it, or turn it into another state.
The Lua ``propose_state`` script is generated from this table, so it is the only copy.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from prefect_lite import _time
from prefect_lite.exceptions import CancelledRun, CrashedRun, FailedRun, PausedRun, UnfinishedRun


class StateType(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    # Compatibility members: a state of these types is stored under its canonical type
    # with the matching name (SUSPENDED -> PAUSED/"Suspended", and so on).
    SUSPENDED = "SUSPENDED"
    AWAITING_RETRY = "AWAITING_RETRY"
    RETRYING = "RETRYING"


ALIASES: dict[StateType, tuple[StateType, str]] = {
    StateType.SUSPENDED: (StateType.PAUSED, "Suspended"),
    StateType.AWAITING_RETRY: (StateType.SCHEDULED, "AwaitingRetry"),
    StateType.RETRYING: (StateType.RUNNING, "Retrying"),
}
CANONICAL_TYPES: tuple[StateType, ...] = tuple(t for t in StateType if t not in ALIASES)
TERMINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


def canonical(state_type: StateType) -> StateType:
    return ALIASES[state_type][0] if state_type in ALIASES else state_type


class StateDetails(BaseModel):
    """Facts a state carries beyond its type: timing, cache and pause information."""

    model_config = ConfigDict(extra="allow")

    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    scheduled_time: datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    pause_timeout: datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    run_input_keyset: dict[str, str] | None = None
    retriable: bool | None = None


class ResultRef(BaseModel):
    """Where a persisted result lives; the stored form of ``State.data``."""

    result_ref: Literal[1] = 1  # marks the stored dict as a reference
    storage: str
    key: str
    serializer: str = "pickle"


# Installed by prefect_lite.results so that State.result() can read persisted data
# without the model layer doing I/O itself.
result_loader: Callable[[ResultRef], Any] | None = None


class State(BaseModel):
    """A run's state. ``data`` holds the result (or exception) in memory, a ResultRef stored."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    type: StateType
    name: str | None = None
    message: str | None = None
    data: Any = None
    timestamp: datetime = Field(default_factory=_time.now)
    state_details: StateDetails = Field(default_factory=StateDetails)
    id: uuid.UUID = Field(default_factory=uuid.uuid4)

    def model_post_init(self, __context: Any) -> None:
        if self.type in ALIASES:
            self.type, alias_name = ALIASES[self.type]
            if self.name is None:
                self.name = alias_name
        if self.name is None:
            self.name = _DEFAULT_NAMES[self.type]

    @field_validator("data", mode="before")
    @classmethod
    def _read_ref(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("result_ref") == 1 and "key" in value:
            return ResultRef.model_validate(value)
        return value

    @field_serializer("data")
    def _write_ref(self, value: Any) -> Any:
        """Only references are stored or sent; in-memory values stay in this process."""
        return value.model_dump() if isinstance(value, ResultRef) else None

    def __repr__(self) -> str:
        msg = f", message={self.message!r}" if self.message else ""
        return f"{self.name}(type={self.type.value}{msg})"

    __str__ = __repr__

    def is_scheduled(self) -> bool:
        return self.type == StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type == StateType.PENDING

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type == StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type == StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_TYPES

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; raises the run's exception if it did not complete."""
        data = self.data
        if isinstance(data, ResultRef):
            if result_loader is None:
                raise RuntimeError("no result loader is installed")
            data = result_loader(data)
        if self.type == StateType.COMPLETED:
            return data
        if self.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            exc = data if isinstance(data, BaseException) else _exception_for(self)
            if raise_on_failure:
                raise exc
            return exc
        if self.type == StateType.PAUSED:
            exc2: Exception = PausedRun(self.message or "the run is paused")
        else:
            exc2 = UnfinishedRun(f"the run is {self.name}, it has no result yet")
        if raise_on_failure:
            raise exc2
        return exc2

    def to_record(self) -> dict[str, Any]:
        """The JSON-able stored form (data only when it is a ResultRef)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> State:
        return cls.model_validate(record)

    def fresh_copy(self, **update: Any) -> State:
        return self.model_copy(update={"id": uuid.uuid4(), "timestamp": _time.now(), **update})


def _exception_for(state: State) -> Exception:
    message = state.message or f"the run ended {state.name}"
    if state.type == StateType.CRASHED:
        return CrashedRun(message)
    if state.type == StateType.CANCELLED:
        return CancelledRun(message)
    return FailedRun(message)


_DEFAULT_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
}


# ---------------------------------------------------------------------------- constructors


def _make(state_type: StateType, name: str | None, kwargs: dict[str, Any]) -> State:
    details = kwargs.pop("state_details", None) or StateDetails()
    for key in list(kwargs):
        if key in StateDetails.model_fields:
            setattr(details, key, kwargs.pop(key))
    return State(type=state_type, name=name, state_details=details, **kwargs)


def Completed(**kwargs: Any) -> State:
    return _make(StateType.COMPLETED, kwargs.pop("name", None), kwargs)


def Failed(**kwargs: Any) -> State:
    return _make(StateType.FAILED, kwargs.pop("name", None), kwargs)


def Running(**kwargs: Any) -> State:
    return _make(StateType.RUNNING, kwargs.pop("name", None), kwargs)


def Pending(**kwargs: Any) -> State:
    return _make(StateType.PENDING, kwargs.pop("name", None), kwargs)


def Cancelled(**kwargs: Any) -> State:
    return _make(StateType.CANCELLED, kwargs.pop("name", None), kwargs)


def Cancelling(**kwargs: Any) -> State:
    return _make(StateType.CANCELLING, kwargs.pop("name", None), kwargs)


def Crashed(**kwargs: Any) -> State:
    return _make(StateType.CRASHED, kwargs.pop("name", None), kwargs)


def Scheduled(
    scheduled_time: datetime | None = None, name: str | None = None, **kwargs: Any
) -> State:
    kwargs["scheduled_time"] = _time.ensure_utc(scheduled_time) if scheduled_time else _time.now()
    return _make(StateType.SCHEDULED, name, kwargs)


def Late(scheduled_time: datetime | None = None, **kwargs: Any) -> State:
    return Scheduled(scheduled_time=scheduled_time, name="Late", **kwargs)


def AwaitingRetry(scheduled_time: datetime | None = None, **kwargs: Any) -> State:
    return Scheduled(scheduled_time=scheduled_time, name="AwaitingRetry", **kwargs)


def Retrying(**kwargs: Any) -> State:
    return _make(StateType.RUNNING, "Retrying", kwargs)


def Cached(**kwargs: Any) -> State:
    return _make(StateType.COMPLETED, "Cached", kwargs)


def TimedOut(**kwargs: Any) -> State:
    return _make(StateType.FAILED, "TimedOut", kwargs)


def Paused(
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime | None = None,
    reschedule: bool = False,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State:
    if timeout_seconds is not None and pause_expiration_time is not None:
        raise ValueError("give timeout_seconds or pause_expiration_time, not both")
    if timeout_seconds is not None:
        pause_expiration_time = _time.now() + timedelta(seconds=timeout_seconds)
    kwargs.update(
        pause_timeout=pause_expiration_time, pause_reschedule=reschedule, pause_key=pause_key
    )
    return _make(StateType.PAUSED, kwargs.pop("name", None), kwargs)


def Suspended(
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime | None = None,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State:
    return Paused(
        timeout_seconds=timeout_seconds,
        pause_expiration_time=pause_expiration_time,
        reschedule=True,
        pause_key=pause_key,
        name="Suspended",
        **kwargs,
    )


# ------------------------------------------------------------------------ transition table


class Outcome(enum.StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


@dataclass(frozen=True)
class Turn:
    """Accept the proposal as a different state (e.g. cancelling a queued run cancels it)."""

    type: StateType
    name: str
    message: str


Decision = Outcome | Turn

A, R = Outcome.ACCEPT, Outcome.REJECT
S, P, RU, PA, CI = (
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
)
CO, FA, CA, CR = StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED
_CANCEL_NOW = Turn(CA, "Cancelled", "Cancelled before it started running.")
_CANCEL_PAUSED = Turn(CA, "Cancelled", "Cancelled while paused.")

# TRANSITIONS[current][proposed]. ``None`` is a run without a state yet.
TRANSITIONS: dict[StateType | None, dict[StateType, Decision]] = {
    None: {S: A, P: A, RU: A, PA: A, CI: _CANCEL_NOW, CO: A, FA: A, CA: A, CR: A},
    # PENDING -> PENDING is rejected: of many workers claiming one run, exactly one wins.
    S: {S: A, P: A, RU: A, PA: R, CI: _CANCEL_NOW, CO: A, FA: A, CA: A, CR: A},
    P: {S: A, P: R, RU: A, PA: R, CI: _CANCEL_NOW, CO: A, FA: A, CA: A, CR: A},
    RU: {S: A, P: R, RU: R, PA: A, CI: A, CO: A, FA: A, CA: A, CR: A},
    PA: {S: A, P: R, RU: A, PA: R, CI: _CANCEL_PAUSED, CO: R, FA: A, CA: A, CR: A},
    CI: {S: R, P: R, RU: R, PA: R, CI: R, CO: A, FA: A, CA: A, CR: A},
    CO: {S: R, P: R, RU: R, PA: R, CI: R, CO: R, FA: R, CA: R, CR: R},
    FA: {S: R, P: R, RU: R, PA: R, CI: R, CO: R, FA: R, CA: R, CR: R},
    CA: {S: R, P: R, RU: R, PA: R, CI: R, CO: R, FA: R, CA: R, CR: R},
    CR: {S: R, P: R, RU: R, PA: R, CI: R, CO: R, FA: R, CA: R, CR: R},
}


def decide(current: StateType | None, proposed: StateType) -> Decision:
    """The table's answer for one proposal (aliases are looked up by canonical type)."""
    row = TRANSITIONS[canonical(current) if current is not None else None]
    return row[canonical(proposed)]


def transition_table_lua() -> str:
    """The table as a Lua literal ``{["FROM>TO"] = "A" | "R" | "T:TYPE:NAME:MESSAGE"}``."""
    entries = []
    for current, row in TRANSITIONS.items():
        for proposed, decision in row.items():
            key = f"{current.value if current else ''}>{proposed.value}"
            if isinstance(decision, Turn):
                value = f"T|{decision.type.value}|{decision.name}|{decision.message}"
            else:
                value = decision.value[0]
            entries.append(f'["{key}"]="{value}"')
    return "{" + ",".join(entries) + "}"
