"""``prefect-lite deploy``: register a flow (``FILE:FUNC``) or a ``prefect_lite.yaml``.

    prefect-lite deploy flows.py:etl --name nightly --pool default --cron "0 2 * * *" \\
        --timezone Europe/Berlin --param day=yesterday
    prefect-lite deploy --all                # every deployment in prefect_lite.yaml

Everything is checked before anything is written: a bad entrypoint, schedule, parameter or
work pool is one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from prefect_lite.exceptions import UserError


def _stop(message: str) -> NoReturn:
    """One line on stderr, exit status 1."""
    raise UserError(message)


def parse_params(pairs: tuple[str, ...], params_json: str | None) -> dict[str, Any]:
    """``--params JSON`` then ``--param k=v`` (values are JSON when they parse, else text)."""
    values: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            _stop(f"--params is not valid JSON: {exc.msg}")
        if not isinstance(loaded, dict):
            _stop("--params must be a JSON object")
        values.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _stop(f"--param {pair!r} must look like name=value")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


@click.command("deploy")
@click.argument("entrypoint", required=False)
@click.option("--name", "-n", "names", multiple=True, help="Deployment name (with --all: pick).")
@click.option("--pool", "-p", "pool", default=None, help="Work pool that runs it.")
@click.option("--queue", "-q", "queue", default=None, help="Work queue of the pool.")
@click.option("--cron", default=None, help='Cron schedule, e.g. "0 2 * * *".')
@click.option("--interval", type=float, default=None, help="Interval schedule, in seconds.")
@click.option("--rrule", default=None, help='RRule schedule, e.g. "FREQ=WEEKLY;BYDAY=MO".')
@click.option("--timezone", default=None, help="IANA time zone of the schedule (default UTC).")
@click.option("--anchor-date", default=None, help="Interval start (ISO 8601).")
@click.option("--catchup", type=click.Choice(["skip", "latest", "all"]), default=None)
@click.option("--max-catchup", type=int, default=None, help="With --catchup all: at most N.")
@click.option("--jitter", type=float, default=None, help="Delay runs by up to N seconds.")
@click.option("--param", "params", multiple=True, help="Parameter name=value (repeatable).")
@click.option("--params", "params_json", default=None, help="Parameters as a JSON object.")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--description", default=None)
@click.option("--version", "version", default=None)
@click.option("--paused", is_flag=True, help="Register it paused.")
@click.option("--concurrency-limit", type=int, default=None)
@click.option(
    "--start-timeout",
    "start_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="A run not started this many seconds after its scheduled time ends TimedOut.",
)
@click.option("--collision-strategy", type=click.Choice(["ENQUEUE", "CANCEL_NEW"]), default=None)
@click.option(
    "--overlap", type=click.Choice(["allow", "skip", "buffer_one", "cancel_other"]), default=None
)
@click.option("--all", "deploy_all", is_flag=True, help="Every deployment in the project file.")
@click.option(
    "--file", "project_file", default="prefect_lite.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="Project file for --all.",
)  # fmt: skip
def deploy(
    entrypoint: str | None,
    names: tuple[str, ...],
    pool: str | None,
    queue: str | None,
    cron: str | None,
    interval: float | None,
    rrule: str | None,
    timezone: str | None,
    anchor_date: str | None,
    catchup: str | None,
    max_catchup: int | None,
    jitter: float | None,
    params: tuple[str, ...],
    params_json: str | None,
    tags: tuple[str, ...],
    description: str | None,
    version: str | None,
    paused: bool,
    concurrency_limit: int | None,
    start_timeout: float | None,
    collision_strategy: str | None,
    overlap: str | None,
    deploy_all: bool,
    project_file: str,
) -> None:
    """Register a flow as a deployment: ENTRYPOINT is path/to/file.py:function."""
    if deploy_all:
        if entrypoint:
            _stop("give an ENTRYPOINT or --all, not both")
        _deploy_project(project_file, list(names), pool)
        return
    if not entrypoint:
        _stop("give an ENTRYPOINT (path/to/file.py:function) or --all")
    if len(names) != 1:
        _stop("give the deployment exactly one --name")
    if not pool:
        _stop("give the work pool with --pool")
    if sum(x is not None for x in (cron, interval, rrule)) > 1:
        _stop("give at most one of --cron, --interval, --rrule")
    if anchor_date and interval is None:
        _stop("--anchor-date goes with --interval")
    schedule = _schedule(cron, interval, rrule, timezone, anchor_date, catchup, max_catchup, jitter)
    limit: Any = concurrency_limit
    if collision_strategy:
        if concurrency_limit is None:
            _stop("--collision-strategy goes with --concurrency-limit")
        limit = {"limit": concurrency_limit, "collision_strategy": collision_strategy}
    from prefect_lite.deployments import RunnerDeployment
    from prefect_lite.deployments import deploy as register

    built = RunnerDeployment.from_entrypoint(
        entrypoint,
        names[0],
        schedules=[schedule] if schedule else [],
        parameters=parse_params(params, params_json),
        tags=list(tags),
        description=description,
        version=version,
        paused=paused,
        work_pool_name=pool,
        work_queue_name=queue,
        concurrency_limit=limit,
        overlap=overlap or "allow",
        start_timeout_seconds=start_timeout,
    )
    register(built, print_next_steps_message=True)


def _schedule(
    cron: str | None,
    interval: float | None,
    rrule: str | None,
    timezone: str | None,
    anchor_date: str | None,
    catchup: str | None,
    max_catchup: int | None,
    jitter: float | None,
) -> Any:
    from prefect_lite import schedules

    extra: dict[str, Any] = {}
    if catchup:
        extra["catchup"] = catchup
    if max_catchup is not None:
        extra["max_catchup"] = max_catchup
    if jitter is not None:
        extra["jitter_seconds"] = jitter
    if cron is None and interval is None and rrule is None:
        if extra or timezone:
            _stop("--timezone, --catchup, --max-catchup and --jitter need a schedule")
        return None
    anchor: datetime | None = None
    if anchor_date:
        try:
            anchor = datetime.fromisoformat(anchor_date)
        except ValueError:
            _stop(f"--anchor-date {anchor_date!r} is not an ISO 8601 date/time")
    return schedules.construct_schedule(
        cron=cron, interval=interval, rrule=rrule, timezone=timezone, anchor_date=anchor, **extra
    )


def _deploy_project(project_file: str, names: list[str], pool: str | None) -> None:
    from prefect_lite.deployments import deploy_all

    if not Path(project_file).is_file():
        _stop(f"no {project_file} here; write one with `prefect-lite init` or deploy an ENTRYPOINT")
    deploy_all(project_file, names or None, work_pool_name=pool)


@click.command("init")
@click.option("--name", default=None, help="Project name (default: the directory's name).")
@click.option("--recipe", type=click.Choice(["local", "git"]), default=None)
def init(name: str | None, recipe: str | None) -> None:
    """Write a starter prefect_lite.yaml in this directory (never over an existing one)."""
    from prefect_lite.deployments import initialize_project

    created = initialize_project(name=name, recipe=recipe)
    if not created:
        _stop("prefect_lite.yaml already exists here; edit it, then `prefect-lite deploy --all`")
    click.echo(f"Wrote {created[0]}; edit it, then run `prefect-lite deploy --all`.")
