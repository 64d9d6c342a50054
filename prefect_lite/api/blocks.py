"""Block document and block type handlers.

A document is stored under ``slug/name`` (``P:block:rec:{slug}/{name}``, id alias
``P:block:alias:{id}``); its type under ``P:block_type:rec:{slug}``, recorded or refreshed
whenever a document of it is saved. Documents hold secret values in plain text, as
Prefect's database does: readers get them masked unless they pass ``include_secrets``
(``Block.load`` does; the CLI never does). Which fields are secret is listed in the
document's ``block_schema["secret_fields"]`` (dotted paths), written by the SDK on save.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from prefect_lite import _time
from prefect_lite.api.registry import operation
from prefect_lite.exceptions import (
    ObjectAlreadyExists,
    ObjectNotFound,
    PayloadTooLarge,
    ValidationError,
)
from prefect_lite.schemas import (
    BlockDocument,
    BlockType,
    check_paging,
    check_slug,
    json_value_problem,
)
from prefect_lite.settings import get_settings
from prefect_lite.storage.records import NamedRecords

MASK = "********"
documents: NamedRecords[BlockDocument] = NamedRecords("block", BlockDocument)
block_types: NamedRecords[BlockType] = NamedRecords("block_type", BlockType)


def _full_name(block_type_slug: str, name: str) -> str:
    check_slug(block_type_slug, "block type slug")
    check_slug(name, "block document name")
    return f"{block_type_slug}/{name}"


def masked(document: BlockDocument) -> BlockDocument:
    """A copy of ``document`` with every secret field's value replaced by ``MASK``."""
    paths = document.block_schema.get("secret_fields") or []
    if not paths:
        return document
    data = copy.deepcopy(document.data)
    for path in paths:
        *parents, leaf = str(path).split(".")
        target: Any = data
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if isinstance(target, dict) and target.get(leaf) is not None:
            target[leaf] = MASK
    return document.model_copy(update={"data": data})


def _shown(document: BlockDocument, include_secrets: bool) -> BlockDocument:
    return document if include_secrets else masked(document)


def _check_document(document: BlockDocument) -> str:
    full_name = _full_name(document.block_type_slug, document.name)
    problem = json_value_problem(document.data, "data")
    if problem is not None:
        raise ValidationError(f"block {full_name!r}: {problem}")
    size = len(document.model_dump_json())
    limit = get_settings().max_payload_bytes
    if size > limit:
        raise PayloadTooLarge(
            f"block {full_name!r} is {size} bytes as JSON; the limit is {limit} "
            "(PREFECT_LITE_MAX_PAYLOAD_BYTES)"
        )
    return full_name


def _record_type(document: BlockDocument) -> None:
    schema = document.block_schema
    wanted = BlockType(
        slug=document.block_type_slug,
        name=str(schema.get("title") or document.block_type_slug),
        description=schema.get("description"),
        block_schema=schema,
    )
    existing = block_types.get(wanted.slug)
    if existing is None:
        if block_types.create(wanted.slug, wanted):
            return
        existing = block_types.get(wanted.slug)
    if existing is not None and existing.block_schema == wanted.block_schema:
        return
    if existing is not None:
        wanted = wanted.model_copy(update={"id": existing.id, "created": existing.created})
    block_types.put(wanted.slug, wanted)


@operation("POST", "/block_documents/", status_code=201, tag="blocks", role="admin")
def create_block_document(block_document: BlockDocument, overwrite: bool = False) -> BlockDocument:
    """Save a document; with ``overwrite`` replace an existing one (keeping its id)."""
    full_name = _check_document(block_document)
    document = block_document
    if not documents.create(full_name, document):
        existing = documents.get(full_name)
        if not overwrite:
            raise ObjectAlreadyExists(
                f"block {full_name!r} already exists; pass overwrite=True to replace it"
            )
        if existing is not None:
            document = document.model_copy(
                update={"id": existing.id, "created": existing.created, "updated": _time.now()}
            )
        documents.put(full_name, document)
    documents.set_alias(str(document.id), full_name)
    _record_type(document)
    return document


@operation(
    "GET",
    "/block_documents/name/{block_type_slug}/{name}",
    tag="blocks",
    role="read",
    elevated={"include_secrets": "worker"},
)
def read_block_document_by_name(
    block_type_slug: str, name: str, include_secrets: bool = False
) -> BlockDocument:
    full_name = _full_name(block_type_slug, name)
    found = documents.get(full_name)
    if found is None:
        raise ObjectNotFound(f"no block {full_name!r}")
    return _shown(found, include_secrets)


@operation(
    "GET",
    "/block_documents/{block_document_id}",
    tag="blocks",
    role="read",
    elevated={"include_secrets": "worker"},
)
def read_block_document(
    block_document_id: uuid.UUID, include_secrets: bool = False
) -> BlockDocument:
    full_name = documents.resolve_alias(str(block_document_id))
    found = documents.get(full_name) if full_name else None
    if found is None:
        raise ObjectNotFound(f"no block with id {block_document_id}")
    return _shown(found, include_secrets)


@operation(
    "POST",
    "/block_documents/filter",
    tag="blocks",
    role="read",
    elevated={"include_secrets": "worker"},
)
def read_block_documents(
    block_type_slug: str | None = None,
    limit: int = 200,
    offset: int = 0,
    include_secrets: bool = False,
) -> list[BlockDocument]:
    """Documents ordered by ``slug/name``, optionally of one block type."""
    check_paging(limit, offset)
    prefix = f"{check_slug(block_type_slug, 'block type slug')}/" if block_type_slug else ""
    found = documents.all(prefix=prefix, limit=limit, offset=offset)
    return [_shown(d, include_secrets) for d in found]


@operation(
    "DELETE",
    "/block_documents/name/{block_type_slug}/{name}",
    status_code=204,
    tag="blocks",
    role="admin",
)
def delete_block_document_by_name(block_type_slug: str, name: str) -> None:
    full_name = _full_name(block_type_slug, name)
    found = documents.get(full_name)
    if found is None or not documents.delete(full_name):
        raise ObjectNotFound(f"no block {full_name!r}")
    documents.delete_alias(str(found.id))


@operation(
    "DELETE", "/block_documents/{block_document_id}", status_code=204, tag="blocks", role="admin"
)
def delete_block_document(block_document_id: uuid.UUID) -> None:
    full_name = documents.resolve_alias(str(block_document_id))
    if full_name is None:
        raise ObjectNotFound(f"no block with id {block_document_id}")
    slug, _, name = full_name.partition("/")
    delete_block_document_by_name(slug, name)


@operation("POST", "/block_types/", status_code=201, tag="blocks", role="admin")
def create_block_type(block_type: BlockType) -> BlockType:
    """Record a block type (upsert by slug), e.g. before any document of it is saved."""
    check_slug(block_type.slug, "block type slug")
    existing = block_types.get(block_type.slug)
    if existing is not None:
        block_type = block_type.model_copy(update={"id": existing.id, "created": existing.created})
    block_types.put(block_type.slug, block_type)
    return block_type


@operation("GET", "/block_types/slug/{slug}", tag="blocks", role="read")
def read_block_type_by_slug(slug: str) -> BlockType:
    found = block_types.get(check_slug(slug, "block type slug"))
    if found is None:
        raise ObjectNotFound(f"no block type {slug!r}")
    return found


@operation("POST", "/block_types/filter", tag="blocks", role="read")
def read_block_types(limit: int = 200, offset: int = 0) -> list[BlockType]:
    check_paging(limit, offset)
    return block_types.all(limit=limit, offset=offset)
