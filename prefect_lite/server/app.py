"""The ASGI application: ``create_app(settings)``.

Routes come from the API registry (see ``routes``); errors map to statuses in ``errors``.
Middleware, outermost first: the Host check (``hosts``), authentication and roles
(``auth``; off when no key is configured), the body size limit, and CORS only when
origins are given (off by default).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from prefect_lite import __version__
from prefect_lite.api.registry import all_operations
from prefect_lite.api.roles import READ
from prefect_lite.server import errors, health, ui
from prefect_lite.server.auth import AuthMiddleware, KeyRing
from prefect_lite.server.hosts import TrustedHostMiddleware, trusted_hosts
from prefect_lite.server.limits import BodyLimitMiddleware
from prefect_lite.server.routes import API_PREFIX, build_router, require_role
from prefect_lite.server.services import Services
from prefect_lite.settings import Settings, get_settings
from prefect_lite.storage import async_waits

API_VERSION = "1"


class VersionInfo(BaseModel):
    version: str
    api_version: str


def create_app(
    settings: Settings | None = None,
    *,
    run_services: bool = False,
    cors_origins: Sequence[str] = (),
    bound_host: str | None = None,
) -> FastAPI:
    """The API server application.

    ``run_services`` starts the in-process services (the scheduler) with the app's
    lifespan; ``cors_origins`` enables CORS for those origins only; ``bound_host`` (the
    address the server listens on) is a trusted ``Host`` besides loopback and the
    configured names. ``ConfigurationError`` for malformed API keys.
    """
    settings = settings or get_settings()
    keys = KeyRing.from_settings(settings)
    services = Services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_services:
            app.state.services = services.start()
        try:
            yield
        finally:
            services.stop()
            await async_waits.close_hub()

    app = FastAPI(
        title="prefect-lite",
        version=__version__,
        description="Flows, deployments, schedules and work pools on Redis.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # the UI serves /api/docs with vendored assets (works offline)
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = []
    errors.install(app)

    health.install(app, API_PREFIX)

    @app.get(
        f"{API_PREFIX}/version",
        tags=["admin"],
        operation_id="version",
        dependencies=[Depends(require_role(READ))],
    )
    def version() -> VersionInfo:
        """The server's package version and API version."""
        return VersionInfo(version=__version__, api_version=API_VERSION)

    app.include_router(build_router(all_operations()))
    ui.install(app, settings, openapi_url=f"{API_PREFIX}/openapi.json")

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_payload_bytes)
    app.add_middleware(AuthMiddleware, keys=keys)
    allowed = trusted_hosts(settings.server_trusted_hosts, bound_host)
    app.add_middleware(TrustedHostMiddleware, allowed=allowed)
    return app
