"""Emulated devices: Locust users that speak the device protocol to a node's xiaozhi server and measure its turns.

`settings` (what a run is: devices, arrivals, duration, target) and `corpus` (the speech the devices say) are plain;
`engine` is the Locust side (it imports gevent, which patches the process: import it only where a run happens).
"""
