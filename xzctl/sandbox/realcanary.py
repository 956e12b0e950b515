"""An ASR rollout on the sandbox's real node: the pins a rollout step asks for, made real on that node.

The node's stable path is one ASR replica behind its own xiaozhi server and probe (`sandbox up --real-node`). A
canary pin starts a second replica of the pinned release with a turn path of its own (server and probe, track
canary: xzctl.sandbox.turnpath), adds both to the sandbox Prometheus and sends half of the load generator's scored
requests to it, so the analysis reads real turns (`turn_first_audio_p95_seconds`, `turn_failure_ratio`) and the
word error rate of both tracks. Meanwhile the simulator's copy of the node carries no devices (then what it was
given back), so the service checks too compare the two real replicas. Promotion restarts the stable replica on the new release (same ports: its server
and probe stay) and removes the canary's path; a rollback removes it. Every process is recorded in the sandbox
state as soon as it runs, so `sandbox down` (or a later `rollout resume`) stops what runs now.

A release runs from its built image when the sandbox's state dir holds one (`xzctl images build asr --version V`),
else from the tree's package under that release's label (xzctl.sandbox.served says which in the record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xzctl import service_contract as sc
from xzctl.errors import BadInputError, UnknownStateError
from xzctl.images.catalog import ImageRef, load_catalog
from xzctl.images.provenance import input_drift
from xzctl.images.run import RunningService, start_service, stop_service, wait_ready
from xzctl.manifests.pins import ImagePins, ServicePin
from xzctl.sandbox.client import SimulatorClient
from xzctl.sandbox.processes import free_port
from xzctl.sandbox.prometheus import rescrape
from xzctl.sandbox.realnode import (
    READY_TIMEOUT,
    other_ports,
    post_asr_split,
    scrape_target,
    service_record,
    stop_recorded,
)
from xzctl.sandbox.run import SandboxInfo, record_real_node, sandbox_status
from xzctl.sandbox.served import service_image
from xzctl.sandbox.turnpath import server_dirs, start_path
from xzctl.spec import load_fleet

SERVICE = "asr"


def _key(s: RunningService) -> str:
    return f"{s.name}-{s.port}"


class RealNodeAsr:
    """The real node's ASR tracks as a deploy target (`apply`, as a Deployer's); state in the sandbox's record."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self._ours: dict[str, RunningService] = {}  # started by this process: stopped through their Popen

    def _info(self) -> tuple[SandboxInfo, dict[str, Any]]:
        info = sandbox_status(self.state_dir)
        record = info.real_node if info is not None else None
        if info is None or not record or not record.get("xiaozhi") or not record.get("log_dir"):
            raise UnknownStateError(
                f"the sandbox in {self.state_dir} runs no real node with a xiaozhi server",
                hint="xzctl sandbox up --real-node NODE --xiaozhi-source DIR",
            )
        tracks = record.setdefault("asr_tracks", {})
        if "stable" not in tracks:  # the replica `sandbox up` started is the stable track
            tracks["stable"] = next(k for k in record["services"] if k.startswith(f"{SERVICE}-"))
        return info, record

    def apply(self, pins: ImagePins, _previous: ImagePins | None) -> None:
        info, record = self._info()
        pin = pins.nodes.get(str(record["node"]), {}).get(SERVICE)
        if pin is None:
            return
        services, tracks = record["services"], record["asr_tracks"]
        canary = tracks.get("canary")
        if canary is not None and services[canary]["image"] != pin.canary:
            self._stop_canary(info, record)  # rolled back, promoted, or another canary image
        if not same_release(services[tracks["stable"]]["image"], pin.stable):
            self._restart_stable(record, pin.stable)
        if pin.canary is not None and tracks.get("canary") is None:
            self._start_canary(info, record, pin.canary)
        self._split(record, pin)

    def _split(self, record: dict[str, Any], pin: ServicePin) -> None:
        """The load generator's scored requests: half to each track while a canary runs, else all to stable."""
        services, tracks = record["services"], record["asr_tracks"]
        weight = 0.5 if tracks.get("canary") else 1.0
        targets = [(services[tracks["stable"]]["url"], "stable", str(pin.stable), weight)]
        if tracks.get("canary"):
            targets.append((services[tracks["canary"]]["url"], "canary", str(pin.canary), weight))
        loadgen = next(s for k, s in record["services"].items() if k.startswith("loadgen-"))
        post_asr_split(str(loadgen["url"]), targets)

    def _start(self, record: dict[str, Any], ref: str, track: str, port: int, ports: dict[str, int]) -> RunningService:
        version = release_version(ref)
        service = start_service(
            SERVICE,
            port=port,
            state_dir=self.state_dir,
            log_dir=Path(record["log_dir"]),
            version=version,
            env={sc.TRACK_ENV: track, sc.IMAGE_ENV: ref},
            ports=ports,
        )
        self._ours[_key(service)] = service
        self._note(record, [service])
        wait_ready(service, READY_TIMEOUT)
        return service

    def _note(self, record: dict[str, Any], started: list[RunningService]) -> None:
        """Record processes the moment they run: a failure after this still leaves them to `sandbox down`."""
        for s in started:
            record["services"][_key(s)] = service_record(s)
            record["pids"].append(s.process.pid)
            if s.container:
                record["containers"].append(s.container)
        record_real_node(self.state_dir, record)

    def _twin(self, info: SandboxInfo, record: dict[str, Any], devices: int | None) -> None:
        """Set the simulator's copy of the node to `devices` (None: it follows the load again). While two real
        tracks are compared it carries none: its stable series would outweigh the real stable replica's, so the
        service checks would compare a simulated stable with a real canary."""
        SimulatorClient(info.simulator_url).control(
            {"action": "set_devices", "node": record["node"], "devices": devices}
        )

    def _start_canary(self, info: SandboxInfo, record: dict[str, Any], ref: str) -> None:
        twin = SimulatorClient(info.simulator_url).state()["nodes"][record["node"]].get("pinned")
        record["asr_tracks"]["twin_pinned"] = twin
        record_real_node(self.state_dir, record)
        self._twin(info, record, 0)
        replica = self._start(record, ref, "canary", free_port(), other_ports(SERVICE))
        record["asr_tracks"]["canary"] = _key(replica)
        record["asr_tracks"]["canary_path"] = []
        record_real_node(self.state_dir, record)
        services = record["services"]
        processes = int(record.get("server_processes") or 1)
        record["server_dirs"] += server_dirs(Path(record["log_dir"]), "canary", replica.port, processes)
        record_real_node(self.state_dir, record)  # before they start: a stop finds them by their directories
        started: list[RunningService] = []
        try:
            urls = start_path(
                load_fleet(info.fleet_path).fleet,
                str(record["node"]),
                source=str(record["xiaozhi_source"]),
                log_dir=Path(record["log_dir"]),
                asr=replica,
                tts_url=next(s["url"] for k, s in services.items() if k.startswith("tts-")),
                llm_url=next(s["url"] for k, s in services.items() if k.startswith("llm-")),
                track="canary",
                processes=processes,
                started=started,
                probes=started,
            )
        finally:
            self._ours.update({_key(s): s for s in started})
            record["asr_tracks"]["canary_path"] = [_key(s) for s in started]
            self._note(record, started)
        record["asr_tracks"]["canary_urls"] = urls
        scraped = [replica, *(s for s in started if s.name == "probe")]
        rescrape(
            Path(info.work_dir),
            info.pids["prometheus"],
            [scrape_target(str(record["node"]), str(record["region"]), s) for s in scraped],
            set(),
        )
        record_real_node(self.state_dir, record)

    def _stop_canary(self, info: SandboxInfo, record: dict[str, Any]) -> None:
        tracks = record["asr_tracks"]
        keys = [tracks["canary"], *tracks.get("canary_path", [])]
        self._stop(record, keys)
        instances = {f"{record['node']}/{k}" for k in keys}
        rescrape(Path(info.work_dir), info.pids["prometheus"], [], instances)
        port = int(tracks["canary"].rsplit("-", 1)[1])
        gone = set(server_dirs(Path(record["log_dir"]), "canary", port, int(record.get("server_processes") or 1)))
        record["server_dirs"] = [d for d in record["server_dirs"] if d not in gone]
        self._twin(info, record, tracks.get("twin_pinned"))
        for name in ("canary", "canary_path", "canary_urls", "twin_pinned"):
            tracks.pop(name, None)
        record_real_node(self.state_dir, record)

    def _restart_stable(self, record: dict[str, Any], ref: str) -> None:
        """The stable replica on `ref`, on the same ports: its server, probe and scrape target stay as they are."""
        key = record["asr_tracks"]["stable"]
        old = record["services"][key]
        self._stop(record, [key])
        port = int(key.rsplit("-", 1)[1])
        replica = self._start(record, ref, "stable", port, dict(old.get("ports") or {}))
        record["asr_tracks"]["stable"] = _key(replica)
        catalog = load_catalog()
        drifted = {d.image: d.problem for d in input_drift(catalog)}
        record.setdefault("images", {})[SERVICE] = service_image(
            SERVICE, replica.image, replica.source, catalog, drifted
        )
        record_real_node(self.state_dir, record)

    def _stop(self, record: dict[str, Any], keys: list[str]) -> None:
        """Stop these recorded services: through their Popen when this process started them, else by pid."""
        services = record["services"]
        others = [int(services[k]["pid"]) for k in keys if k in services and k not in self._ours]
        for key in keys:
            if key in self._ours:
                stop_service(self._ours.pop(key))
        stop_recorded(others, set(record.get("server_dirs", [])), [])
        gone = {int(services[k]["pid"]) for k in keys if k in services}
        record["pids"] = [p for p in record["pids"] if p not in gone]
        for key in keys:
            services.pop(key, None)


def same_release(a: str, b: str) -> bool:
    """Two references to one release (a spec may pin by tag and digest, a running service names its tag)."""
    x, y = ImageRef.parse(a), ImageRef.parse(b)
    return (x.repository, x.tag) == (y.repository, y.tag)


def release_version(ref: str) -> str:
    """The catalog ASR release `ref` names (repository:version, with or without a digest)."""
    catalog = load_catalog()
    image, release = catalog.resolve(ref)
    if image.info.name != SERVICE:
        raise BadInputError(f"{ref} is not an ASR image", hint=f"a release of {catalog.get(SERVICE).info.repository}")
    return release.version
