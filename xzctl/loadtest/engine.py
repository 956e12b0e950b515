"""The Locust side of a load test: each emulated device is a Locust user speaking the device protocol.

Importing this module imports Locust, which monkey-patches the process for gevent: only the command that runs a
load test (or a worker) imports it. A device's turn writes Locust request events (`stt`, `first_audio`, `turn` for
answered turns, `failed` with its kind as the error), so Locust's stats are the one record of the run: its CSV files,
the summary, the progress line and the /metrics endpoint all read them. More devices than one process emulates:
Locust's master/worker mode (`workers` local processes, or `xzctl loadtest worker --master HOST:PORT` elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import gevent
import locust.runners
import locust.stats
from gevent.event import Event
from gevent.pywsgi import WSGIServer
from locust import User, argument_parser, task
from locust.env import Environment
from locust.runners import MasterRunner, Runner
from locust.stats import RequestStats, StatsCSVFileWriter

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.loadtest.corpus import Utterance, load_corpus
from xzctl.loadtest.settings import LoadSettings, check_workers, first_delay, next_delay
from xzctl.loadtest.summary import (
    FAILED,
    FIRST_AUDIO,
    STT,
    TIMED,
    TURN,
    Snapshot,
    Timing,
    cumulative,
    exposition,
    failure_kind,
)

locust.runners.WORKER_REPORT_INTERVAL = 1.0  # workers report each second: the run's end waits for one report, not 3 s
WORKERS_READY_SECONDS = 60.0


class TurnOutcome(Protocol):
    """What a device reports of a turn (read-only: `device.TurnResult` is frozen)."""

    @property
    def ok(self) -> bool: ...
    @property
    def failure(self) -> str | None: ...
    @property
    def stt_seconds(self) -> float | None: ...
    @property
    def first_audio_seconds(self) -> float | None: ...
    @property
    def turn_seconds(self) -> float | None: ...


class Device(Protocol):
    def connect(self) -> None: ...
    def turn(self, pcm16k: bytes) -> TurnOutcome: ...
    def close(self) -> None: ...


DeviceFactory = Callable[[LoadSettings, str], Device]


def protocol_device(settings: LoadSettings, device_id: str) -> Device:
    """A device speaking the real protocol to the node's xiaozhi server."""
    from xzctl.loadtest.device import DeviceClient

    device: Device = DeviceClient(settings.ws_url, settings.ota_url, device_id, timeout=settings.turn_timeout)
    return device


class DeviceUser(User):
    """One emulated device: a session, then turns at the run's arrivals until the run stops it."""

    factory: ClassVar[DeviceFactory] = protocol_device
    _loaded: ClassVar[tuple[dict[str, Any], LoadSettings, list[Utterance]] | None] = None

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.settings, self.corpus = _settings(environment)
        self.rng = random.Random()
        self.device_id = f"02:00:{self.rng.getrandbits(32):08x}"  # a locally administered MAC, as devices use
        self.device: Device | None = None
        self.took = 0.0

    def on_start(self) -> None:
        gevent.sleep(first_delay(self.settings.arrivals, self.settings.turn_every, self.rng, time.time()))

    def wait_time(self) -> float:
        return next_delay(self.settings.arrivals, self.settings.turn_every, self.rng, time.time(), self.took)

    @task
    def converse(self) -> None:
        started = time.monotonic()
        utterance = self.rng.choice(self.corpus)
        outcome, kind = self._turn(utterance.pcm)
        self.took = time.monotonic() - started
        fire = self.environment.events.request.fire
        if outcome is not None and outcome.ok:
            for name, value in (
                (STT, outcome.stt_seconds),
                (FIRST_AUDIO, outcome.first_audio_seconds),
                (TURN, outcome.turn_seconds),
            ):
                if value is not None:
                    fire(
                        request_type="turn",
                        name=name,
                        response_time=value * 1000,
                        response_length=0,
                        exception=None,
                        context={},
                    )
            return
        fire(
            request_type="turn",
            name=FAILED,
            response_time=self.took * 1000,
            response_length=0,
            exception=kind,
            context={},
        )
        self._hang_up()  # the next turn starts a fresh session, as a device does after a lost reply

    def _turn(self, pcm: bytes) -> tuple[TurnOutcome | None, str]:
        try:
            if self.device is None:
                self.device = type(self).factory(self.settings, self.device_id)
                try:
                    self.device.connect()
                except Exception as exc:  # a dead or refusing node is a failed turn, not a crashed device
                    self.device = None
                    return None, failure_kind(getattr(exc, "failure", "connect"))
            outcome = self.device.turn(pcm)
        except Exception as exc:  # the device's fault is this turn's failure; the run goes on
            return None, failure_kind(getattr(exc, "failure", "error"))
        return outcome, failure_kind(outcome.failure)

    def _hang_up(self) -> None:
        if self.device is not None:
            with contextlib.suppress(Exception):
                self.device.close()
            self.device = None

    def on_stop(self) -> None:
        self._hang_up()


