"""``prefect-lite server ...``: run the API server; the embedded Redis's status and stop."""

from __future__ import annotations

import click

from prefect_lite.settings import get_settings, mask_url


@click.group()
def server() -> None:
    """Run the API server; manage the embedded Redis."""


@server.command("start")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=4200, show_default=True, type=click.IntRange(0, 65535), help="0: any free."
)
@click.option("--no-services", is_flag=True, help="Do not run the scheduler in this process.")
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Listen beyond loopback without any API key (anyone reaching the port is admin).",
)
def start(host: str, port: int, no_services: bool, insecure_no_auth: bool) -> None:
    """Start the API server: with the embedded Redis if none is configured, and the scheduler.

    The one command to run the whole system on one machine. Stops on Ctrl-C or SIGTERM,
    and stops the embedded Redis too if it started it. Listening on anything but loopback
    needs an API key (PREFECT_LITE_API_KEYS or PREFECT_LITE_API_KEY).
    """
    from prefect_lite.server.runner import ServerRunner

    runner = ServerRunner(
        get_settings(), host, port, services=not no_services, insecure_no_auth=insecure_no_auth
    )
    runner.run(click.echo, warn=lambda line: click.secho(line, err=True, fg="red", bold=True))


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
        shown = mask_url(embedded.url() or "")
        click.echo(f"Embedded Redis running: pid {embedded.pid()} at {shown}")
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
