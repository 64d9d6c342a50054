"""``prefect-lite deployment run NAME``: trigger a run of a deployment, optionally watch it.

    prefect-lite deployment run etl/nightly --param day=2024-01-01 --watch

Prints the new run's id. ``--watch`` streams the run's state changes and logs until it
ends (state changes arrive as they happen: each wait is a long poll on the run) and exits
0 if it COMPLETED, 1 otherwise. Bad parameters, unknown deployments and a wrong API key
are one line on stderr and exit status 1. Works the same over HTTP
(``PREFECT_LITE_API_URL``) as against local Redis.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import click

from prefect_lite import _time
from prefect_lite.cli._output import print_json, shown, shown_lines
from prefect_lite.cli.deploy import parse_params
from prefect_lite.client import get_client
from prefect_lite.deployments.start_checks import start_problem
from prefect_lite.exceptions import UserError
from prefect_lite.schemas import FlowRun, Log
from prefect_lite.states import State, StateType

WATCH_STEP_SECONDS = 0.5  # longest wait between log reads while the run goes on
LOG_PAGE = 1000
LATE_LOG_SECONDS = 2.0  # after the final state, how long logs shipped late are awaited
LATE_LOG_STEP = 0.25


@click.command("run")
@click.argument("name")
@click.option("--param", "-p", "params", multiple=True, help="Parameter name=value (repeatable).")
@click.option("--params", "params_json", default=None, help="Parameters as a JSON object.")
@click.option("--flow-run-name", default=None, help="Name of the new flow run.")
@click.option("--tag", "tags", multiple=True, help="Extra tag for the run (repeatable).")
@click.option("--idempotency-key", default=None, help="The same key gives the same run.")
@click.option("--work-queue", "-q", "work_queue", default=None, help="Work queue override.")
@click.option("--start-in", type=click.FloatRange(min=0), default=None,
              help="Schedule the run this many seconds from now.")  # fmt: skip
@click.option("--watch", is_flag=True, help="Stream states and logs until the run ends.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="With --watch: give up watching after this many seconds (exit 1).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (with --watch: "
              "the final run; states and logs go to stderr).")  # fmt: skip
def run(
    name: str,
    params: tuple[str, ...],
    params_json: str | None,
    flow_run_name: str | None,
    tags: tuple[str, ...],
    idempotency_key: str | None,
    work_queue: str | None,
    start_in: float | None,
    watch: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Create a flow run of a deployment (NAME: flow-name/deployment-name or an id)."""
    if timeout is not None and not watch:
        raise UserError("--timeout limits --watch; add --watch")
    parameters = parse_params(params, params_json)
    when = _time.now() + timedelta(seconds=start_in) if start_in is not None else None
    options: dict[str, Any] = {
        "parameters": parameters,
        "scheduled_time": when,
        "tags": list(tags) or None,
        "idempotency_key": idempotency_key,
        "work_queue_name": work_queue,
    }
    with get_client(sync_client=True) as client:
        deployment_id = _as_uuid(name)
        if deployment_id is not None:
            created: FlowRun = client.create_flow_run_from_deployment(
                deployment_id, name=flow_run_name, **options
            )
        else:
            created = client.create_flow_run_from_deployment_name(
                name, flow_run_name=flow_run_name, **options
            )
        if not watch:
            if as_json:
                print_json(created)
            else:
                click.echo(
                    f"Created flow run '{shown(created.name)}' of deployment '{shown(name)}'."
                )
                click.echo(str(created.id))
            return
        click.echo(
            f"Created flow run '{shown(created.name)}' ({created.id}) of deployment "
            f"'{shown(name)}'.",
            err=as_json,
        )
        problem = start_problem(client, created)
        if problem is not None:
            click.echo(f"Warning: {problem}", err=True)
        final = Watcher(client, created, err=as_json).follow(timeout)
    if as_json:
        print_json(final)
    state = final.state
    if state is None or not state.is_final():
        raise UserError(
            f"flow run '{final.name}' is still {_name(state)} after {timeout:g} s; it goes on "
            f"(follow it: prefect-lite flow-run logs {final.id} --follow)"
        )
    if state.type is not StateType.COMPLETED:
        detail = f": {state.message}" if state.message else ""
        raise UserError(f"flow run '{final.name}' ended {_name(state)}{detail}")
    click.echo(f"Flow run '{shown(final.name)}' finished: {_name(state)}.", err=as_json)


class Watcher:
    """Prints a run's states and logs in time order as they arrive."""

    def __init__(self, client: Any, run: FlowRun, err: bool = False) -> None:
        self.client = client
        self.run = run
        self.err = err
        self.states_shown = 0
        self.log_offset = 0

    def follow(self, timeout: float | None) -> FlowRun:
        """Until the run is final (then a short grace for late logs) or ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            logs = self._new_logs()  # then the states, so no log is newer than them
            self.show(self._new_states(refresh=bool(logs)), logs)
            if self.run.state is not None and self.run.state.is_final():
                self._late_logs()
                return self.run
            remaining = WATCH_STEP_SECONDS
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
                if remaining <= 0:
                    return self.run
            self.run = self.client.wait_for_flow_run_change(
                self.run.id, version=self.run.version, timeout=remaining
            )

    def _new_states(self, refresh: bool = False) -> list[State]:
        """States not shown yet (read when the run's version says there are some, or
        when ``refresh``: new logs may come from states the run record read earlier
        did not have yet)."""
        if self.run.version <= self.states_shown and not refresh:
            return []
        states: list[State] = self.client.read_flow_run_states(self.run.id)
        fresh = states[self.states_shown :]
        self.states_shown = len(states)
        return fresh

    def _new_logs(self) -> list[Log]:
        found: list[Log] = []
        while True:
            batch = self.client.read_logs(self.run.id, offset=self.log_offset, limit=LOG_PAGE)
            self.log_offset += len(batch)
            found += batch
            if len(batch) < LOG_PAGE:
                return found

    def _late_logs(self) -> None:
        """Logs a flow's process ships just after its final state (e.g. 'Finished in
        state ...'): keep reading until a read finds nothing new."""
        deadline = time.monotonic() + LATE_LOG_SECONDS
        while time.monotonic() < deadline:
            time.sleep(LATE_LOG_STEP)
            logs = self._new_logs()
            if not logs:
                return
            self.show([], logs)

    def show(self, states: list[State], logs: list[Log]) -> None:
        lines = [(s.timestamp, f"{_clock(s.timestamp)} | {'State':<8} | {_name(s)}"
                  + (f": {shown(s.message)}" if s.message else "")) for s in states]  # fmt: skip
        lines += [(log.timestamp, _log_line(log)) for log in logs]
        lines.sort(key=lambda line: line[0])
        for _, text in lines:
            click.echo(text, err=self.err)


def _log_line(log: Log) -> str:
    level = logging.getLevelName(log.level)
    return f"{_clock(log.timestamp)} | {level:<8} | {shown(log.name)} - {shown_lines(log.message)}"


def _clock(when: Any) -> str:
    return str(when.strftime("%H:%M:%S.%f")[:-3])


def _name(state: State | None) -> str:
    return "without a state" if state is None else shown(state.name or state.type.value)


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
