"""Devices that speak the real xiaozhi protocol to a node's upstream server: the turn probe and the load tests."""
