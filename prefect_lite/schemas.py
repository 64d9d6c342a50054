"""Records that cross Redis or HTTP.

Field names mirror Prefect's REST objects so ported code reads the same. Every stored
record carries ``schema_version`` so a later shape can read an older one.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import deque
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_lite import _time
from prefect_lite.exceptions import PayloadTooLarge, ValidationError
from prefect_lite.states import ResultRef, State, StateType

SCHEMA_VERSION = 1


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


class Record(BaseModel):
    """Base of stored records: an id, timestamps and a schema version."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_version: int = SCHEMA_VERSION
    id: uuid.UUID = Field(default_factory=_uuid)
    created: datetime = Field(default_factory=_time.now)
    updated: datetime = Field(default_factory=_time.now)


class Flow(Record):
    name: str
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(default_factory=dict)


class EmpiricalPolicy(BaseModel):
    """Retry policy of a run, as the orchestrator sees it."""

    retries: int = 0
    retry_delay: float | list[float] = 0.0
    max_retries: int = 0  # kept for Prefect parity; ``retries`` is authoritative


class RunInputRef(BaseModel):
    input_type: Literal["task_run", "parameter", "constant"] = "task_run"
    id: uuid.UUID | None = None
    name: str | None = None


class FlowRun(Record):
    name: str
    flow_id: uuid.UUID
    flow_name: str | None = None
    deployment_id: uuid.UUID | None = None
    deployment_version: str | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    parent_task_run_id: uuid.UUID | None = None
    parent_flow_run_id: uuid.UUID | None = None
    empirical_policy: EmpiricalPolicy = Field(default_factory=EmpiricalPolicy)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    auto_scheduled: bool = False
    expected_start_time: datetime | None = None
    # Maintained by propose_state:
    state: State | None = None
    state_type: StateType | None = None
    state_name: str | None = None
    version: int = 0
    run_count: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    worker_name: str | None = None
    infrastructure_pid: int | None = None

    @property
    def total_run_time(self) -> float:
        if self.start_time is None:
            return 0.0
        end = self.end_time or _time.now()
        return max(0.0, (end - self.start_time).total_seconds())


class TaskRun(Record):
    name: str
    flow_run_id: uuid.UUID | None = None
    task_key: str
    dynamic_key: str = "0"
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    task_version: str | None = None
    tags: list[str] = Field(default_factory=list)
    task_inputs: dict[str, list[RunInputRef]] = Field(default_factory=dict)
    empirical_policy: EmpiricalPolicy = Field(default_factory=EmpiricalPolicy)
    expected_start_time: datetime | None = None
    state: State | None = None
    state_type: StateType | None = None
    state_name: str | None = None
    version: int = 0
    run_count: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None


class Schedule(BaseModel):
    """One schedule of a deployment: exactly one of cron, interval, rrule."""

    id: uuid.UUID = Field(default_factory=_uuid)
    slug: str | None = None
    active: bool = True
    cron: str | None = None
    interval: float | None = None  # seconds
    anchor_date: datetime | None = None
    rrule: str | None = None
    timezone: str = "UTC"
    day_or: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)
    catchup: Literal["skip", "latest", "all"] = "skip"
    max_catchup: int = 100
    jitter_seconds: float = 0


class Deployment(Record):
    name: str
    flow_id: uuid.UUID
    flow_name: str
    entrypoint: str | None = None
    path: str | None = None
    pull_steps: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_openapi_schema: dict[str, Any] = Field(default_factory=dict)
    enforce_parameter_schema: bool = True
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    version: str | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    schedules: list[Schedule] = Field(default_factory=list)
    paused: bool = False
    concurrency_limit: int | None = None
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"
    overlap: Literal["allow", "skip", "buffer_one", "cancel_other"] = "allow"
    job_variables: dict[str, Any] = Field(default_factory=dict)
    start_timeout_seconds: float | None = None  # not started by then: TimedOut

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


