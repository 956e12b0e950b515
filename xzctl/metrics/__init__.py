"""The metrics contract: what the fleet's services expose, read by alerts, checks and the simulator."""
