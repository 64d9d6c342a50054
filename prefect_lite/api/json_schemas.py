"""Bounded JSON-schema checks: every schema a client gives is checked before it is used.

A schema someone else wrote must not be able to stall the server. ``check_schema`` is run
when a schema is stored (a deployment's parameter schema, a paused run's input schema)
and again before one is used, and refuses, with a ``ValidationError`` (422) that says why:

- a schema over ``MAX_SCHEMA_BYTES`` of JSON or nested deeper than ``MAX_SCHEMA_DEPTH``;
- one that is not a valid JSON schema (checked against its draft's metaschema, so
  ``{"type": ""}``, ``{"enum": 5}``, ``{"required": 5}`` are refused);
- a ``$ref`` that is not local (``#/...``) or does not resolve;
- one whose expansion (every ``$ref`` followed, recursion counted once) passes
  ``MAX_SCHEMA_NODES`` nodes: nested ``anyOf``/``allOf`` over references multiply the
  work per value, so this bounds what checking one value can cost;
- a ``pattern`` the linear-time regex engine cannot compile (backreferences,
  lookaround): patterns are matched by ``jsonschema-rs`` with the Rust ``regex`` engine,
  which never backtracks, so ``^(a+)+$`` costs the same as any other pattern.

Validation never reaches the network (``offline``): remote references are refused.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema_rs
import orjson

from prefect_lite.exceptions import ValidationError

MAX_SCHEMA_BYTES = 256 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_NODES = 10_000


def check_schema(schema: Any, what: str) -> None:
    """Raise ``ValidationError`` naming ``what`` unless ``schema`` is a bounded, valid schema."""
    _checked(_canonical(schema, what), what)


def validator(schema: dict[str, Any], what: str) -> jsonschema_rs.Validator:
    """A compiled, linear-time validator for ``schema`` (checked first, see module doc)."""
    return _checked(_canonical(schema, what), what)


def validation_error(validator: jsonschema_rs.Validator, value: Any) -> str | None:
    """The first problem with ``value`` (with where it is), None if it is valid."""
    for error in validator.iter_errors(value):
        where = ".".join(str(p) for p in error.instance_path)
        return f"{f'at {where!r}: ' if where else ''}{error.message}"
    return None


def _canonical(schema: Any, what: str) -> bytes:
    if not isinstance(schema, dict | bool):
        raise ValidationError(f"{what} must be a JSON object, not {type(schema).__name__}")
    try:
        raw = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValidationError(f"{what} must be JSON: {exc}") from None
    if len(raw) > MAX_SCHEMA_BYTES:
        raise ValidationError(
            f"{what} is {len(raw)} bytes of JSON; the limit is {MAX_SCHEMA_BYTES}"
        )
    return raw


@functools.lru_cache(maxsize=256)
def _checked(raw: bytes, what: str) -> jsonschema_rs.Validator:
    """Check and compile the schema whose canonical JSON is ``raw`` (cached by content)."""
    schema = orjson.loads(raw)
    _check_depth(schema, what)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(p) for p in exc.instance_path)
        raise ValidationError(
            f"{what} is not a valid JSON schema{f' at {where!r}' if where else ''}: {exc.message}"
        ) from None
    except jsonschema_rs.ReferencingError as exc:
        raise ValidationError(f"{what}: {exc}") from None
    if isinstance(schema, dict):
        _Expansion(schema, what).count(schema)
    try:
        return jsonschema_rs.validator_for(
            schema, pattern_options=jsonschema_rs.RegexOptions(), offline=True
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        message = getattr(exc, "message", None) or " ".join(str(exc).split())
        raise ValidationError(
            f"{what} cannot be used: {message} (patterns must not use backreferences or "
            "lookaround; references must be local)"
        ) from None


def _check_depth(schema: Any, what: str) -> None:
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise ValidationError(f"{what} is nested deeper than {MAX_SCHEMA_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


class _Expansion:
    """Counts the nodes a validator may visit for one value: ``$ref`` targets are counted
    each time they are referenced (a reference back into its own expansion once)."""

    def __init__(self, root: dict[str, Any], what: str) -> None:
        self.root = root
        self.what = what
        self.nodes = 0

    def count(self, node: Any, path: tuple[str, ...] = ()) -> None:
        if isinstance(node, list):
            for item in node:
                self.count(item, path)
            return
        if not isinstance(node, dict):
            return
        self.nodes += 1
        if self.nodes > MAX_SCHEMA_NODES:
            raise ValidationError(
                f"{self.what} is too complex: expanding its references and combinations "
                f"(anyOf/allOf/oneOf) passes {MAX_SCHEMA_NODES} nodes"
            )
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in path:
            if len(path) >= MAX_SCHEMA_DEPTH:
                raise ValidationError(
                    f"{self.what} chains references deeper than {MAX_SCHEMA_DEPTH} levels"
                )
            self.count(self._target(ref), (*path, ref))
        for key, value in node.items():
            if key not in ("$defs", "definitions", "enum", "const", "default", "examples"):
                self.count(value, path)

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValidationError(f"{self.what}: only local references (#/...) are allowed")
        node: Any = self.root
        for part in ref[1:].lstrip("/").split("/") if ref != "#" else ():
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ValidationError(f"{self.what}: reference {ref!r} does not resolve")
        return node
