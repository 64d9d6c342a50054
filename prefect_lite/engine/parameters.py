"""Call parameters: binding arguments, validating flow parameters, run-name templates.

``Signature`` is computed once per flow/task function. Binding the common shape (named
parameters, no ``*args``/``**kwargs``) skips ``inspect.Signature.bind``; anything else
falls back to it. Flow parameters are validated and coerced with pydantic from the
type hints (a model built on first use), raising ``ParameterTypeError`` naming each bad
parameter before the flow body runs.
"""

from __future__ import annotations

import inspect
import string
import typing
from collections.abc import Callable
from typing import Any

from prefect_lite.exceptions import DefinitionError, ParameterBindError, ParameterTypeError

_EMPTY = inspect.Parameter.empty
_POS_ONLY = inspect.Parameter.POSITIONAL_ONLY
_VAR_POS = inspect.Parameter.VAR_POSITIONAL
_KW_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_KW = inspect.Parameter.VAR_KEYWORD


class Signature:
    """What the engine needs to know about a function's parameters."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.fn_name = getattr(fn, "__name__", repr(fn))
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        self.names = [p.name for p in params]
        self.defaults = {p.name: p.default for p in params if p.default is not _EMPTY}
        self.var_positional = next((p.name for p in params if p.kind is _VAR_POS), None)
        self.var_keyword = next((p.name for p in params if p.kind is _VAR_KW), None)
        self.simple = all(p.kind not in (_POS_ONLY, _VAR_POS, _VAR_KW) for p in params)
        self.positional = [p.name for p in params if p.kind not in (_KW_ONLY, _VAR_KW, _VAR_POS)]
        self._name_set = frozenset(self.names)
        self._model: Any = None

    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool = True
    ) -> dict[str, Any]:
        """Parameters by name (defaults applied), as Prefect records them."""
        if self.simple and apply_defaults and len(args) <= len(self.positional):
            params = dict(zip(self.positional, args, strict=False))
            for key, value in kwargs.items():
                if key in params or key not in self._name_set:
                    return self._bind_slow(args, kwargs, apply_defaults)
                params[key] = value
            if len(params) < len(self.names):
                for key, default in self.defaults.items():
                    params.setdefault(key, default)
                if len(params) < len(self.names):
                    return self._bind_slow(args, kwargs, apply_defaults)
            return params
        return self._bind_slow(args, kwargs, apply_defaults)

    def _bind_slow(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool
    ) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ParameterBindError(
                f"Error binding parameters for function {self.fn_name!r}: {exc}. "
                f"Function {self.fn_name!r} has signature {self.signature} but received "
                f"args: {args!r} and kwargs: {list(kwargs)!r}."
            ) from None
        if apply_defaults:
            bound.apply_defaults()
        return dict(bound.arguments)

    def apply_defaults(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` plus the defaults of the parameters it lacks."""
        missing = {k: v for k, v in self.defaults.items() if k not in params}
        return {**params, **missing} if missing else params

    def call_args(self, params: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` to call the function with these parameters."""
        if self.simple:
            return (), params
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        positional = self.var_positional is not None
        for p in self.signature.parameters.values():
            if p.name not in params:
                continue
            value = params[p.name]
            if p.kind is _POS_ONLY or (
                positional and p.kind is not _KW_ONLY and p.kind is not _VAR_KW
            ):
                if p.kind is _VAR_POS:
                    args.extend(value)
                else:
                    args.append(value)
            elif p.kind is _VAR_KW:
                kwargs.update(value)
            else:
                kwargs[p.name] = value
        return tuple(args), kwargs

    # -- validation (flows)
    def validate(self, params: dict[str, Any], owner: str) -> dict[str, Any]:
        """Coerce parameters to their annotated types; ``ParameterTypeError`` lists each
        parameter that does not fit. Values left at their default are not checked."""
        model = self._model or self._build_model()
        data = {k: v for k, v in params.items() if self.defaults.get(k, _EMPTY) is not v}
        from pydantic import ValidationError

        try:
            validated = model.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors(include_url=False):
                loc = ".".join(str(part) for part in err["loc"]) or "?"
                lines.append(f" - {loc}: {err['msg']}")
            raise ParameterTypeError(
                f"{owner} received invalid parameters:\n" + "\n".join(lines)
            ) from None
        coerced = {name: getattr(validated, _field(i)) for i, name in enumerate(self.names)}
        return {k: (coerced[k] if k in data else v) for k, v in params.items()}

    def _build_model(self) -> Any:
        from pydantic import ConfigDict, Field, create_model

        hints = _type_hints(self.fn, self.signature)
        fields: dict[str, Any] = {}
        for i, p in enumerate(self.signature.parameters.values()):
            annotation = hints.get(p.name, Any)
            if p.kind is _VAR_POS:
                annotation = tuple[annotation, ...]  # type: ignore[valid-type]
            elif p.kind is _VAR_KW:
                annotation = dict[str, annotation]  # type: ignore[valid-type]
            default = p.default if p.default is not _EMPTY else None
            fields[_field(i)] = (annotation, Field(default=default, alias=p.name))
        self._model = create_model(
            f"{self.fn_name}_parameters",
            __config__=ConfigDict(arbitrary_types_allowed=True, populate_by_name=False),
            **fields,
        )
        return self._model

    def check_validatable(self, owner: str) -> None:
        """Build the validation model now, so an unusable annotation fails at declaration."""
        try:
            self._build_model()
        except Exception as exc:
            raise DefinitionError(
                f"{owner}: its parameters cannot be validated ({exc}); "
                "pass validate_parameters=False or fix the annotations"
            ) from exc

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of the parameters (for deployments and the UI)."""
        model = self._model or self._build_model()
        schema: dict[str, Any] = model.model_json_schema(by_alias=True)
        schema["title"] = "Parameters"
        return schema


def _field(index: int) -> str:
    return f"p{index}"


def _type_hints(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Annotations of the parameters, strings evaluated in the function's module."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        pass
    namespace = dict(getattr(fn, "__globals__", {}))
    hints: dict[str, Any] = {}
    for p in signature.parameters.values():
        annotation = p.annotation
        if annotation is _EMPTY:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)
            except Exception:
                annotation = Any
        hints[p.name] = annotation
    return hints


# -------------------------------------------------------------------------- run names


def template_fields(template: str) -> list[str]:
    """Root names used by a ``str.format`` template ("{a.b[0]}" -> "a")."""
    names = []
    for _, field, _, _ in string.Formatter().parse(template):
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        names.append(root)
    return names


def check_run_name(value: Any, sig: Signature, option: str, owner: str) -> None:
    """At declaration: a template may only use the function's parameter names."""
    if value is None or callable(value):
        return
    if not isinstance(value, str):
        raise DefinitionError(
            f"{owner}: {option} must be a string template or a callable, got {type(value).__name__}"
        )
    try:
        fields = template_fields(value)
    except ValueError as exc:
        raise DefinitionError(
            f"{owner}: {option} {value!r} is not a valid template: {exc}"
        ) from None
    known = set(sig.names)
    for name in fields:
        if name == "" or name.isdigit():
            raise DefinitionError(
                f"{owner}: {option} {value!r} has a positional field; "
                "name a parameter instead, e.g. '{x}'"
            )
        if name not in known and sig.var_keyword is None:
            listed = ", ".join(sig.names) or "none"
            raise DefinitionError(
                f"{owner}: {option} {value!r} uses {{{name}}}, which is not a parameter of "
                f"{sig.fn_name!r} (parameters: {listed})"
            )


def render_run_name(value: Any, params: dict[str, Any], option: str) -> str:
    """The run name from a template (formatted with the parameters) or a callable."""
    if isinstance(value, str):
        flat = dict(params)
        for extra in (v for v in params.values() if isinstance(v, dict)):
            for key, item in extra.items():
                flat.setdefault(key, item)  # **kwargs members are usable by name
        return value.format(**flat)
    name = value(parameters=params) if _accepts_parameters(value) else value()
    if not isinstance(name, str):
        raise TypeError(
            f"Callable {value!r} for '{option}' returned type {type(name).__name__} "
            "but a string is required."
        )
    return name


def _accepts_parameters(fn: Callable[..., Any]) -> bool:
    try:
        return "parameters" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# -------------------------------------------------------------------- recorded values


def jsonable_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as stored on the flow run record: JSON values, placeholders otherwise."""
    import orjson

    try:
        loaded: dict[str, Any] = orjson.loads(orjson.dumps(params, option=orjson.OPT_NON_STR_KEYS))
        return loaded
    except TypeError:
        pass
    from pydantic_core import to_jsonable_python

    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            out[key] = to_jsonable_python(value)
        except Exception:
            out[key] = f"<{type(value).__name__}>"
    return out
