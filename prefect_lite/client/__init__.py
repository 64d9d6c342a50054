"""Clients of the orchestration API (local or HTTP)."""

from prefect_lite.client.orchestration import PrefectClient, SyncPrefectClient, get_client

__all__ = ["PrefectClient", "SyncPrefectClient", "get_client"]
