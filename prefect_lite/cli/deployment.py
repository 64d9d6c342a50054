"""``prefect-lite deployment ...``: list, inspect, run, pause/resume, delete, schedules.

A deployment is named ``flow-name/deployment-name`` (or by id) everywhere.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NoReturn

import click

from prefect_lite import _time, schedules
from prefect_lite.cli._output import fmt_time, print_json, print_record, print_table, shown
from prefect_lite.cli.deployment_run import run as run_command
from prefect_lite.client import get_client
from prefect_lite.exceptions import UserError
from prefect_lite.schemas import Deployment, Schedule


def _stop(message: str) -> NoReturn:
    """One line on stderr, exit status 1."""
    raise UserError(message)


def read_deployment(client: Any, name: str) -> Deployment:
    """By id or by ``flow/name``."""
    try:
        deployment_id = uuid.UUID(name)
    except ValueError:
        found: Deployment = client.read_deployment_by_name(name)
        return found
    by_id: Deployment = client.read_deployment(deployment_id)
    return by_id


def schedule_summary(deployment: Deployment) -> str:
    active = [s for s in deployment.schedules if s.active]
    if not active:
        return ""
    return "; ".join(schedules.describe(s) for s in active)


@click.group("deployment")
def deployment() -> None:
    """Manage deployments."""


@deployment.command("ls")
@click.option("--flow", "flow_name", default=None, help="Only deployments of this flow.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(flow_name: str | None, as_json: bool) -> None:
    """List deployments by name."""
    with get_client(sync_client=True) as client:
        found = client.read_deployments(flow_name=flow_name, limit=10_000)
    if as_json:
        print_json(found)
        return
    print_table(
        "Deployments",
        ["Name", "ID", "Work pool", "Schedules", "Paused"],
        [
            [d.full_name, d.id, d.work_pool_name, schedule_summary(d), "yes" if d.paused else ""]
            for d in found
        ],
    )


@deployment.command("inspect")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(name: str, as_json: bool) -> None:
    """Show one deployment (NAME is flow-name/deployment-name or an id)."""
    with get_client(sync_client=True) as client:
        found = read_deployment(client, name)
    if as_json:
        print_json(found)
    else:
        print_record(f"Deployment {found.full_name}", found)


deployment.add_command(run_command)


@deployment.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Stop scheduling runs (unstarted scheduled runs are removed)."""
    with get_client(sync_client=True) as client:
        found = client.pause_deployment(read_deployment(client, name).id)
    click.echo(f"Paused deployment '{shown(found.full_name)}'.")


@deployment.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Schedule runs again, from now on."""
    with get_client(sync_client=True) as client:
        found = client.resume_deployment(read_deployment(client, name).id)
    click.echo(f"Resumed deployment '{shown(found.full_name)}'.")


@deployment.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete the deployment and its scheduled runs that have not started."""
    with get_client(sync_client=True) as client:
        found = read_deployment(client, name)
        client.delete_deployment(found.id)
    click.echo(f"Deleted deployment '{shown(found.full_name)}'.")


# ----------------------------------------------------------------------------- schedules


@deployment.group("schedule")
def schedule() -> None:
    """Inspect, pause and resume a deployment's schedules."""


def _pick(deployment: Deployment, which: str) -> Schedule:
    """A schedule by id (or unique id prefix), slug, or 1-based position."""
    found = deployment.schedules
    if which.isdigit() and 1 <= int(which) <= len(found):
        return found[int(which) - 1]
    by_slug = [s for s in found if s.slug == which]
    by_id = [s for s in found if str(s.id).startswith(which.lower())]
    matches = by_slug or by_id
    if len(matches) != 1:
        known = ", ".join(f"{i}: {s.slug or str(s.id)[:8]}" for i, s in enumerate(found, 1))
        _stop(
            f"deployment '{deployment.full_name}' has "
            f"{'several schedules' if matches else 'no schedule'} matching {which!r}"
            f" (schedules: {known or 'none'})"
        )
    return matches[0]


@schedule.command("ls")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def schedule_ls(name: str, as_json: bool) -> None:
    """List a deployment's schedules."""
    with get_client(sync_client=True) as client:
        found = read_deployment(client, name)
    if as_json:
        print_json(found.schedules)
        return
    print_table(
        f"Schedules of {found.full_name}",
        ["#", "ID", "Slug", "Schedule", "Active", "Catch-up", "Jitter (s)"],
        [
            [i, str(s.id)[:8], s.slug, schedules.describe(s), _yes(s.active), s.catchup,
             f"{s.jitter_seconds:g}"]
            for i, s in enumerate(found.schedules, 1)
        ],
    )  # fmt: skip


def _set_active(name: str, which: str, active: bool) -> None:
    with get_client(sync_client=True) as client:
        found = read_deployment(client, name)
        chosen = _pick(found, which)
        client.update_deployment_schedule(found.id, chosen.id, active=active)
    verb = "Resumed" if active else "Paused"
    click.echo(
        f"{verb} schedule {shown(schedules.describe(chosen))} of '{shown(found.full_name)}'."
    )


@schedule.command("pause")
@click.argument("name")
@click.argument("schedule_ref", metavar="SCHEDULE")
def schedule_pause(name: str, schedule_ref: str) -> None:
    """Pause one schedule (SCHEDULE: its id, slug or position in `schedule ls`)."""
    _set_active(name, schedule_ref, False)


@schedule.command("resume")
@click.argument("name")
@click.argument("schedule_ref", metavar="SCHEDULE")
def schedule_resume(name: str, schedule_ref: str) -> None:
    """Resume one schedule."""
    _set_active(name, schedule_ref, True)


@schedule.command("preview")
@click.argument("name")
@click.option("--count", "-n", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preview(name: str, count: int, as_json: bool) -> None:
    """The next run times of the active schedules, in UTC and in each schedule's zone.

    Computed from the schedules alone: nothing is created.
    """
    with get_client(sync_client=True) as client:
        found = read_deployment(client, name)
    rows = upcoming(found, _time.now(), count)
    if as_json:
        print_json([{"utc": t.isoformat(), "local": local.isoformat(), "schedule": str(s.id)}
                    for t, local, s in rows])  # fmt: skip
        return
    if not rows:
        click.echo(
            f"Deployment '{shown(found.full_name)}' has no active schedule with future runs."
        )
        return
    title = f"Next runs of {found.full_name}" + (" (paused)" if found.paused else "")
    print_table(
        title,
        ["#", "UTC", "Local", "Zone", "Schedule"],
        [
            [i, fmt_time(t), _local_time(local), s.timezone, schedules.describe(s)]
            for i, (t, local, s) in enumerate(rows, 1)
        ],
    )


def upcoming(
    deployment: Deployment, now: datetime, count: int
) -> list[tuple[datetime, datetime, Schedule]]:
    """The next ``count`` (UTC time, local time, schedule) of all active schedules."""
    rows: list[tuple[datetime, datetime, Schedule]] = []
    for s in deployment.schedules:
        if s.active:
            zone = schedules.zone(s.timezone)
            rows += [(t, t.astimezone(zone), s) for t in schedules.next_times(s, now, count)]
    rows.sort(key=lambda row: row[0])
    return rows[:count]


def _local_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
