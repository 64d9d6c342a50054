"""Forms generated from a JSON schema (deployment parameters, run input) and their parsing.

Each property becomes one field: text for a string, a number input for an integer or a
number, a true/false/default select for a boolean, a select for an enum, date and
date-time inputs, and a JSON text area for arrays, objects and anything else. A field left
empty is left out (the default applies). Parsing only turns text into JSON values and
reports what cannot be converted; whether the values fit the schema is decided by the
same API function a client's request goes through, and its message is placed next to the
field it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from prefect_lite.server.ui.security import Form

MAX_FIELDS = 200
_NAMED = re.compile(r"(?:parameter|at) '([^']+)'")


@dataclass
class Field:
    name: str
    label: str
    kind: str  # string, integer, number, boolean, enum, date, date-time, json
    required: bool = False
    description: str = ""
    default: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)  # (JSON value, label)
    value: str = ""
    error: str = ""


def _resolve(node: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        return dict(defs.get(ref.rsplit("/", 1)[-1], {}))
    options = node.get("anyOf") or node.get("oneOf")
    if isinstance(options, list):
        real = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if len(real) == 1:
            merged = {**node, **_resolve(real[0], defs)}
            merged.pop("anyOf", None)
            merged.pop("oneOf", None)
            return merged
    return node


def _kind(node: dict[str, Any]) -> str:
    if isinstance(node.get("enum"), list):
        return "enum"
    kind = node.get("type")
    if kind == "string":
        return {"date": "date", "date-time": "date-time"}.get(node.get("format", ""), "string")
    if kind in ("integer", "number", "boolean"):
        return str(kind)
    return "json"


def _text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind in ("json", "enum"):
        return orjson.dumps(value).decode()
    if kind == "boolean":
        return "true" if value else "false"
    return str(value)


def fields_for(schema: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[Field]:
    """One field per property of ``schema``, in order, with defaults filled in."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    required = set(schema.get("required") or [])
    defaults = defaults or {}
    out: list[Field] = []
    for name, raw in list((schema.get("properties") or {}).items())[:MAX_FIELDS]:
        node = _resolve(raw, defs)
        kind = _kind(node)
        default = defaults.get(name, node.get("default"))
        options = [(orjson.dumps(v).decode(), str(v)) for v in node.get("enum") or []]
        out.append(
            Field(
                name=str(name),
                label=str(node.get("title") or name),
                kind=kind,
                required=name in required and name not in defaults,
                description=str(node.get("description") or ""),
                default=_text(default, kind),
                options=options,
            )
        )
    return out


def _convert(f: Field, raw: str) -> Any:
    """The JSON value of a field's text; ``ValueError`` with a short reason."""
    if f.kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if f.kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
    if f.kind == "boolean":
        if raw not in ("true", "false"):
            raise ValueError("must be true or false")
        return raw == "true"
    if f.kind == "date":
        return date.fromisoformat(raw).isoformat()
    if f.kind == "date-time":
        moment = datetime.fromisoformat(raw)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    if f.kind in ("json", "enum"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON ({exc})") from None
    return raw


def parse(fields: list[Field], form: Form) -> tuple[dict[str, Any], bool]:
    """The values given in ``form`` (empty fields left out) and whether all converted.

    Each field keeps what was typed (``value``) and its error, to show the form again."""
    values: dict[str, Any] = {}
    ok = True
    for f in fields:
        raw = form.get(f"p.{f.name}").strip() if f.kind != "string" else form.get(f"p.{f.name}")
        f.value = raw
        if raw == "":
            if f.required:
                f.error, ok = "is required", False
            continue
        try:
            values[f.name] = _convert(f, raw)
        except ValueError as exc:
            f.error, ok = str(exc) or "is not valid", False
    return values, ok


def place_error(fields: list[Field], message: str) -> bool:
    """Put an API validation message next to the field it names; False if it names none."""
    found = _NAMED.search(message)
    if found:
        for f in fields:
            if f.name == found.group(1).split(".")[0]:
                f.error = message
                return True
    return False
