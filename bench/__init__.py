"""Benchmarks: prefect_lite against real Prefect, measured side by side (see README.md)."""
