"""Orchestration rules that sit beside the API handlers: pool admission of due runs."""
