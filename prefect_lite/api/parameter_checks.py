"""Checking parameter values against a deployment's parameter schema, in bounded time.

``check_parameters`` rejects names the schema does not list and values of the wrong JSON
type; ``check_required`` rejects a run missing a required parameter. They look only at
what a run binds (types, enums, consts, anyOf/oneOf/allOf, array items), and every node
they visit counts against a budget: ``MAX_CHECK_STEPS`` plus ``STEPS_PER_BYTE`` per byte
of the values as JSON (a long list costs steps in proportion). A schema that would need
more (nested combinations over references multiply the work per value) is refused with
a clear error instead of holding a server thread. A stored schema that is not well
formed (one written before schemas were checked on the way in) is a ``ValidationError``
naming the deployment's schema, never a crash.
"""

from __future__ import annotations

from typing import Any

import orjson

from prefect_lite.exceptions import ValidationError

MAX_CHECK_STEPS = 10_000
STEPS_PER_BYTE = 4
_MAX_DEPTH = 32

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list, tuple),
    "object": (dict,),
}


class _Budget:
    def __init__(self, flow_name: str, values: dict[str, Any]) -> None:
        self.steps = 0
        self.flow_name = flow_name
        try:
            size = len(orjson.dumps(values))
        except TypeError:
            size = 0
        self.limit = MAX_CHECK_STEPS + STEPS_PER_BYTE * size

    def spend(self) -> None:
        self.steps += 1
        if self.steps > self.limit:
            raise ValidationError(
                f"the parameter schema of flow {self.flow_name!r} is too complex to check "
                f"(over {self.limit} steps for these values); simplify it and redeploy"
            )


def check_parameters(values: dict[str, Any], schema: dict[str, Any], flow_name: str) -> None:
    """Reject names the schema does not list and values of the wrong JSON type."""
    try:
        _check_parameters(values, schema, flow_name)
    except (TypeError, AttributeError, IndexError, KeyError, RecursionError):
        raise _malformed(flow_name) from None


def check_required(values: dict[str, Any], schema: dict[str, Any], flow_name: str) -> None:
    """Every parameter the schema requires has a value (the run will bind them all)."""
    required = schema.get("required") or []
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _malformed(flow_name)
    missing = [name for name in required if name not in values]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        plural = "s" if len(missing) > 1 else ""
        raise ValidationError(
            f"flow {flow_name!r} needs a value for parameter{plural} {names}: the "
            "deployment has no default for it"
        )


def _malformed(flow_name: str) -> ValidationError:
    return ValidationError(
        f"the stored parameter schema of flow {flow_name!r} is not a valid JSON schema; "
        "redeploy to replace it"
    )


def _check_parameters(values: dict[str, Any], schema: dict[str, Any], flow_name: str) -> None:
    properties: dict[str, Any] = schema.get("properties") or {}
    defs: dict[str, Any] = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    open_ended = bool(schema.get("additionalProperties"))
    budget = _Budget(flow_name, values)
    for key, value in values.items():
        if key not in properties:
            if open_ended:
                continue
            known = ", ".join(properties) or "none"
            raise ValidationError(
                f"flow {flow_name!r} has no parameter {key!r} (its parameters: {known})"
            )
        if not _fits(value, properties[key], defs, 0, budget):
            expected = _describe(properties[key], defs, 0)
            raise ValidationError(
                f"parameter {key!r} of flow {flow_name!r} must be {expected}, got {value!r}"
            )


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return dict(defs.get(ref.rsplit("/", 1)[-1], {}))
    return node


def _fits(
    value: Any, node: dict[str, Any], defs: dict[str, Any], depth: int, budget: _Budget
) -> bool:
    budget.spend()
    node = _resolve(node, defs)
    if depth > _MAX_DEPTH:
        return True
    for combinator in ("anyOf", "oneOf"):
        if combinator in node:
            options = node[combinator]
            return any(_fits(value, option, defs, depth + 1, budget) for option in options)
    if "allOf" in node:
        return all(_fits(value, option, defs, depth + 1, budget) for option in node["allOf"])
    if "enum" in node and value not in node["enum"]:
        return False
    if "const" in node and value != node["const"]:
        return False
    kinds = node.get("type")
    if kinds is None:
        return True
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        allowed = _JSON_TYPES.get(kind)
        if allowed is None or (isinstance(value, bool) and kind in ("integer", "number")):
            continue
        if isinstance(value, allowed):
            items = node.get("items")
            if kind == "array" and isinstance(items, dict) and isinstance(value, list | tuple):
                return all(_fits(v, items, defs, depth + 1, budget) for v in value)
            return True
    return False


def _describe(node: dict[str, Any], defs: dict[str, Any], depth: int) -> str:
    node = _resolve(node, defs)
    options = node.get("anyOf") or node.get("oneOf")
    if options and depth < 3:
        return " or ".join(_describe(o, defs, depth + 1) for o in options[:8])
    if "enum" in node:
        return "one of " + ", ".join(repr(v) for v in node["enum"][:20])
    kinds = node.get("type")
    if isinstance(kinds, list):
        return " or ".join(f"{'an' if k[:1] in tuple('aeiou') else 'a'} {k}" for k in kinds)
    if isinstance(kinds, str) and kinds:
        return f"{'an' if kinds[0] in 'aeiou' else 'a'} {kinds}"
    return "a valid value"
