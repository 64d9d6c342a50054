"""``prefect-lite scheduler start``: run the scheduler service until SIGINT/SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import click


@click.group("scheduler")
def scheduler() -> None:
    """Run the scheduler service (plans, promotes and marks late scheduled runs)."""


@scheduler.command("start")
@click.option(
    "--loop-seconds", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
    help="Longest sleep between ticks (it wakes earlier for due runs).",
)  # fmt: skip
def start(loop_seconds: float) -> None:
    """Run the scheduler in this process; Ctrl-C or SIGTERM stops it cleanly."""
    from scheduler import Scheduler, SchedulerConfig

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo(f"Scheduler started (pid {os.getpid()}); Ctrl-C to stop.")
        Scheduler(SchedulerConfig(loop_seconds=loop_seconds)).run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Scheduler stopped.")
