"""``prefect-lite block ...``: list, inspect and delete block documents (secrets masked)."""

from __future__ import annotations

import click

from prefect_lite.cli._errors import fail
from prefect_lite.cli._output import fmt_time, print_json, print_record, print_table
from prefect_lite.client import get_client


def parse_address(value: str) -> tuple[str, str]:
    """``SLUG/NAME`` -> (slug, name)."""
    slug, _, name = value.partition("/")
    if not slug or not name:
        fail(f"expected SLUG/NAME (e.g. secret/api-token), not {value!r}")
    return slug, name


@click.group("block")
def block() -> None:
    """Saved blocks: configuration and secrets."""


@block.command("ls")
@click.option("--type", "block_type", default=None, help="Only blocks of this type (slug).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (secrets masked).")
def ls(block_type: str | None, limit: int, as_json: bool) -> None:
    """List saved blocks."""
    with get_client(sync_client=True) as client:
        found = client.read_block_documents(block_type_slug=block_type, limit=limit)
    if as_json:
        print_json(found)
        return
    print_table(
        "Blocks",
        ["Block", "Type", "ID", "Updated"],
        [[d.full_name, d.block_type_slug, d.id, fmt_time(d.updated)] for d in found],
    )


@block.command("inspect")
@click.argument("address", metavar="SLUG/NAME")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (secrets masked).")
def inspect(address: str, as_json: bool) -> None:
    """Show one saved block, secrets masked."""
    slug, name = parse_address(address)
    with get_client(sync_client=True) as client:
        found = client.read_block_document_by_name(slug, name)
    if as_json:
        print_json(found)
    else:
        print_record(f"Block {found.full_name}", found)


@block.command("delete")
@click.argument("address", metavar="SLUG/NAME")
def delete(address: str) -> None:
    """Delete a saved block."""
    slug, name = parse_address(address)
    with get_client(sync_client=True) as client:
        client.delete_block_document_by_name(slug, name)
    click.echo(f"Deleted block {address!r}.")


@block.group("type")
def block_type() -> None:
    """Block types recorded in the store."""


@block_type.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def type_ls(as_json: bool) -> None:
    """List block types that have been saved or registered."""
    with get_client(sync_client=True) as client:
        found = client.read_block_types()
    if as_json:
        print_json(found)
        return
    print_table(
        "Block types",
        ["Slug", "Name", "Description"],
        [[t.slug, t.name, (t.description or "").split("\n")[0]] for t in found],
    )
