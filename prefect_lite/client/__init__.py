"""Clients of the orchestration API (local or HTTP)."""

from prefect_lite.client.orchestration import PrefectClient, SyncPrefectClient, get_client
from prefect_lite.client.results import install_default_loader

install_default_loader()  # stored states' results readable with just a client

__all__ = ["PrefectClient", "SyncPrefectClient", "get_client"]
