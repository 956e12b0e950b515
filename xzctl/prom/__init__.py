"""Prometheus HTTP API client: bounded, fail-closed queries."""
