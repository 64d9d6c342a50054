"""Human tables (rich) and ``--json`` output for every listing/inspect command, and the one
helper that makes stored text safe for a terminal.

Names, tags, parameters, state and log messages come from the store, where anyone with
API access may have written them. ``shown(value)`` is how every such string reaches the
screen: control characters - ESC and so CSI/OSC sequences, ``\\r``, other C0/C1 codes,
line and bidi overrides - appear as escapes (``\\x1b``, by ``prefect_lite._text``), so
they can neither drive the terminal nor forge output lines. Rich output goes through
``Text`` (never parsed as markup) or ``markup()``, so ``[/bold]`` in a name is just text.
JSON output is ASCII-only (every non-ASCII character escaped).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from pydantic import BaseModel

from prefect_lite._text import visible

CONTINUATION = "\n    | "  # starts every further line of a multi-line log message


def shown(value: Any) -> str:
    """``value`` as text for a terminal, every control character made visible."""
    return visible(value)


def shown_lines(value: Any) -> str:
    """Like ``shown`` but keeps line breaks, each further line marked as a continuation
    (a traceback stays readable; a forged log line cannot pass for a real one)."""
    lines = ("" if value is None else str(value)).split("\n")
    return CONTINUATION.join(shown(line) for line in lines)


def markup(value: Any) -> str:
    """``shown(value)`` escaped for rich markup."""
    from rich.markup import escape

    return escape(shown(value))


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [to_jsonable(o) for o in obj]
    return obj


def print_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2, default=str))


def json_line(obj: Any) -> str:
    """One compact, ASCII-only JSON line (for streams like ``flow-run logs --json``)."""
    return json.dumps(to_jsonable(obj), separators=(",", ":"), default=str)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(shown(title)), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(shown(cell)) for cell in row))
    Console(soft_wrap=False).print(table)


def print_record(title: str, record: BaseModel) -> None:
    from rich.console import Console
    from rich.pretty import Pretty
    from rich.text import Text

    # Pretty shows strings by repr(), which escapes control characters itself.
    Console().print(Text(shown(title), style="bold"))
    Console().print(Pretty(record.model_dump(mode="json"), expand_all=True))


def fmt_time(value: Any) -> str:
    if value is None:
        return ""
    return str(value.strftime("%Y-%m-%d %H:%M:%S")) if hasattr(value, "strftime") else str(value)
