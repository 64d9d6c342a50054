"""The HTTP API server: a FastAPI app whose routes are generated from the API registry."""

from prefect_lite.server.app import create_app

__all__ = ["create_app"]
