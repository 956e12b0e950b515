"""Jinja2 rendering of node configs and xiaozhi server overrides, with atomic output."""
