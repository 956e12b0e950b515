"""The turn probe: one device in the sandbox's real node that speaks known text to the node's xiaozhi server every
few seconds over the real protocol and exports what each turn cost (the metrics contract's TURN_* series) for
Prometheus on /metrics. Region and node come from the scrape target's labels; `track` names the track of the
service path the probe's server uses. The canary analysis judges real turns with them.

Run: python -m xzctl.loadtest.probe CONFIG.json
CONFIG: {"ws_url", "ota_url", "port", "track", "device_id", "interval_seconds", "timeout_seconds",
"duration_seconds", "texts"}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from xzctl.loadtest.device import DeviceClient, DeviceError, TurnResult, failed
from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot, Timing, exposition
from xzctl.metrics import contract as c

# TurnResult's field of each timed part of a turn (summary.TIMED names their contract metric)
FIELDS = {STT: "stt_seconds", FIRST_AUDIO: "first_audio_seconds", TURN: "turn_seconds"}
MAX_CONFIG_BYTES = 64 * 1024


class TurnRecorder:
    """Counts and histograms of a probe's turns, rendered by the load generator's exposition (one writer of the
    contract's turn series)."""

    def __init__(self, track: str) -> None:
        self.track = track
        self._lock = threading.Lock()
        self._timings = {name: Timing(buckets=(0,) * len(c.TURN_BUCKETS)) for name in FIELDS}
        self._turns = 0
        self._failed = 0
        self._failures = dict.fromkeys(c.TURN_FAILURE_KINDS, 0)

    def record(self, result: TurnResult) -> None:
        with self._lock:
            self._turns += 1
            if result.failure is not None:
                self._failures[result.failure] += 1
            if not result.ok:
                self._failed += 1
                return  # a failed turn's partial latencies would flatter the histogram
            for name, attr in FIELDS.items():
                value = getattr(result, attr)
                if value is None:
                    continue
                t = self._timings[name]
                buckets = tuple(n + (value <= bound) for n, bound in zip(t.buckets, c.TURN_BUCKETS, strict=True))
                self._timings[name] = replace(t, count=t.count + 1, sum_seconds=t.sum_seconds + value, buckets=buckets)

    def answered(self) -> bool:
        """Whether a turn has gone through: the probe is ready when the path it probes has carried one."""
        with self._lock:
            return self._turns > self._failed

    def render(self) -> str:
        with self._lock:
            snapshot = Snapshot(1, self._turns, self._failed, dict(self._timings), dict(self._failures))
        return exposition(snapshot, self.track)


def probe_turn(device: DeviceClient, pcm: bytes) -> TurnResult:
    """One turn, (re)connecting first when needed: a refused connection is a failed turn of its kind."""
    if device.session_id is None:
        try:
            device.connect()
        except DeviceError as exc:
            device.close()
            return failed(exc.failure)
    result = device.turn(pcm)
    if not result.ok:
        device.close()  # the next turn starts on a fresh connection, as a device does after an error
        device.session_id = None
    return result


def run(config: dict[str, Any], recorder: TurnRecorder, speak: Callable[[str], bytes]) -> None:
    """Turns every `interval_seconds` until `duration_seconds` have passed (bounded by the clock and a count)."""
    texts = [str(t) for t in config.get("texts") or ["turn on the light in the kitchen"]]
    speech = [speak(t) for t in texts]
    interval = float(config.get("interval_seconds", 10.0))
    duration = float(config.get("duration_seconds", 7 * 86400.0))
    device = DeviceClient(
        str(config["ws_url"]),
        str(config["ota_url"]),
        str(config.get("device_id", "xzctl-probe-00")),
        timeout=float(config.get("timeout_seconds", 30.0)),
    )
    end = time.monotonic() + duration
    for i in range(int(duration / max(interval, 0.1)) + 1):
        started = time.monotonic()
        if started > end:
            break
        recorder.record(probe_turn(device, speech[i % len(speech)]))
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    device.close()


def serve(recorder: TurnRecorder, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                body, status = recorder.render().encode(), 200
            elif path == "/health":
                body, status = b"ok\n", 200
            elif path == "/ready":  # a fresh path is judged once it has carried a turn (warm, and known to work)
                body, status = (b"ok\n", 200) if recorder.answered() else (b"no turn answered yet\n", 503)
            else:
                body, status = b"not found\n", 404
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(path: str) -> None:
    from xzctl.loadtest.speech import speak

    config = json.loads(Path(path).read_bytes()[:MAX_CONFIG_BYTES])
    recorder = TurnRecorder(str(config.get("track", "stable")))
    serve(recorder, int(config["port"]))
    run(config, recorder, speak)


if __name__ == "__main__":
    main(sys.argv[1])
