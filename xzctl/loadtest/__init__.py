"""Devices that speak the real xiaozhi protocol to a node's upstream server: the turn probe and the load tests.

`device` is one device; `settings` (what a load test is: devices, arrivals, duration, target), `corpus` (what the
devices say) and `summary` are plain; `engine` is the Locust side (it imports gevent, which patches the process:
import it only where a run happens).
"""