def _settings(environment: Environment) -> tuple[LoadSettings, list[Utterance]]:
    # The master hands its settings to workers in Locust's parsed options; each process loads the corpus once.
    data: dict[str, Any] = vars(environment.parsed_options)["xz_settings"]
    if DeviceUser._loaded is None or DeviceUser._loaded[0] != data:
        settings = LoadSettings.from_dict(data)
        DeviceUser._loaded = (data, settings, load_corpus(settings.corpus))
    return DeviceUser._loaded[1], DeviceUser._loaded[2]


def snapshot(stats: RequestStats, devices: int, elapsed: float, interrupted: bool = False) -> Snapshot:
    timings = {}
    for name in TIMED:
        entry = stats.get(name, "turn")
        n = entry.num_requests
        timings[name] = Timing(
            count=n,
            p50=entry.get_response_time_percentile(0.5) / 1000 if n else None,
            p95=entry.get_response_time_percentile(0.95) / 1000 if n else None,
            max=entry.max_response_time / 1000 if n else None,
            sum_seconds=entry.total_response_time / 1000,
            buckets=cumulative(dict(entry.response_times)),
        )
    failures: dict[str, int] = {}
    for error in stats.errors.values():
        if error.name == FAILED:
            kind = failure_kind(error.error)
            failures[kind] = failures.get(kind, 0) + error.occurrences
    failed = stats.get(FAILED, "turn").num_requests
    return Snapshot(devices, timings[TURN].count + failed, failed, timings, failures, elapsed, interrupted)


@dataclass
class RunOptions:
    workers: int = 0  # local worker processes; 0 (and no remote ones): the devices run in this process
    remote_workers: int = 0  # workers on other machines the master waits for
    master_bind: tuple[str, int] = ("127.0.0.1", 0)  # port 0: any free one
    metrics_port: int | None = None  # serve /metrics on 127.0.0.1:PORT while the run lasts
    csv_prefix: str | None = None  # Locust's CSV files (PREFIX_stats.csv, ...)
    progress: Callable[[Snapshot], None] | None = None
    factory: DeviceFactory = protocol_device
    worker_command: list[str] | None = None  # how a local worker starts (its --master is appended); tests give fakes


WORKER_COMMAND = [sys.executable, "-m", "xzctl", "loadtest", "worker"]


def run(settings: LoadSettings, options: RunOptions) -> Snapshot:
    """Run the load test to its end (or Ctrl-C: the figures so far, `interrupted`); a node that does not answer a
    first device at all is an error before any load starts."""
    check_workers(options.workers, options.remote_workers)
    load_corpus(settings.corpus)  # bad corpus or no espeak-ng: one line before anything starts
    preflight(settings, options.factory)
    DeviceUser.factory = options.factory
    env = Environment(user_classes=[DeviceUser], parsed_options=_locust_options(xz_settings=settings.to_dict()))
    runner: Runner
    with contextlib.ExitStack() as stack:
        if options.workers or options.remote_workers:
            runner = env.create_master_runner(*options.master_bind)
            stack.enter_context(_workers(runner, options))
        else:
            runner = env.create_local_runner()
        stack.callback(runner.quit)
        if options.csv_prefix:
            writer = StatsCSVFileWriter(env, [0.5, 0.95, 0.99], options.csv_prefix, full_history=False)
            stack.callback(writer.close_files)
            stack.enter_context(_greenlet(writer.stats_writer))
            # runs first at exit: one more round of Locust's writer, so the files hold the final stats
            stack.callback(gevent.sleep, locust.stats.CSV_STATS_INTERVAL_SEC * 1.5)
        started = time.monotonic()

        def now() -> Snapshot:
            return snapshot(env.stats, runner.user_count, time.monotonic() - started)

        if options.metrics_port is not None:
            stack.enter_context(_metrics_server(options.metrics_port, now, settings.track))
        ctrl_c = stack.enter_context(_ctrl_c())
        runner.start(settings.devices, spawn_rate=settings.spawn_rate)
        interrupted = _until(started + settings.duration, now, options.progress, ctrl_c)
        devices = runner.user_count
        runner.stop()
        if isinstance(runner, MasterRunner):
            gevent.sleep(locust.runners.WORKER_REPORT_INTERVAL * 1.5)  # the workers' last stats report
        result = snapshot(env.stats, devices, time.monotonic() - started, interrupted)
    return result


