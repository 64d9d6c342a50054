"""``prefect-lite work-pool ...``: create, list, inspect, pause, limit and delete pools."""

from __future__ import annotations

from typing import Any

import click

from prefect_lite.cli._output import fmt_time, print_json, print_table, shown
from prefect_lite.client import get_client
from prefect_lite.schemas import Worker


@click.group("work-pool")
def work_pool() -> None:
    """Work pools: where deployments' runs wait for workers."""


@work_pool.command("create")
@click.argument("name")
@click.option("--type", "pool_type", default="process", show_default=True, help="Pool type.")
@click.option("--description", default=None, help="What the pool is for.")
@click.option("--concurrency-limit", type=click.IntRange(min=0), default=None,
              help="Most runs of the pool active at once (default: no limit).")  # fmt: skip
@click.option("--paused", is_flag=True, help="Create it paused (runs wait until resumed).")
def create(
    name: str, pool_type: str, description: str | None, concurrency_limit: int | None, paused: bool
) -> None:
    """Create the work pool NAME (with its ``default`` queue)."""
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            name,
            type=pool_type,
            description=description,
            concurrency_limit=concurrency_limit,
            paused=paused,
        )
    click.echo(f"Created work pool {name!r}. Start a worker with:")
    click.echo(f"  prefect-lite worker start --pool {name}")


@work_pool.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(as_json: bool) -> None:
    """List work pools."""
    with get_client(sync_client=True) as client:
        found = client.read_work_pools(limit=10_000)
    if as_json:
        print_json(found)
        return
    print_table(
        "Work pools",
        ["Name", "Type", "Concurrency limit", "Paused", "Description"],
        [
            [p.name, p.type, _limit(p.concurrency_limit), "yes" if p.paused else "", p.description]
            for p in found
        ],
    )


@work_pool.command("inspect")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(name: str, as_json: bool) -> None:
    """Show a pool with its queues, usage and workers."""
    with get_client(sync_client=True) as client:
        status = client.read_work_pool_status(name)
    if as_json:
        print_json(status)
        return
    pool = status.pool
    click.echo(
        f"Work pool {pool.name!r} (type {shown(pool.type)}){' - PAUSED' if pool.paused else ''}: "
        f"{status.active} active run(s), limit {_limit(pool.concurrency_limit)}, "
        f"{status.waiting} waiting for a slot"
    )
    print_table(
        "Queues (priority order)",
        ["Name", "Priority", "Concurrency limit", "Paused", "Queued", "Active"],
        [
            [q.name, q.priority, _limit(q.concurrency_limit), "yes" if q.paused else "",
             q.queued, q.active]
            for q in status.queues
        ],
    )  # fmt: skip
    print_table("Workers", *worker_rows(status.workers))


def worker_rows(workers: list[Worker]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a workers table (``work-pool inspect``, ``worker ls``)."""
    columns = ["Name", "Status", "Host", "PID", "Queues", "Running", "Started", "Last heartbeat"]
    rows = [
        [w.name, w.status, w.host, w.pid, ", ".join(w.work_queue_names) or "(all)", w.running,
         fmt_time(w.started), fmt_time(w.last_heartbeat_time)]
        for w in workers
    ]  # fmt: skip
    return columns, rows


@work_pool.command("pause")
@click.argument("name")
def pause(name: str) -> None:
    """Stop handing the pool's runs to workers (they wait, due, until resumed)."""
    with get_client(sync_client=True) as client:
        client.update_work_pool(name, paused=True)
    click.echo(f"Paused work pool {name!r}.")


@work_pool.command("resume")
@click.argument("name")
def resume(name: str) -> None:
    """Hand the pool's runs to workers again."""
    with get_client(sync_client=True) as client:
        client.update_work_pool(name, paused=False)
    click.echo(f"Resumed work pool {name!r}.")


@work_pool.command("set-concurrency-limit")
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=0))
def set_concurrency_limit(name: str, limit: int) -> None:
    """At most LIMIT runs of the pool active at once."""
    with get_client(sync_client=True) as client:
        client.update_work_pool(name, concurrency_limit=limit)
    click.echo(f"Set the concurrency limit of work pool {name!r} to {limit}.")


@work_pool.command("clear-concurrency-limit")
@click.argument("name")
def clear_concurrency_limit(name: str) -> None:
    """Remove the pool's concurrency limit."""
    with get_client(sync_client=True) as client:
        client.update_work_pool(name, clear_concurrency_limit=True)
    click.echo(f"Cleared the concurrency limit of work pool {name!r}.")


@work_pool.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Even if in use: cancels its runs not ended.")
def delete(name: str, force: bool) -> None:
    """Delete the pool, its queues and its worker records (refused while deployments use
    it or runs on it have not ended, unless --force)."""
    with get_client(sync_client=True) as client:
        client.delete_work_pool(name, force=force)
    click.echo(f"Deleted work pool {name!r}.")


def _limit(value: int | None) -> str:
    return "none" if value is None else str(value)
