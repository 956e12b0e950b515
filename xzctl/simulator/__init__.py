"""Fleet simulator: a real /metrics exporter for every edge node of a fleet spec."""
