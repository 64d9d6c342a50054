"""Variable handlers: named, mutable JSON values (``P:variable:rec:{name}``).

Names, values and tags are checked here with the rules in ``schemas`` so HTTP callers get
the same clear errors as the SDK. Creation without ``overwrite`` is a ``SET NX``: two
concurrent creators never both win.
"""

from __future__ import annotations

from typing import Any

from prefect_lite import _time
from prefect_lite.api.registry import operation
from prefect_lite.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect_lite.schemas import (
    Variable,
    check_paging,
    check_tags,
    check_variable_name,
    check_variable_value,
)
from prefect_lite.storage.records import NamedRecords

variables: NamedRecords[Variable] = NamedRecords("variable", Variable)


@operation("POST", "/variables/", status_code=201, tag="variables", role="admin")
def create_variable(
    name: str, value: Any = None, tags: list[str] | None = None, overwrite: bool = False
) -> Variable:
    """Create a variable; with ``overwrite`` replace an existing one's value and tags."""
    check_variable_name(name)
    check_variable_value(name, value)
    record = Variable(name=name, value=value, tags=check_tags(tags))
    if variables.create(name, record):
        return record
    if not overwrite:
        raise ObjectAlreadyExists(
            f"variable {name!r} already exists; pass overwrite=True to replace it"
        )
    existing = variables.get(name)
    if existing is not None:  # keep identity and creation time, as an update does
        record = record.model_copy(
            update={"id": existing.id, "created": existing.created, "updated": _time.now()}
        )
    variables.put(name, record)
    return record


@operation("GET", "/variables/name/{name}", tag="variables", role="read")
def read_variable_by_name(name: str) -> Variable:
    check_variable_name(name)
    found = variables.get(name)
    if found is None:
        raise ObjectNotFound(f"no variable named {name!r}")
    return found


@operation("POST", "/variables/filter", tag="variables", role="read")
def read_variables(
    name_prefix: str = "",
    tags: list[str] | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[Variable]:
    """Variables by name; with ``tags``, only those carrying all of them."""
    check_paging(limit, offset)
    wanted = set(check_tags(tags))
    if not wanted:
        return variables.all(prefix=name_prefix, limit=limit, offset=offset)
    matching = [v for v in variables.all(prefix=name_prefix) if wanted <= set(v.tags)]
    return matching[offset : offset + limit]


@operation("DELETE", "/variables/name/{name}", status_code=204, tag="variables", role="admin")
def delete_variable_by_name(name: str) -> None:
    check_variable_name(name)
    if not variables.delete(name):
        raise ObjectNotFound(f"no variable named {name!r}")
