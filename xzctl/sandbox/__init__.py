"""Local sandbox: a real Prometheus scraping the fleet simulator."""
