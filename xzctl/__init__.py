"""xzctl: the control plane for a Xiaozhi ESP32 voice-assistant fleet."""

__version__ = "0.1.0"
