"""Deployments from flows: ``to_deployment``, ``deploy``, ``flow_from_source``.

A ``RunnerDeployment`` is everything the server stores about a deployment, built and
checked on this side (parameters against the flow signature, schedules) before anything is
sent; ``apply()`` registers it through the client's ``create_deployment``, which every way
of deploying ends in. A flow is anything with ``.name`` and ``.fn``; its entrypoint is the
function's file relative to the working directory (``path``) plus its name.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_lite import schedules as schedule_rules
from prefect_lite.client import get_client
from prefect_lite.deployments.schema import parameter_schema, validate_parameters
from prefect_lite.exceptions import (
    EntrypointError,
    MissingFlowError,
    NotAFlowError,
    ValidationError,
)
from prefect_lite.schemas import Schedule

SOURCE_ATTRIBUTE = "_deployment_source"
STEPS = "prefect_lite.deployments.steps"


class RunnerDeployment(BaseModel):
    """A deployment, ready to register (field names mirror the stored record)."""

    model_config = ConfigDict(extra="forbid")

    name: str
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
    start_timeout_seconds: float | None = None

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    def apply(self, work_pool_name: str | None = None) -> uuid.UUID:
        """Register (or update in place) this deployment; its id."""
        fields = self.model_dump(exclude={"name", "flow_name"})
        if work_pool_name:
            fields["work_pool_name"] = work_pool_name
        with get_client(sync_client=True) as client:
            record = client.create_deployment(self.flow_name, self.name, **fields)
        return uuid.UUID(str(record.id))

    @classmethod
    def from_flow(cls, flow: Any, name: str, **options: Any) -> RunnerDeployment:
        return to_deployment(flow, name, **options)

    @classmethod
    def from_entrypoint(
        cls, entrypoint: str, name: str, base_dir: str | Path | None = None, **options: Any
    ) -> RunnerDeployment:
        """Load the flow at ``entrypoint`` (relative to ``base_dir``, default the working
        directory) and build its deployment (``path`` defaults to ``base_dir``)."""
        base = Path(base_dir or Path.cwd()).resolve()
        flow = load_flow(entrypoint, base)
        options.setdefault("entrypoint", entrypoint)
        options.setdefault("path", str(base))
        return to_deployment(flow, name, **options)


def to_deployment(
    flow: Any,
    name: str,
    *,
    cron: str | Iterable[str] | None = None,
    interval: float | timedelta | Iterable[float | timedelta] | None = None,
    rrule: str | Iterable[str] | None = None,
    timezone: str | None = None,
    anchor_date: datetime | str | None = None,
    schedules: Iterable[Schedule | dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    paused: bool | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    enforce_parameter_schema: bool = True,
    work_pool_name: str | None = None,
    work_queue_name: str | None = None,
    job_variables: dict[str, Any] | None = None,
    concurrency_limit: int | dict[str, Any] | None = None,
    overlap: Literal["allow", "skip", "buffer_one", "cancel_other"] = "allow",
    entrypoint: str | None = None,
    path: str | None = None,
    pull_steps: list[dict[str, Any]] | None = None,
    start_timeout_seconds: float | None = None,
) -> RunnerDeployment:
    """Build a deployment of ``flow``; parameters and schedules are checked here."""
    flow_name, fn = _flow_parts(flow)
    source = getattr(flow, SOURCE_ATTRIBUTE, None) or {}
    if entrypoint is None:
        entrypoint = source.get("entrypoint") or _entrypoint_of(fn)
    if path is None:
        path = source.get("path", str(Path.cwd()))
    if pull_steps is None:
        pull_steps = list(source.get("pull_steps") or [])
    built = build_schedules(cron, interval, rrule, timezone, anchor_date, schedules)
    checked = validate_parameters(fn, dict(parameters or {}), flow_name)
    for schedule in built:
        schedule.parameters = validate_parameters(fn, schedule.parameters, flow_name)
    limit, strategy = _concurrency(concurrency_limit)
    return RunnerDeployment(
        name=name,
        flow_name=flow_name,
        entrypoint=entrypoint,
        path=path,
        pull_steps=pull_steps,
        parameters=checked,
        parameter_openapi_schema=parameter_schema(fn),
        enforce_parameter_schema=enforce_parameter_schema,
        tags=list(tags or []),
        description=description if description is not None else _doc(flow, fn),
        version=version if version is not None else getattr(flow, "version", None),
        work_pool_name=work_pool_name,
        work_queue_name=work_queue_name,
        schedules=built,
        paused=bool(paused),
        concurrency_limit=limit,
        collision_strategy=strategy,
        overlap=overlap,
        job_variables=dict(job_variables or {}),
        start_timeout_seconds=start_timeout_seconds,
    )


def deploy(
    *deployments: RunnerDeployment,
    work_pool_name: str | None = None,
    image: Any = None,
    build: bool = True,
    push: bool = True,
    print_next_steps_message: bool = True,
    ignore_warnings: bool = False,
) -> list[uuid.UUID]:
    """Register deployments to a work pool; their ids. Images are not supported: flows
    run from the deployment's ``path`` or pull steps."""
    if image is not None:
        raise ValidationError("prefect_lite does not build images; deploy without image=")
    for deployment in deployments:
        if not (work_pool_name or deployment.work_pool_name):
            raise ValidationError(
                f"deployment {deployment.full_name!r} has no work pool: pass work_pool_name="
            )
    ids = [d.apply(work_pool_name=work_pool_name) for d in deployments]
    if print_next_steps_message:
        for deployment, dep_id in zip(deployments, ids, strict=True):
            print(f"Deployment '{deployment.full_name}' registered (id {dep_id}).")
    return ids


