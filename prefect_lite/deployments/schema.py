"""A flow's parameters as a JSON schema, and deploy-time validation of given values.

The schema is built from the function signature with pydantic, one property per parameter
(title, position, default when it is JSON), in the shape Prefect stores as
``parameter_openapi_schema``. ``validate_parameters`` checks given values the same way a
run would bind them: unknown names and values of the wrong type are errors that name the
parameter; missing required ones are allowed (a run may supply them).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import orjson
import pydantic
from pydantic_core import PydanticSerializationError

from prefect_lite.exceptions import ParameterTypeError, SignatureMismatchError

_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        return {}


def _annotation(param: inspect.Parameter, hints: dict[str, Any]) -> Any:
    if param.name in hints:
        return hints[param.name]
    if param.annotation is inspect.Parameter.empty or isinstance(param.annotation, str):
        return Any
    return param.annotation


def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    """A validator for ``annotation``; classes pydantic does not know are checked with
    isinstance; anything else it cannot handle accepts any value."""
    errors = (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError)
    try:
        return pydantic.TypeAdapter(annotation)
    except errors:
        pass
    try:
        config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        return pydantic.TypeAdapter(annotation, config=config)
    except errors:
        return pydantic.TypeAdapter(Any)


def parameter_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """JSON schema of ``fn``'s parameters."""
    signature = inspect.signature(fn)
    hints = _hints(fn)
    properties: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    required: list[str] = []
    open_ended = False
    for position, param in enumerate(signature.parameters.values()):
        if param.kind == inspect.Parameter.VAR_KEYWORD:
            open_ended = True
        if param.kind in _SKIPPED_KINDS:
            continue
        prop = _property_schema(_annotation(param, hints), definitions)
        prop.update(title=param.name, position=position)
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        elif _is_json(param.default):
            prop["default"] = param.default
        properties[param.name] = prop
    schema: dict[str, Any] = {"title": "Parameters", "type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if definitions:
        schema["definitions"] = definitions
    if open_ended:
        schema["additionalProperties"] = True
    return schema


def _property_schema(annotation: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    try:
        prop = _adapter(annotation).json_schema(ref_template="#/definitions/{model}")
    except (pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticUserError, TypeError):
        return {}
    definitions.update(prop.pop("$defs", {}))
    return prop


def _is_json(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def validate_parameters(
    fn: Callable[..., Any], parameters: dict[str, Any], flow_name: str
) -> dict[str, Any]:
    """``parameters`` checked against ``fn``'s signature, as JSON values to store."""
    signature = inspect.signature(fn)
    hints = _hints(fn)
    accepted = {
        p.name: p
        for p in signature.parameters.values()
        if p.kind not in _SKIPPED_KINDS and p.kind != inspect.Parameter.POSITIONAL_ONLY
    }
    open_ended = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        param = accepted.get(name)
        if param is None:
            if open_ended:
                out[name] = _jsonable(name, value, flow_name)
                continue
            known = ", ".join(accepted) or "none"
            raise SignatureMismatchError(
                f"flow {flow_name!r} has no parameter {name!r} (its parameters: {known})"
            )
        adapter = _adapter(_annotation(param, hints))
        try:
            checked = adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            problem = exc.errors()[0].get("msg", "invalid value")
            raise ParameterTypeError(
                f"parameter {name!r} of flow {flow_name!r}: {problem} (got {value!r})"
            ) from None
        try:
            out[name] = adapter.dump_python(checked, mode="json")
        except PydanticSerializationError:
            out[name] = _jsonable(name, value, flow_name)
    return out


def _jsonable(name: str, value: Any, flow_name: str) -> Any:
    if not _is_json(value):
        raise ParameterTypeError(
            f"parameter {name!r} of flow {flow_name!r} must be a JSON value to be stored "
            f"with a deployment, got {type(value).__name__}"
        )
    return value
