"""Variables and Blocks. Block documents come from the API handler with their secret
fields masked (``include_secrets=False``): a secret value never reaches the browser."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from prefect_lite.api.blocks import read_block_documents
from prefect_lite.api.variables import read_variables
from prefect_lite.server.ui.render import Renderer, guarded

PAGE_SIZE = 200


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def router(ui: Renderer) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/variables", response_class=HTMLResponse)
    @guarded(ui)
    def variables(request: Request) -> HTMLResponse:
        prefix = request.query_params.get("q", "")[:200]
        found = read_variables(name_prefix=prefix, limit=PAGE_SIZE)
        rows = [(v, _json(v.value)) for v in found]
        return ui.html(request, "variables.html", rows=rows, q=prefix, limit=PAGE_SIZE)

    @r.get("/blocks", response_class=HTMLResponse)
    @guarded(ui)
    def blocks(request: Request) -> HTMLResponse:
        found = read_block_documents(limit=PAGE_SIZE, include_secrets=False)
        rows = [(b, _json(b.data)) for b in found]
        return ui.html(request, "blocks.html", rows=rows, limit=PAGE_SIZE)

    return r
