"""Task run changes in one script call, encoded for speed.

The engine's recorder sends thousands of task run changes per second, so this is a hot
path of the process that runs the flow (it shares the interpreter with the flow's own
code). Changes are grouped per task run (each run's changes keep their order; different
runs are independent) and sent as one ``EVALSHA``: a JSON array of groups plus every state
and record JSON as its own script argument, so nothing is escaped twice and the script
decodes only the small index array. A run created and finished within the batch is
written with a handful of commands instead of one script step per state.

States and records are encoded with orjson from the models' fields instead of pydantic's
serializer (a third of the cost); ``encode_state``/``encode_record`` give JSON that parses
to the same model as ``model_dump_json`` (a test compares them over many shapes).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from pydantic import BaseModel
from redis.exceptions import NoScriptError

from prefect_lite.schemas import TaskRun
from prefect_lite.states import ResultRef, State, StateType, canonical
from prefect_lite.storage import keys, scripts
from prefect_lite.storage.connection import get_redis, translate_errors
from prefect_lite.storage.runs import RECORD_EXCLUDE

TaskChange = tuple[str, "uuid.UUID | str", State, "TaskRun | None", bool]

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
_CANONICAL = {t: canonical(t).value for t in StateType}
_plain_models: dict[type, bool] = {}
_FIRST_BLOB = 5  # ARGV index of the first JSON blob (after the groups and key parts)


def _is_plain(cls: type[BaseModel]) -> bool:
    """True when a model dumps as its field values (no custom serializers, no aliases)."""
    plain = _plain_models.get(cls)
    if plain is None:
        decorators = cls.__pydantic_decorators__
        plain = not (
            decorators.field_serializers
            or decorators.model_serializers
            or any(f.serialization_alias or f.alias for f in cls.model_fields.values())
        )
        _plain_models[cls] = plain
    return plain


def _default(obj: Any) -> Any:
    """orjson's fallback: nested models as dicts of their set values, sets as lists."""
    if isinstance(obj, BaseModel):
        if isinstance(obj, State):
            return _state_dict(obj)
        if _is_plain(type(obj)):
            extra = obj.__pydantic_extra__
            fields = {**obj.__dict__, **extra} if extra else obj.__dict__
            return {k: v for k, v in fields.items() if v is not None}
        return obj.model_dump(mode="json", exclude_none=True)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _state_dict(state: State) -> dict[str, Any]:
    """A state's fields, ``None`` left out (the model's default); ``data`` only as a
    result reference (in-memory values stay in this process, as ``to_record`` does)."""
    out = {k: v for k, v in state.__dict__.items() if v is not None}
    data = out.get("data")
    if data is not None:
        if isinstance(data, ResultRef):
            out["data"] = data.model_dump()
        else:
            del out["data"]
    return out


def encode_state(state: State) -> bytes:
    """The stored JSON of a state: parses to the same ``State`` as ``to_record()``.

    A value orjson cannot write (e.g. an integer beyond 64 bits in the details) takes
    pydantic's serializer, which can."""
    try:
        return orjson.dumps(_state_dict(state), default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return state.model_dump_json().encode()


def encode_record(run: TaskRun) -> bytes:
    """The stored JSON of a task run record, without the fields the run hash keeps."""
    fields = {k: v for k, v in run.__dict__.items() if k not in RECORD_EXCLUDE}
    try:
        return orjson.dumps(fields, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return run.model_dump_json(exclude=RECORD_EXCLUDE).encode()


def apply_task_changes(changes: Sequence[TaskChange]) -> list[str]:
    """Apply task run creates/proposals in ONE script call; a status per change, in order.

    Groups (script argument 1, a JSON array), each the changes of one run in order:
    ``["c"|"p", run id, [state arg index...], [type...], [name...], [timestamp...],
    [force...], (flow run id or "", record arg index, score)]``. Arguments 2-4 are the
    key parts (``keys.task_run_key_parts``); the state and record JSONs follow them.
    """
    if not changes:
        return []
    groups: list[list[Any]] = []
    by_run: dict[str, list[Any]] = {}
    slots: list[tuple[list[Any], int]] = []  # (group, position in it) per change
    blobs: list[bytes] = []
    add_blob = blobs.append
    for op, run_id, state, run, force in changes:
        rid = str(run_id)
        group = by_run.get(rid)
        creating = op == "create" and run is not None
        if group is None or creating:
            group = ["p", rid, [], [], [], [], []]
            if creating:
                assert run is not None
                when = run.expected_start_time or run.created
                add_blob(encode_record(run))
                group[0] = "c"
                group += [
                    str(run.flow_run_id) if run.flow_run_id else "",
                    len(blobs) + _FIRST_BLOB - 1,
                    repr(when.timestamp()),
                ]
            groups.append(group)
            by_run[rid] = group
        fields = state.__dict__
        slots.append((group, len(group[2])))
        add_blob(encode_state(state))
        group[2].append(len(blobs) + _FIRST_BLOB - 1)
        group[3].append(_CANONICAL[fields["type"]])
        group[4].append(fields["name"] or "")
        group[5].append(repr(fields["timestamp"].timestamp()))
        group[6].append("1" if force else "")
    out = _call([orjson.dumps(groups), *keys.task_run_key_parts(), *blobs])
    offsets: dict[int, int] = {}
    position = 0
    for group in groups:
        offsets[id(group)] = position
        position += len(group[2])
    return [out[offsets[id(group)] + i] for group, i in slots]


def _call(args: list[Any]) -> list[str]:
    r = get_redis()
    sha = scripts.sha("task_batch")
    run: Callable[[], Any] = lambda: r.execute_command("EVALSHA", sha, 0, *args)  # noqa: E731
    with translate_errors():
        try:
            raw = run()
        except NoScriptError:
            scripts.load_all(r)
            raw = run()
    return [str(s) for s in raw]
