"""Human tables (rich) and ``--json`` output for every listing/inspect command."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from pydantic import BaseModel


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [to_jsonable(o) for o in obj]
    return obj


def print_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(soft_wrap=False).print(table)


def print_record(title: str, record: BaseModel) -> None:
    from rich.console import Console
    from rich.pretty import Pretty

    Console().print(f"[bold]{title}[/bold]")
    Console().print(Pretty(record.model_dump(mode="json"), expand_all=True))


def fmt_time(value: Any) -> str:
    if value is None:
        return ""
    return str(value.strftime("%Y-%m-%d %H:%M:%S")) if hasattr(value, "strftime") else str(value)
