"""Prometheus HTTP API client: bounded, fail-closed queries."""

from xzctl.prom.client import PrometheusClient, Sample, Series

__all__ = ["PrometheusClient", "Sample", "Series"]
