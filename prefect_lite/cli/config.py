"""``prefect-lite config view``: effective settings and where each came from."""

from __future__ import annotations

import json

import click

from prefect_lite.cli._output import shown
from prefect_lite.settings import get_settings, setting_sources


@click.group()
def config() -> None:
    """Inspect configuration."""


@config.command("view")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def view(as_json: bool) -> None:
    """Print every setting's effective value and its source (secrets masked)."""
    get_settings()
    rows = setting_sources()
    if as_json:
        click.echo(json.dumps([{"name": n, "value": v, "source": s} for n, v, s in rows], indent=2))
        return
    width = max(len(n) for n, _, _ in rows)
    for name, value, source in rows:
        click.echo(f"{name.ljust(width)} = {shown(value)}  ({source})")
