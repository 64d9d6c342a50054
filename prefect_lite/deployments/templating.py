"""Placeholders in pull-step arguments, resolved when the steps run, as Prefect does:

- ``{{ step-id.key }}``: an output of an earlier step;
- ``{{ prefect.blocks.secret.NAME }}``: a Secret block's value (any block:
  ``{{ prefect.blocks.SLUG.NAME[.field...] }}``, its data or one field of it);
- ``{{ prefect.variables.NAME }}``: a variable's value;
- ``{{ $NAME }}``: an environment variable of the executing process.

A string that is exactly one placeholder becomes the value itself (a dict stays a dict);
inside a longer string the value is inserted as text. Resolution happens on the worker,
each time the steps run: the stored deployment keeps the placeholders, never the values.
The secret strings a rendering used are collected, so errors can be scrubbed of them.
"""

from __future__ import annotations

import os
import re
from typing import Any

from prefect_lite.exceptions import PullStepError

_PLACEHOLDER = re.compile(r"\{\{\s*([$\w.-]+)\s*\}\}")


class Renderer:
    """Renders arguments against earlier step outputs and the store's blocks/variables."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, Any]] = {}
        self.secrets: set[str] = set()

    def render(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if not isinstance(value, str):
            return value
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return self._lookup(whole.group(1), whole.group(0))
        return _PLACEHOLDER.sub(lambda m: str(self._lookup(m.group(1), m.group(0))), value)

    def scrub(self, text: str) -> str:
        """``text`` with every secret value this renderer used replaced by ``********``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "********")
        return text

    def _lookup(self, name: str, shown: str) -> Any:
        if name.startswith("$"):
            if name[1:] not in os.environ:
                raise PullStepError(f"{shown}: no environment variable {name[1:]!r}")
            return os.environ[name[1:]]
        parts = name.split(".")
        if parts[0] == "prefect" and len(parts) >= 3:
            if parts[1] == "blocks" and len(parts) >= 4:
                return self._block(parts[2], parts[3], parts[4:], shown)
            if parts[1] == "variables" and len(parts) == 3:
                return _variable(parts[2], shown)
            raise PullStepError(f"{shown} is not a placeholder prefect_lite knows")
        if len(parts) != 2:
            raise PullStepError(f"{shown} refers to no earlier step output")
        step_id, key = parts
        if step_id not in self.outputs or key not in self.outputs[step_id]:
            raise PullStepError(f"{shown} refers to no earlier step output")
        return self.outputs[step_id][key]

    def _block(self, slug: str, name: str, fields: list[str], shown: str) -> Any:
        from prefect_lite.client import get_client
        from prefect_lite.exceptions import ObjectNotFound

        try:
            with get_client(sync_client=True) as client:
                document = client.read_block_document_by_name(slug, name, include_secrets=True)
        except ObjectNotFound:
            raise PullStepError(f"{shown}: no {slug} block named {name!r}") from None
        value: Any = document.data
        if slug == "secret" and not fields:
            value = value.get("value") if isinstance(value, dict) else value
        for field in fields:
            if not isinstance(value, dict) or field not in value:
                raise PullStepError(f"{shown}: the {slug} block {name!r} has no field {field!r}")
            value = value[field]
        self._remember(value)
        return value

    def _remember(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.secrets.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                self._remember(item)
        elif isinstance(value, list):
            for item in value:
                self._remember(item)


def _variable(name: str, shown: str) -> Any:
    from prefect_lite.variables import Variable

    missing = object()
    value = Variable.get(name, default=missing)
    if value is missing:
        raise PullStepError(f"{shown}: no variable named {name!r}")
    return value
