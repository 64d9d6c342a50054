"""``prefect-lite variable ...``: set, get, list and unset variables."""

from __future__ import annotations

import json
from typing import Any

import click

from prefect_lite.cli._output import fmt_time, json_line, print_json, print_table, shown
from prefect_lite.client import get_client


def parse_value(text: str) -> Any:
    """JSON if ``text`` parses as JSON (``42``, ``true``, ``{"a": 1}``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def show_value(value: Any) -> str:
    """A string as itself, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@click.group("variable")
def variable() -> None:
    """Named JSON values shared by flows, tasks and deployments."""


@variable.command("set")
@click.argument("name")
@click.argument("value")
@click.option("--tag", "tags", multiple=True, help="Tag the variable (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace an existing variable of this name.")
def set_(name: str, value: str, tags: tuple[str, ...], overwrite: bool) -> None:
    """Set NAME to VALUE (parsed as JSON when it is JSON, else kept as a string)."""
    with get_client(sync_client=True) as client:
        client.create_variable(name, parse_value(value), tags=list(tags), overwrite=overwrite)
    click.echo(f"Set variable {name!r}.")


@variable.command("get")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the value as JSON (exact).")
def get(name: str, as_json: bool) -> None:
    """Print the value of NAME (control characters shown as escapes; --json for the exact
    value)."""
    with get_client(sync_client=True) as client:
        found = client.read_variable_by_name(name)
    click.echo(json_line(found.value) if as_json else shown(show_value(found.value)))


@variable.command("ls")
@click.option("--prefix", default="", help="Only names starting with this.")
@click.option("--tag", "tags", multiple=True, help="Only variables with this tag (repeatable).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(prefix: str, tags: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List variables by name."""
    with get_client(sync_client=True) as client:
        found = client.read_variables(name_prefix=prefix, tags=list(tags) or None, limit=limit)
    if as_json:
        print_json(found)
        return
    print_table(
        "Variables",
        ["Name", "Value", "Tags", "Updated"],
        [
            [v.name, _short(show_value(v.value)), ", ".join(v.tags), fmt_time(v.updated)]
            for v in found
        ],
    )


@variable.command("unset")
@click.argument("name")
def unset(name: str) -> None:
    """Delete NAME."""
    with get_client(sync_client=True) as client:
        client.delete_variable_by_name(name)
    click.echo(f"Unset variable {name!r}.")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
