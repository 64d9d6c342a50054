"""Turn known errors into one clear line and exit code 1 (never a traceback)."""

from __future__ import annotations

import sys

import click
import pydantic

from prefect_lite.cli._output import shown
from prefect_lite.exceptions import PrefectLiteError, UserError


def run_cli(group: click.Group, argv: list[str] | None = None) -> int:
    try:
        group.main(args=argv, prog_name="prefect-lite", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.message = shown(exc.message)  # type: ignore[misc]  # it may echo what was typed
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (UserError, PrefectLiteError) as exc:
        click.echo(f"Error: {_one_line(str(exc))}", err=True)
        return 1
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or exc.title
        click.echo(f"Error: invalid {shown(where)}: {shown(first.get('msg'))}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    return 0


def _one_line(text: str) -> str:
    return shown(" ".join(text.split())) or "unknown error"


def fail(message: str) -> None:
    """Stop the command with one line on stderr and exit code 1."""
    raise UserError(message)


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)
