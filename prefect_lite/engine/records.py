"""Building the engine's own records (states, task runs) without validation.

Every task run makes a ``TaskRun`` and three ``State``s. Validating them costs more than
the rest of the engine together, and the engine fills every field itself with values of
the right type, so it builds them the way ``model_construct`` would, minus the per-call
introspection of default factories that makes ``model_construct`` slow. A test compares
the result with validated models, so a pydantic upgrade that changes the internals fails
loudly rather than silently.

``fast_uuid4()`` is a version-4 UUID from ``random.getrandbits`` (reseeded after fork by
the ``random`` module): run ids need uniqueness, not secrecy, and it skips a syscall.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from prefect_lite import _time
from prefect_lite.schemas import TaskRun
from prefect_lite.states import State, StateDetails, StateType

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__
_getrandbits = random.getrandbits
_VERSION_4 = 0x4000 << 64 | 0x8000 << 48
_VERSION_MASK = ~(0xF000 << 64 | 0xC000 << 48)
_SAFE = uuid.SafeUUID.unknown


def fast_uuid4() -> uuid.UUID:
    value = object.__new__(uuid.UUID)
    _set(value, "int", _getrandbits(128) & _VERSION_MASK | _VERSION_4)
    _set(value, "is_safe", _SAFE)
    return value


class Builder(Generic[M]):
    """``Builder(Model)(**values)``: a ``Model`` from trusted values, defaults filled in."""

    def __init__(self, model: type[M], factories: dict[str, Callable[[], Any]]) -> None:
        self.model = model
        self.template: dict[str, Any] = {}  # every field, in declaration order
        self.factories: dict[str, Callable[[], Any]] = {}
        for name, field in model.model_fields.items():
            self.template[name] = None if field.is_required() else field.default
            if field.default_factory is not None:
                self.factories[name] = factories.get(name, field.default_factory)  # type: ignore[arg-type]
        self.extra_allowed = model.model_config.get("extra") == "allow"

    def __call__(self, **values: Any) -> M:
        data = dict(self.template)
        for name, factory in self.factories.items():
            if name not in values:
                data[name] = factory()
        data.update(values)
        obj = self.model.__new__(self.model)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", set(values))
        _set(obj, "__pydantic_extra__", {} if self.extra_allowed else None)
        _set(obj, "__pydantic_private__", None)
        return obj


def make_state(
    state_type: StateType,
    name: str,
    message: str | None = None,
    data: Any = None,
    details: StateDetails | None = None,
) -> State:
    """A state of a canonical type with its display name (what ``State(...)`` would give).

    Without ``details`` the state shares one empty ``StateDetails`` (the engine's
    intermediate states: Pending, Running), which nothing may mutate.
    """
    obj = _new_state(State)
    _set(
        obj,
        "__dict__",
        {
            "type": state_type,
            "name": name,
            "message": message,
            "data": data,
            "timestamp": _now(),
            "state_details": _EMPTY_DETAILS if details is None else details,
            "id": fast_uuid4(),
        },
    )
    _set(obj, "__pydantic_fields_set__", {"type", "name", "message", "data"})
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


state_details = Builder(StateDetails, {})
task_run = Builder(TaskRun, {"id": fast_uuid4})
_EMPTY_DETAILS = state_details()
_new_state = State.__new__
_now = _time.now
