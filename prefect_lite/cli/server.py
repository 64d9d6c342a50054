"""``prefect-lite server ...``: the embedded Redis's lifecycle (status, stop)."""

from __future__ import annotations

import click

from prefect_lite.settings import get_settings


@click.group()
def server() -> None:
    """Manage the local server and the embedded Redis."""


@server.command("status")
def status() -> None:
    """Say whether the embedded Redis is running, and where."""
    from prefect_lite.storage.embedded import EmbeddedRedis

    settings = get_settings()
    if settings.redis_url:
        click.echo("Using configured Redis (PREFECT_LITE_REDIS_URL); no embedded server.")
        return
    embedded = EmbeddedRedis(settings.home)
    if embedded.is_running():
        click.echo(f"Embedded Redis running: pid {embedded.pid()} at {embedded.url()}")
    else:
        click.echo(f"Embedded Redis not running (home {settings.home}).")


@server.command("stop")
def stop() -> None:
    """Stop the embedded Redis (data stays on disk and is loaded at the next start)."""
    from prefect_lite.storage.embedded import EmbeddedRedis

    embedded = EmbeddedRedis(get_settings().home)
    if not embedded.is_running():
        click.echo("Embedded Redis is not running.")
        return
    embedded.stop()
    click.echo("Embedded Redis stopped.")
