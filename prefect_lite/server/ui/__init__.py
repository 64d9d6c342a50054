"""The web UI: server-rendered pages (Jinja2) with htmx, served by the API server at ``/``.

``install(app, settings)`` adds the pages, the static files (htmx, the stylesheet and the
Swagger UI assets, all vendored: nothing is loaded from outside) and an offline
``/api/docs``. Pages read through the API handlers and ``storage.run_views``; actions call
the same API handlers a client's request would, after checking the caller's role.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from prefect_lite.server.ui import (
    pages_actions,
    pages_config,
    pages_deployments,
    pages_flow_run,
    pages_login,
    pages_pools,
    pages_runs,
)
from prefect_lite.server.ui.render import HERE, Renderer
from prefect_lite.server.ui.security import Csrf
from prefect_lite.settings import Settings

DOCS_PATH = "/api/docs"


def auth_configured(settings: Settings) -> bool:
    return bool(settings.api_key) or bool(settings.api_keys)


def install(app: FastAPI, settings: Settings, openapi_url: str) -> None:
    """Mount the UI on ``app``: pages at ``/``, assets at ``/static``, docs at ``/api/docs``."""
    ui = Renderer(Csrf(), auth_on=auth_configured(settings))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (
        pages_login,
        pages_runs,
        pages_flow_run,
        pages_actions,
        pages_deployments,
        pages_pools,
        pages_config,
    ):
        app.include_router(module.router(ui))

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title="prefect-lite API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