class WorkPool(Record):
    name: str
    type: str = "process"
    description: str | None = None
    concurrency_limit: int | None = None
    paused: bool = False
    default_queue_name: str = "default"


class WorkQueue(Record):
    name: str
    work_pool_name: str
    description: str | None = None
    priority: int = 1
    concurrency_limit: int | None = None
    paused: bool = False


class Worker(Record):
    name: str
    work_pool_name: str
    work_queue_names: list[str] = Field(default_factory=list)
    host: str | None = None
    pid: int | None = None
    started: datetime = Field(default_factory=_time.now)
    last_heartbeat_time: datetime = Field(default_factory=_time.now)
    status: Literal["ONLINE", "OFFLINE"] = "ONLINE"
    limit: int | None = None
    running: int = 0  # flow runs it executes now (as of its last heartbeat)


class WorkQueueStatus(BaseModel):
    """A work queue with its usage: runs queued (admitted, unclaimed) and holding a slot."""

    name: str
    priority: int
    concurrency_limit: int | None = None
    paused: bool = False
    queued: int = 0
    active: int = 0


class WorkPoolStatus(BaseModel):
    """A work pool, its queues in priority order, its workers and its usage."""

    pool: WorkPool
    queues: list[WorkQueueStatus] = Field(default_factory=list)
    workers: list[Worker] = Field(default_factory=list)
    active: int = 0  # runs holding a pool slot (queued, pending, running, cancelling)
    waiting: int = 0  # due runs a concurrency limit holds back


class LeaseRenewal(BaseModel):
    """One flow run lease to renew: the run and the token its claim set."""

    flow_run_id: uuid.UUID
    lease: str


class Log(BaseModel):
    name: str
    level: int
    message: str
    timestamp: datetime = Field(default_factory=_time.now)
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # ``extra={...}`` of the log call


class Variable(Record):
    name: str
    value: Any = None
    tags: list[str] = Field(default_factory=list)


class BlockDocument(Record):
    name: str
    block_type_slug: str
    data: dict[str, Any] = Field(default_factory=dict)
    block_schema: dict[str, Any] = Field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``slug/name``, the form ``Block.load`` and the CLI accept."""
        return f"{self.block_type_slug}/{self.name}"


class BlockType(Record):
    """A kind of block, recorded the first time a document of it is saved."""

    slug: str
    name: str
    description: str | None = None
    block_schema: dict[str, Any] = Field(default_factory=dict)


# -- Rules for variable and block names and values, shared by the SDK (early, clear errors)
# and the API handlers (the same rules for HTTP callers). They follow Prefect's.
MAX_VARIABLE_NAME_LENGTH = 255
MAX_VARIABLE_VALUE_LENGTH = 5000  # characters of compact JSON, Prefect's limit
MAX_JSON_DEPTH = 64  # nesting levels; deeper values cannot round-trip through our records
_VARIABLE_NAME = re.compile(r"[a-z0-9_-]+")
_SLUG = re.compile(r"[a-z0-9-]+")
JSON_TYPES_HINT = "str, int, float, bool, None, or lists and dicts (with str keys) of those"


def check_variable_name(name: object) -> str:
    """Lowercase letters, digits, underscores and dashes; at most 255 characters."""
    if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
        raise ValidationError(
            f"invalid variable name {name!r}: use lowercase letters, digits, underscores and dashes"
        )
    if len(name) > MAX_VARIABLE_NAME_LENGTH:
        raise ValidationError(
            f"variable name is {len(name)} characters long; the limit is {MAX_VARIABLE_NAME_LENGTH}"
        )
    return name


def check_slug(value: object, what: str) -> str:
    """Block type slugs and block document names: lowercase letters, digits and dashes."""
    if isinstance(value, str) and len(value) > MAX_VARIABLE_NAME_LENGTH:
        raise ValidationError(
            f"{what} is {len(value)} characters long; the limit is {MAX_VARIABLE_NAME_LENGTH}"
        )
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise ValidationError(f"invalid {what} {value!r}: use lowercase letters, digits and dashes")
    return value


MAX_PAGE = 10_000


def check_paging(limit: int, offset: int) -> None:
    """``limit`` in 1..10,000 and ``offset`` in 0..2**31 (Redis refuses larger numbers).

    Every ``limit`` of the API is checked here (or against a smaller maximum of its own):
    out of range is a ``ValidationError`` (422) saying the range, never clamped, so a
    ``limit=0`` that once meant "everything" is refused rather than read as anything."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    if not 0 <= offset <= 2**31:
        raise ValidationError(f"offset must be between 0 and {2**31}, not {offset}")


