"""``prefect-lite flow-run ...``: list, inspect, follow and resume flow runs."""

from __future__ import annotations

import uuid
from typing import Any

import click

from prefect_lite.cli._errors import fail
from prefect_lite.cli._output import (
    fmt_time,
    json_line,
    print_json,
    print_record,
    print_table,
    shown,
    shown_lines,
)
from prefect_lite.client import get_client
from prefect_lite.states import StateType


def parse_run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        fail(f"{value!r} is not a flow run id (expected a UUID)")
        raise


@click.group("flow-run")
def flow_run() -> None:
    """Inspect and control flow runs."""


@flow_run.command("ls")
@click.option("--state", "states", multiple=True, help="State type, e.g. COMPLETED (repeatable).")
@click.option("--flow", "flow_name", default=None, help="Only runs of this flow.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(states: tuple[str, ...], flow_name: str | None, limit: int, as_json: bool) -> None:
    """List flow runs, newest first."""
    wanted: list[StateType] = []
    for s in states:
        try:
            wanted.append(StateType(s.upper()))
        except ValueError:
            fail(f"unknown state {s!r}; choose from {', '.join(t.value for t in StateType)}")
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(states=wanted or None, flow_name=flow_name, limit=limit)
    if as_json:
        print_json(runs)
        return
    print_table(
        "Flow runs",
        ["ID", "Flow", "Name", "State", "Expected start", "Run count"],
        [
            [r.id, r.flow_name, r.name, r.state_name, fmt_time(r.expected_start_time), r.run_count]
            for r in runs
        ],
    )


@flow_run.command("inspect")
@click.argument("flow_run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(flow_run_id: str, as_json: bool) -> None:
    """Show one flow run."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(parse_run_id(flow_run_id))
    if as_json:
        print_json(run)
    else:
        print_record(f"Flow run {run.id}", run)


@flow_run.command("resume")
@click.argument("flow_run_id")
@click.option(
    "--input",
    "run_input",
    default=None,
    help="Input for a run that waits for it, as JSON (e.g. '{\"approved\": true}').",
)
def resume(flow_run_id: str, run_input: str | None) -> None:
    """Resume a paused or suspended flow run."""
    import json

    from prefect_lite.flow_runs import resume_flow_run

    run_id = parse_run_id(flow_run_id)
    value: Any = None
    if run_input is not None:
        try:
            value = json.loads(run_input)
        except json.JSONDecodeError as exc:
            fail(f"--input is not valid JSON: {exc}")
    try:
        resume_flow_run(run_id, run_input=value)
    except RuntimeError as exc:
        fail(str(exc))
    click.echo(f"Resumed flow run {run_id}.")


FOLLOW_POLL_SECONDS = 0.5


@flow_run.command("logs")
@click.argument("flow_run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new logs until the run ends.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def logs(flow_run_id: str, follow: bool, as_json: bool) -> None:
    """Print a flow run's logs, oldest first."""
    import time

    run_id = parse_run_id(flow_run_id)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)  # an unknown id is one clear error
        offset = 0
        while True:
            batch = client.read_logs(run_id, offset=offset, limit=1000)
            offset += len(batch)
            for log in batch:
                click.echo(json_line(log) if as_json else _log_line(log))
            if len(batch) == 1000:
                continue
            if not follow or (run.state is not None and run.state.is_final()):
                return
            time.sleep(FOLLOW_POLL_SECONDS)
            run = client.read_flow_run(run_id)


def _log_line(log: Any) -> str:
    import logging

    when = log.timestamp.strftime("%H:%M:%S.%f")[:-3]
    level = logging.getLevelName(log.level)
    return f"{when} | {level:<8} | {shown(log.name)} - {shown_lines(log.message)}"


@flow_run.command("cancel")
@click.argument("flow_run_id")
@click.option("--message", "-m", default=None, help="Why (recorded in the state).")
def cancel(flow_run_id: str, message: str | None) -> None:
    """Cancel a flow run: at once if it has not started, else its worker stops it."""
    with get_client(sync_client=True) as client:
        answer = client.cancel_flow_run(parse_run_id(flow_run_id), message=message)
    state = shown(answer.state.name) if answer.state is not None else "unknown"
    click.echo(f"Flow run {flow_run_id} is {state}.")