def _locust_options(**extra: Any) -> argparse.Namespace:
    # Locust's own defaults (its master reads some of them), with ours beside them: they travel to the workers
    return argparse.Namespace(**argument_parser.default_args_dict(), **extra)


def _until(
    deadline: float, now: Callable[[], Snapshot], progress: Callable[[Snapshot], None] | None, ctrl_c: Event
) -> bool:
    """Progress once a second until `deadline`; True when Ctrl-C ended it first."""
    while (left := deadline - time.monotonic()) > 0:
        if ctrl_c.wait(min(1.0, left)):
            return True
        if progress is not None:
            progress(now())
    return False


@contextlib.contextmanager
def _ctrl_c() -> Iterator[Event]:
    """Ctrl-C as an event the run waits on. Python's own handler raises KeyboardInterrupt in whichever greenlet
    runs when the signal lands, often a device's, and Locust's task loop does not pass it on: on a loaded machine
    the run then went on to its end (seen: a 60 s run, Ctrl-C at 3 s, no figures until 91 s)."""
    pressed = Event()
    handler = gevent.signal_handler(signal.SIGINT, pressed.set)
    try:
        yield pressed
    finally:
        handler.cancel()


def preflight(settings: LoadSettings, factory: DeviceFactory) -> None:
    """One device connects (OTA and WebSocket hello) before the load starts: a dead or wrong URL ends here."""
    device = factory(settings, "02:00:00:00:00:00")
    # as long as a device waits for a turn: a loaded node's hello can take seconds (upstream's, measured: ~9 s)
    with gevent.Timeout(settings.turn_timeout, False):
        try:
            device.connect()
        except Exception as exc:
            raise UnknownStateError(
                f"no xiaozhi server answers at {settings.ws_url} (OTA {settings.ota_url}): {exc}",
                hint="is the node up? xzctl sandbox status, or give --url",
            ) from None
        with contextlib.suppress(Exception):
            device.close()
        return
    raise UnknownStateError(f"no xiaozhi server answered at {settings.ws_url} in {settings.turn_timeout:g} s")


@contextlib.contextmanager
def _greenlet(fn: Callable[[], object]) -> Iterator[None]:
    g = gevent.spawn(fn)
    try:
        yield
    finally:
        g.kill(block=False)


@contextlib.contextmanager
def _metrics_server(port: int, now: Callable[[], Snapshot], track: str) -> Iterator[None]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [exposition(now(), track).encode()]

    server = WSGIServer(("127.0.0.1", port), app, log=None)
    try:
        server.start()
    except OSError as exc:
        raise BadInputError(f"--metrics-port {port}: {exc.strerror}") from None
    try:
        yield
    finally:
        server.stop(timeout=1)


@contextlib.contextmanager
def _workers(runner: MasterRunner, options: RunOptions) -> Iterator[None]:
    """Start the local workers and wait until they and the remote ones have connected."""
    command = [*(options.worker_command or WORKER_COMMAND), "--master", f"127.0.0.1:{runner.server.port}"]
    count = options.workers + options.remote_workers
    # their own session: Ctrl-C reaches the master only, which stops them through Locust
    procs = [
        subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL) for _ in range(options.workers)
    ]
    try:
        deadline = time.monotonic() + WORKERS_READY_SECONDS
        while runner.worker_count < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise UnknownStateError(
                    f"{runner.worker_count} of {count} workers connected in {WORKERS_READY_SECONDS:g} s"
                )
            gevent.sleep(0.2)
        yield
    finally:
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def work(master_host: str, master_port: int, factory: DeviceFactory = protocol_device) -> None:
    """A worker: emulate the devices the master gives this process until the master quits."""
    DeviceUser.factory = factory
    env = Environment(user_classes=[DeviceUser])
    runner = env.create_worker_runner(master_host, master_port)
    runner.greenlet.join()