MAX_TAGS = 100
MAX_TAG_LENGTH = 255


def check_tags(tags: object, what: str = "tags") -> list[str]:
    """A list of at most ``MAX_TAGS`` strings of at most ``MAX_TAG_LENGTH`` characters."""
    if tags is None:
        return []
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise ValidationError(f"{what} must be a list of strings, not {str(tags)[:200]!r}")
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"{what} has {len(tags)} tags; the limit is {MAX_TAGS}")
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(
                f"{what}: a tag is {len(tag)} characters long; the limit is {MAX_TAG_LENGTH}"
            )
    return list(tags)


def json_value_problem(value: Any, where: str = "value") -> str | None:
    """Why ``value`` is not plain JSON (None if it is): the first offending item, by path."""
    pending: deque[tuple[Any, str, int]] = deque([(value, where, 0)])
    while pending:
        item, path, depth = pending.popleft()
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{path} is {item!r}, which JSON cannot represent"
            continue
        if not isinstance(item, list | dict):
            return f"{path} is of type {type(item).__name__}, not a JSON value"
        if depth >= MAX_JSON_DEPTH:
            return f"{path} nests deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, list):
            pending.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
            continue
        for key, child in item.items():
            if not isinstance(key, str):
                return f"{path} has the non-string key {key!r}"
            pending.append((child, f"{path}[{key!r}]", depth + 1))
    return None


def check_variable_value(name: str, value: Any) -> Any:
    """JSON values only, at most ``MAX_VARIABLE_VALUE_LENGTH`` characters as compact JSON."""
    problem = json_value_problem(value)
    if problem is not None:
        raise ValidationError(f"variable {name!r}: {problem}; use {JSON_TYPES_HINT}")
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    if size > MAX_VARIABLE_VALUE_LENGTH:
        raise PayloadTooLarge(
            f"variable {name!r}: the value is {size} characters as JSON; the limit is "
            f"{MAX_VARIABLE_VALUE_LENGTH} (store larger data in a block or a result)"
        )
    return value


class RunInput(BaseModel):
    """A stored flow run input (pause/resume and send/receive)."""

    flow_run_id: uuid.UUID
    key: str
    value: Any = None
    sender: str | None = None
    created: datetime = Field(default_factory=_time.now)


class Event(BaseModel):
    """Something that happened to a resource (state changes, worker lifecycle...)."""

    id: uuid.UUID = Field(default_factory=_uuid)
    occurred: datetime = Field(default_factory=_time.now)
    event: str
    resource: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)


class OrchestrationResult(BaseModel):
    """What ``propose_state`` answers: the run's state after the proposal."""

    status: Literal["ACCEPT", "REJECT", "ABORT"]
    state: State | None = None
    version: int = 0
    details: str | None = None


class CacheRecord(BaseModel):
    """A cache entry (or a committed transaction's marker): where the result is, and until
    when it may be reused (``expiration`` None: forever). Checked against ``_time.now()``
    by the reader, so a fake clock expires it. ``inline`` repeats a small serialized
    result, so a cache hit needs one read instead of two."""

    key: str
    result: ResultRef | None = None
    expiration: datetime | None = None
    created: datetime = Field(default_factory=_time.now)
    inline: str | None = None
