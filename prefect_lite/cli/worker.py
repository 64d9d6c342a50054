"""``prefect-lite worker start|ls``: run a worker on a pool, list registered workers."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from prefect_lite.cli._output import print_json, print_table
from prefect_lite.cli.work_pool import worker_rows
from prefect_lite.client import get_client


@click.group("worker")
def worker() -> None:
    """Workers pull flow runs from a work pool and run each in its own process."""


@worker.command("start")
@click.option("--pool", "-p", "pool", required=True, help="The work pool to serve.")
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    help="Serve only this queue of the pool (repeatable; default: all of them).",
)
@click.option("--name", "-n", default=None, help="Worker name (default: host-pid).")
@click.option(
    "--limit",
    "-l",
    type=click.IntRange(min=1),
    default=None,
    help="Most flow runs at once (default: no limit).",
)
@click.option(
    "--shutdown-grace-seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGTERM, how long running runs may finish.",
)
@click.option(
    "--cancel-grace-seconds",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="SIGTERM to SIGKILL for a cancelled run's process.",
)
@click.option(
    "--warm",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes kept warm, ready for the next run.",
)
@click.option("--runs-per-process", type=click.IntRange(min=1), default=100, show_default=True,
              help="Runs one process executes (one after another) before a fresh one "
                   "replaces it; 1: a fresh process for every run.")  # fmt: skip
@click.option(
    "--allow-custom-steps",
    is_flag=True,
    default=None,
    help="Let pull steps call any importable function, not only the built-in steps.",
)
@click.option(
    "--allowed-step",
    "allowed_steps",
    multiple=True,
    metavar="NAME",
    help="Run only these pull steps (repeatable; e.g. git_clone).",
)
@click.option(
    "--allowed-git-url",
    "allowed_git_urls",
    multiple=True,
    metavar="PREFIX",
    help="git_clone only from URLs starting with PREFIX (repeatable).",
)
@click.option(
    "--allowed-code-path",
    "allowed_code_paths",
    multiple=True,
    metavar="DIR",
    type=click.Path(file_okay=False, resolve_path=True),
    help="Load flow code only from inside DIR (repeatable; git clones count).",
)
@click.option(
    "--allow-entrypoint-escape",
    is_flag=True,
    default=None,
    help="Let entrypoints lie outside their deployment's path.",
)
@click.option("--allow-file-urls", is_flag=True, default=None,
              help="Let git_clone clone local file:// repositories.")  # fmt: skip
def start(
    pool: str,
    queues: tuple[str, ...],
    name: str | None,
    limit: int | None,
    shutdown_grace_seconds: float,
    cancel_grace_seconds: float,
    warm: int,
    runs_per_process: int,
    **allowed: Any,
) -> None:
    """Run a worker in this process until SIGTERM or Ctrl-C (twice: at once).

    Runs execute only the built-in pull steps and code inside their deployment's path
    unless the options above (or PREFECT_LITE_WORKER_* settings) allow more."""
    from prefect_lite.deployments.policy import ExecutionPolicy
    from prefect_lite.logging.configuration import VisibleFormatter
    from workers.shutdown import ExitNow, Shutdown
    from workers.worker import Worker, WorkerOptions

    console = logging.StreamHandler()
    console.setFormatter(VisibleFormatter("%(asctime)s | %(levelname)-7s | %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[console])
    options = WorkerOptions(
        pool=pool,
        queues=list(queues),
        name=name,
        limit=limit,
        spares=warm,
        runs_per_process=runs_per_process,
        cancel_grace_seconds=cancel_grace_seconds,
        shutdown_grace_seconds=shutdown_grace_seconds,
        policy=ExecutionPolicy.from_settings(**allowed),
    )
    running = Worker(options)
    shutdown = Shutdown(running)
    shutdown.install()
    interrupted = False
    try:
        running.run()
        click.echo(f"Worker {running.name!r} draining...")
        shutdown.drain()
    except ExitNow:
        interrupted = True
        click.echo("Interrupted: stopping at once.", err=True)
        shutdown.exit_now()
    finally:
        running.close(wait=not interrupted)
        shutdown.restore()
    click.echo(f"Worker {running.name!r} stopped.")
    if interrupted:
        sys.exit(130)


@worker.command("ls")
@click.option("--pool", "-p", "pool", default=None, help="Only workers of this pool.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(pool: str | None, as_json: bool) -> None:
    """List registered workers, online ones first."""
    with get_client(sync_client=True) as client:
        found = client.read_workers(pool)
    if as_json:
        print_json(found)
        return
    columns, rows = worker_rows(found)
    print_table(
        "Workers",
        ["Pool", *columns],
        [[w.work_pool_name, *row] for w, row in zip(found, rows, strict=True)],
    )