def deploy_flow(
    flow: Any, name: str, work_pool_name: str | None = None, **options: Any
) -> uuid.UUID:
    """``flow.deploy(...)``: build and register one deployment."""
    print_message = options.pop("print_next_steps", True)
    image = options.pop("image", None)
    options.pop("build", None)
    options.pop("push", None)
    deployment = to_deployment(flow, name, work_pool_name=work_pool_name, **options)
    return deploy(deployment, image=image, print_next_steps_message=print_message)[0]


# ----------------------------------------------------------------------------- schedules


def build_schedules(
    cron: str | Iterable[str] | None,
    interval: float | timedelta | Iterable[float | timedelta] | None,
    rrule: str | Iterable[str] | None,
    timezone: str | None,
    anchor_date: datetime | str | None,
    schedules: Iterable[Schedule | dict[str, Any]] | None,
) -> list[Schedule]:
    """Schedules from the shorthand arguments (each may be a list) or ``schedules``."""
    out: list[Schedule] = []
    for value in _many(cron):
        out.append(schedule_rules.Cron(str(value), timezone=timezone))
    for value in _many(interval):
        out.append(schedule_rules.Interval(value, anchor_date=anchor_date, timezone=timezone))
    for value in _many(rrule):
        out.append(schedule_rules.RRule(str(value), timezone=timezone))
    if schedules is not None and out:
        raise ValidationError("give schedules= or cron/interval/rrule, not both")
    for item in schedules or []:
        schedule = item if isinstance(item, Schedule) else Schedule.model_validate(item)
        out.append(schedule_rules.checked(schedule))
    return out


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | int | float | timedelta):
        return [value]
    return list(value)


def _concurrency(value: int | dict[str, Any] | None) -> tuple[int | None, Any]:
    if isinstance(value, dict):
        return value.get("limit"), value.get("collision_strategy", "ENQUEUE")
    return value, "ENQUEUE"


# ----------------------------------------------------------------------------- flows


def _flow_parts(flow: Any) -> tuple[str, Any]:
    name, fn = getattr(flow, "name", None), getattr(flow, "fn", None)
    if not isinstance(name, str) or not callable(fn):
        raise NotAFlowError(f"{flow!r} is not a flow (decorate the function with @flow)")
    return name, fn


def _doc(flow: Any, fn: Any) -> str | None:
    described = getattr(flow, "description", None)
    return described if described is not None else inspect.getdoc(fn)


def _entrypoint_of(fn: Any) -> str:
    """``relative/file.py:function`` of the flow function, relative to the working directory."""
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:
        source = None
    if not source or not Path(source).exists():
        raise EntrypointError(
            f"cannot tell where {fn.__qualname__!r} is defined; define the flow in a file"
        )
    if "<locals>" in fn.__qualname__:
        raise EntrypointError(f"{fn.__qualname__!r} is defined inside a function; move it to "
                              "module level so a worker can import it")  # fmt: skip
    file = Path(source).resolve()
    try:
        shown = str(file.relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(file)
    return f"{shown}:{fn.__name__}"


def is_flow(obj: Any) -> bool:
    from prefect_lite.flows import Flow

    return isinstance(obj, Flow)


def load_flow(entrypoint: str, base_dir: str | Path | None = None) -> Any:
    """The flow at ``path/to/file.py:function`` (relative to ``base_dir``, default the
    working directory) or ``module:function`` (importable from ``base_dir``)."""
    from prefect_lite.flows import load_flow_from_entrypoint

    base = Path(base_dir or Path.cwd()).resolve()
    with _importable_from(base):
        return load_flow_from_entrypoint(entrypoint, base)


@contextlib.contextmanager
def _importable_from(base: Path) -> Iterator[None]:
    added = str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(base))


# ----------------------------------------------------------------------------- sources


def flow_from_source(
    source: str | Path, entrypoint: str, branch: str | None = None, commit: str | None = None
) -> Any:
    """Load a flow from a local directory or a git repository (URL, ``file://`` too).

    The returned flow remembers where it came from, so deploying it stores the right
    ``path`` (local) or pull steps (git clone at the branch/commit) and entrypoint.
    """
    from prefect_lite.deployments import steps

    text = str(source)
    if _is_git_url(text):
        clone_args: dict[str, Any] = {"id": "clone", "repository": text}
        if branch:
            clone_args["branch"] = branch
        if commit:
            clone_args["commit"] = commit
        directory = steps.git_clone(text, branch=branch, commit=commit)["directory"]
        flow = load_flow(entrypoint, directory)
        info: dict[str, Any] = {
            "entrypoint": entrypoint,
            "path": None,
            "pull_steps": [
                {f"{STEPS}.git_clone": clone_args},
                {f"{STEPS}.set_working_directory": {"directory": "{{ clone.directory }}"}},
            ],
        }
    else:
        base = Path(text).expanduser().resolve()
        if not base.is_dir():
            raise MissingFlowError(f"source {text!r} is neither a directory nor a git URL")
        flow = load_flow(entrypoint, base)
        info = {"entrypoint": entrypoint, "path": str(base), "pull_steps": []}
    with contextlib.suppress(AttributeError, TypeError):
        setattr(flow, SOURCE_ATTRIBUTE, info)
    return flow


def _is_git_url(text: str) -> bool:
    return text.endswith(".git") or text.startswith(
        ("http://", "https://", "git://", "ssh://", "git@", "file://")
    )
