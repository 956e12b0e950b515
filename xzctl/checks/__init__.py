"""Verdicts from live metrics: capacity, failover, cost."""
