"""Pulumi Automation API driver: `xzctl provision region|cloud|status`."""
