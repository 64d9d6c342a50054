"""``prefect-lite api-key generate``: make a fresh random API key for a role.

Prints the new key and the lines that use it (the server's ``PREFECT_LITE_API_KEYS``
entry, the client's ``PREFECT_LITE_API_KEY``). Configured keys are never printed by any
command.
"""

from __future__ import annotations

import secrets

import click

from prefect_lite.api.roles import ADMIN, ROLES

KEY_BYTES = 32


@click.group("api-key")
def api_key() -> None:
    """Make API keys (each key has one role: read, run, worker or admin)."""


@api_key.command("generate")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=ADMIN,
    show_default=True,
    help="read: look; run: trigger, cancel, resume; worker: execute flows; admin: all.",
)
def generate(role: str) -> None:
    """Print a new random key (256 bits) and how to configure it."""
    key = secrets.token_urlsafe(KEY_BYTES)
    click.echo(key)
    click.echo("")
    click.echo("On the server (add it to the comma-separated list):")
    click.echo(f"  PREFECT_LITE_API_KEYS={role}:{key}")
    click.echo("On the clients that should use it:")
    click.echo(f"  PREFECT_LITE_API_KEY={key}")
