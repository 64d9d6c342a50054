"""``prefect-lite work-queue ...``: the queues of a work pool."""

from __future__ import annotations

import click

from prefect_lite.cli._output import print_json, print_table
from prefect_lite.client import get_client

_POOL = click.option("--pool", "pool", required=True, help="The work pool.")


@click.group("work-queue")
def work_queue() -> None:
    """Work queues: a pool's lanes, served in priority order (lower number first)."""


@work_queue.command("create")
@click.argument("name")
@_POOL
@click.option("--priority", type=click.IntRange(min=1), default=None,
              help="Lower is served first (default: after the existing queues).")  # fmt: skip
@click.option("--concurrency-limit", type=click.IntRange(min=0), default=None,
              help="Most runs of the queue active at once (default: no limit).")  # fmt: skip
@click.option("--description", default=None)
def create(
    name: str,
    pool: str,
    priority: int | None,
    concurrency_limit: int | None,
    description: str | None,
) -> None:
    """Add the queue NAME to a pool."""
    with get_client(sync_client=True) as client:
        queue = client.create_work_queue(
            pool,
            name,
            priority=priority,
            concurrency_limit=concurrency_limit,
            description=description,
        )
    click.echo(f"Created work queue {name!r} in pool {pool!r} (priority {queue.priority}).")


@work_queue.command("ls")
@_POOL
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(pool: str, as_json: bool) -> None:
    """List a pool's queues in priority order, with what they hold."""
    with get_client(sync_client=True) as client:
        status = client.read_work_pool_status(pool)
    if as_json:
        print_json(status.queues)
        return
    print_table(
        f"Work queues of {pool!r}",
        ["Name", "Priority", "Concurrency limit", "Paused", "Queued", "Active"],
        [
            [q.name, q.priority, "none" if q.concurrency_limit is None else q.concurrency_limit,
             "yes" if q.paused else "", q.queued, q.active]
            for q in status.queues
        ],
    )  # fmt: skip


@work_queue.command("pause")
@click.argument("name")
@_POOL
def pause(name: str, pool: str) -> None:
    """Hold the queue's runs until it is resumed."""
    with get_client(sync_client=True) as client:
        client.update_work_queue(pool, name, paused=True)
    click.echo(f"Paused work queue {name!r} of pool {pool!r}.")


@work_queue.command("resume")
@click.argument("name")
@_POOL
def resume(name: str, pool: str) -> None:
    """Hand the queue's runs to workers again."""
    with get_client(sync_client=True) as client:
        client.update_work_queue(pool, name, paused=False)
    click.echo(f"Resumed work queue {name!r} of pool {pool!r}.")


@work_queue.command("set-concurrency-limit")
@click.argument("name")
@click.argument("limit", type=click.IntRange(min=0))
@_POOL
def set_concurrency_limit(name: str, limit: int, pool: str) -> None:
    """At most LIMIT runs of the queue active at once."""
    with get_client(sync_client=True) as client:
        client.update_work_queue(pool, name, concurrency_limit=limit)
    click.echo(f"Set the concurrency limit of work queue {name!r} to {limit}.")


@work_queue.command("clear-concurrency-limit")
@click.argument("name")
@_POOL
def clear_concurrency_limit(name: str, pool: str) -> None:
    """Remove the queue's concurrency limit."""
    with get_client(sync_client=True) as client:
        client.update_work_queue(pool, name, clear_concurrency_limit=True)
    click.echo(f"Cleared the concurrency limit of work queue {name!r}.")


@work_queue.command("delete")
@click.argument("name")
@_POOL
@click.option("--force", is_flag=True, help="Even if in use: cancels its runs not ended.")
def delete(name: str, pool: str, force: bool) -> None:
    """Delete the queue (not the pool's default queue; refused while deployments use it
    or runs on it have not ended, unless --force)."""
    with get_client(sync_client=True) as client:
        client.delete_work_queue(pool, name, force=force)
    click.echo(f"Deleted work queue {name!r} of pool {pool!r}.")
