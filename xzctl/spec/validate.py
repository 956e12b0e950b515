"""Cross-field rules of a fleet spec: what the schema alone cannot see.

Errors refuse the spec. Warnings are contradictions an operator must know about but may keep
(the seed plan's own alert thresholds, say); `xzctl fleet validate --strict` refuses those too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from xzctl.errors import SpecProblem
from xzctl.spec.autoscaling import cloud_gpu_demand_at_max, node_gpu_demand_at_max, peak_shortfalls
from xzctl.spec.edge import CORES_PER_SERVER_PROCESS
from xzctl.spec.load import Path_, format_path
from xzctl.spec.models import CapexKind, Cloud, EdgeNode, Environment, Fleet, Resources
from xzctl.spec.quantity import parse_cpu, parse_memory

# Kubernetes object names are DNS labels (<= 63); the longest name derived from a node id is
# "<id>-xiaozhi-server-canary" (22 more characters).
MAX_NODE_ID = 40


def node_path(fleet: Fleet, node: EdgeNode) -> Path_:
    index = [n.id for n in fleet.regions[node.region].edge_nodes].index(node.id)
    return ("regions", node.region, "edge_nodes", index)


def node_gpu_demand(node: EdgeNode) -> int:
    """GPU slots the node's inference services ask for."""
    return sum(s.replicas * s.gpu_per_replica for s in node.services.inference().values())


def _rolled_pods(node: EdgeNode) -> dict[str, tuple[int, Resources, int]]:
    """(pods, requests of one, GPU slots of one) of each service a rollout changes, by its spec name."""
    s = node.services
    pods = {name: (svc.replicas, svc.resources, svc.gpu_per_replica) for name, svc in s.inference().items()}
    pods["xiaozhi_server"] = (node.server_processes, s.xiaozhi_server.resources, 0)
    if s.coordinator is not None:
        pods["coordinator"] = (s.coordinator.replicas, s.coordinator.resources, 0)
    return pods


def node_cpu_memory_requests(node: EdgeNode) -> tuple[float, int]:
    """CPU cores and memory bytes requested by every pod the node runs, Redis included."""
    pods = [(n, r) for n, r, _ in _rolled_pods(node).values()] + [(1, node.services.cache.resources)]
    cpu = sum(n * parse_cpu(r.cpu_request) for n, r in pods)
    mem = sum(n * parse_memory(r.memory_request) for n, r in pods)
    return cpu, mem


def canary_shortfall(node: EdgeNode) -> tuple[str, str] | None:
    """(service, what is short) when one more pod of a service does not fit beside the node's pods: a rollout's
    canary (and a stable update's surge pod) is that pod, and it would stay Pending until its deadline."""
    cpu, mem = node_cpu_memory_requests(node)
    return _short_of_one_pod(node, cpu, mem, node_gpu_demand(node))


def _short_of_one_pod(node: EdgeNode, cpu: float, mem: int, gpu_demand: int) -> tuple[str, str] | None:
    """`canary_shortfall` from the node's requests, which validation has already summed."""
    free_cpu, free_mem = node.capacity.cpu_cores - cpu, node.capacity.memory_gb * 2**30 - mem
    free_gpu = node.capacity.gpu.slots - gpu_demand
    for name, (_, r, gpu) in sorted(_rolled_pods(node).items()):
        short = [
            f"{r.cpu_request} CPU ({free_cpu:g} free)" if parse_cpu(r.cpu_request) > free_cpu else "",
            f"{r.memory_request} memory ({free_mem / 2**30:.1f} GiB free)"
            if parse_memory(r.memory_request) > free_mem
            else "",
            f"{gpu} GPU slot(s) ({free_gpu} free)" if gpu > free_gpu else "",
        ]
        if any(short):
            return name, ", ".join(x for x in short if x)
    return None


def all_images(fleet: Fleet) -> Iterable[tuple[Path_, str]]:
    for node in fleet.edge_nodes():
        base = node_path(fleet, node)
        s = node.services
        yield (*base, "services", "xiaozhi_server", "image"), s.xiaozhi_server.image
        for name, svc in s.inference().items():
            yield (*base, "services", name, "image"), svc.image
        yield (*base, "services", "cache", "image"), s.cache.image
        if s.coordinator is not None:
            yield (*base, "services", "coordinator", "image"), s.coordinator.image
    for i, model in enumerate(fleet.cloud.llm_models):
        yield ("cloud", "llm_models", i, "image"), model.image
    yield ("cloud", "orchestrator", "image"), fleet.cloud.orchestrator.image
    yield ("cloud", "backup", "image"), fleet.cloud.backup.image


class _Add(Protocol):
    def __call__(self, path: Path_, message: str, fix: str, severity: str = "error") -> None: ...


def cross_checks(
    fleet: Fleet, *, file: str, lines: dict[Path_, int], origin: Callable[[Path_], Path_] | None = None
) -> list[SpecProblem]:
    """Every cross-field problem; `origin` maps a resolved path to where the file sets it (a node profile)."""
    problems: list[SpecProblem] = []
    # Nodes sharing a profile break a rule at one place of the file: said once, with how many more like it.
    repeats: Counter[tuple[str, str, str]] = Counter()

    def add(path: Path_, message: str, fix: str, severity: str = "error") -> None:
        resolved, path = path, origin(path) if origin else path
        if path != resolved and resolved[:1] == ("regions",) and len(resolved) > 3:
            node = fleet.regions[str(resolved[1])].edge_nodes[int(resolved[3])]
            message = f"{message} (edge node {node.id}, from its profile)"
        line = next((lines[path[:cut]] for cut in range(len(path), -1, -1) if path[:cut] in lines), None)
        key = (format_path(path), fix, severity)
        repeats[key] += 1
        if repeats[key] == 1:
            problems.append(SpecProblem(file, key[0], message, fix, line, severity))

    ids = Counter(n.id for n in fleet.edge_nodes())
    hostnames = Counter(n.public_hostname for n in fleet.edge_nodes())
    seen_ids: set[str] = set()
    seen_hosts: set[str] = set()
    for region_name, region in fleet.regions.items():
        for index, node in enumerate(region.edge_nodes):
            path: Path_ = ("regions", region_name, "edge_nodes", index)  # by position: ids may be duplicated
            _node_naming(node, region_name, path, add)
            if ids[node.id] > 1 and node.id in seen_ids:
                add((*path, "id"), f"duplicate edge node id {node.id!r}", "give every edge node a unique id")
            seen_ids.add(node.id)
            if hostnames[node.public_hostname] > 1 and node.public_hostname in seen_hosts:
                add(
                    (*path, "public_hostname"),
                    f"public_hostname {node.public_hostname!r} is used twice",
                    "each edge node needs its own hostname",
                )
            seen_hosts.add(node.public_hostname)
            _node_capacity(node, path, add)
        if region.devices > region.max_devices:
            add(
                ("regions", region_name),
                f"{region.devices} devices but capacity is {region.max_devices}",
                "add an edge node to the region or move devices",
            )

    if fleet.metadata.environment is Environment.PRODUCTION:
        _digest_pins(fleet, add)
    _alert_coherence(fleet, add)
    _cost_coherence(fleet, add)
    _autoscaling_budget(fleet, add)
    _fleet_totals(fleet, add)
    for index, event in enumerate(fleet.known_events):
        for unknown in sorted(set(event.regions) - set(fleet.regions)):
            add(
                ("known_events", index, "regions"),
                f"event {event.name!r}: no region {unknown!r}",
                "name a region of the fleet",
            )
    return [_counted(p, repeats[(p.path, p.fix, p.severity)] - 1) for p in problems]


def _counted(problem: SpecProblem, more: int) -> SpecProblem:
    return replace(problem, message=f"{problem.message} (+{more} more like it)") if more else problem


def _node_naming(node: EdgeNode, region_name: str, path: Path_, add: _Add) -> None:
    if node.region != region_name:
        add(
            (*path, "region"),
            f"node says region {node.region!r} but is listed under {region_name!r}",
            "drop the field or move the node",
        )
    if len(node.id) > MAX_NODE_ID:
        add(
            (*path, "id"),
            f"edge node id {node.id!r} has {len(node.id)} characters, more than {MAX_NODE_ID}",
            "shorten it: Kubernetes names derived from it (<id>-xiaozhi-server-canary) must fit 63",
        )


def _node_capacity(node: EdgeNode, path: Path_, add: _Add) -> None:
    cap = node.capacity
    if node.devices > cap.max_devices:
        add(
            (*path, "devices"),
            f"{node.devices} devices assigned but max_devices is {cap.max_devices}",
            "move devices to another node or raise capacity.max_devices",
        )
    demand, slots = node_gpu_demand(node), cap.gpu.slots
    if demand > slots:
        add(
            (*path, "services"),
            f"services need {demand} GPU slots but the node has {cap.gpu.count} GPUs x "
            f"{cap.gpu.time_slicing_replicas} time-slicing replicas = {slots} slots",
            "lower replicas or gpu_per_replica, or raise capacity.gpu.time_slicing_replicas",
        )
    processes = node.services.xiaozhi_server.processes
    if processes is not None and processes > cap.cpu_cores:
        add(
            (*path, "services", "xiaozhi_server", "processes"),
            f"{processes} xiaozhi server processes on {cap.cpu_cores} CPU cores: their event loops contend for cores",
            f"at most one per core (omit it for one per {CORES_PER_SERVER_PROCESS} cores)",
            "warning",
        )
    cpu, mem = node_cpu_memory_requests(node)
    if cpu > cap.cpu_cores:
        add(
            (*path, "services"),
            f"pods request {cpu:g} CPU cores but the node has {cap.cpu_cores}",
            "lower replicas, xiaozhi_server.processes or resources.cpu_request",
        )
    if mem > cap.memory_gb * 2**30:
        add(
            (*path, "services"),
            f"pods request {mem / 2**30:.1f} GiB (Redis limit included) but the node has {cap.memory_gb} GB",
            "lower replicas, xiaozhi_server.processes, resources.memory_request or cache.memory_limit",
        )
    # a node already over its capacity has its error; the canary's room is the next thing to see
    fits = cpu <= cap.cpu_cores and mem <= cap.memory_gb * 2**30 and demand <= slots
    short = _short_of_one_pod(node, cpu, mem, demand) if fits else None
    if short is not None:
        add(
            (*path, "services", short[0]),
            f"no room for a rollout's canary pod of {short[0]}: it needs {short[1]}",
            "leave room on the node for one more pod of it: lower replicas or resources requests",
            "warning",
        )


def _digest_pins(fleet: Fleet, add: _Add) -> None:
    for path, image in all_images(fleet):
        if "@sha256:" not in image:
            add(
                path,
                f"image {image!r} is not pinned by digest, which production requires",
                "use the digest from the image catalog: xzctl images show NAME",
            )


def cloud_unplaced_replicas(cloud: Cloud) -> int:
    """LLM replicas left over when every replica is placed whole on one GPU server, largest first (first-fit
    decreasing, as optimal as packing gets for the power-of-two sizes models use): 0 when the cloud schedules."""
    free = [cloud.gpu_servers.gpus_per_server] * cloud.gpu_servers.count
    left = 0
    for size in sorted((m.gpu_per_replica for m in cloud.llm_models for _ in range(m.replicas)), reverse=True):
        fits = next((i for i, f in enumerate(free) if f >= size), None)
        if fits is None:
            left += 1
        else:
            free[fits] -= size
    return left


def _cloud_gpus(fleet: Fleet, add: _Add) -> None:
    """LLM Deployments whose pods cannot all be placed never become ready: `provision cloud` would wait until
    its timeout, so refuse the spec here."""
    cloud, servers = fleet.cloud, fleet.cloud.gpu_servers
    too_large = [m for m in cloud.llm_models if m.replicas and m.gpu_per_replica > servers.gpus_per_server]
    for index, model in enumerate(cloud.llm_models):
        if model in too_large:
            add(
                ("cloud", "llm_models", index, "gpu_per_replica"),
                f"{model.name} needs {model.gpu_per_replica} GPUs per replica but a cloud server has "
                f"{servers.gpus_per_server}: no replica can be scheduled",
                "lower gpu_per_replica or use larger cloud GPU servers",
            )
    where = f"the cloud has {servers.count} servers x {servers.gpus_per_server} = {servers.gpus}"
    if cloud.llm_gpu_demand > servers.gpus:
        add(
            ("cloud", "llm_models"),
            f"LLM replicas ask for {cloud.llm_gpu_demand} GPUs but {where}",
            "lower replicas or add cloud GPU servers (see xzctl fleet plan)",
        )
    elif not too_large and (left := cloud_unplaced_replicas(cloud)):
        add(
            ("cloud", "llm_models"),
            f"LLM replicas ask for {cloud.llm_gpu_demand} GPUs and {where}, but {left} replica(s) cannot be "
            "placed whole on one server",
            "match replica sizes to the servers' GPUs or add a cloud GPU server",
        )


def _fleet_totals(fleet: Fleet, add: _Add) -> None:
    _cloud_gpus(fleet, add)
    if fleet.devices > fleet.kpis.throughput.concurrent_devices:
        add(
            ("kpis", "throughput", "concurrent_devices"),
            f"the fleet assigns {fleet.devices} devices, above the KPI of {fleet.kpis.throughput.concurrent_devices}",
            "raise the KPI or assign fewer devices",
            "warning",
        )


def _alert_coherence(fleet: Fleet, add: _Add) -> None:
    kpi, alerts = fleet.kpis, fleet.alerts
    e2e_s = kpi.latency.end_to_end_ms / 1000
    if alerts.high_latency.p95_seconds is not None and alerts.high_latency.p95_seconds > e2e_s:
        add(
            ("alerts", "high_latency", "p95_seconds"),
            f"alert fires at p95 {alerts.high_latency.p95_seconds:g}s, above the end-to-end KPI of {e2e_s:g}s",
            "lower it to the KPI or omit it to derive it",
            "warning",
        )
    hit = alerts.cache_hit_rate_low.min_ratio
    if hit is not None and hit < kpi.efficiency.cache_hit_percent / 100:
        add(
            ("alerts", "cache_hit_rate_low", "min_ratio"),
            f"alert fires below {hit:g} but the KPI is {kpi.efficiency.cache_hit_percent:g}%: the KPI is missed "
            f"long before anyone is paged",
            f"set it to {kpi.efficiency.cache_hit_percent / 100:g} or omit it to derive it from the KPI",
            "warning",
        )
    err = alerts.model_inference_failure.error_ratio
    if err is not None and err > kpi.reliability.error_rate_percent / 100:
        add(
            ("alerts", "model_inference_failure", "error_ratio"),
            f"alert fires above {err:g} ({err * 100:g}%) but the error-rate KPI is "
            f"{kpi.reliability.error_rate_percent:g}%",
            f"set it to {kpi.reliability.error_rate_percent / 100:g} or omit it to derive it",
            "warning",
        )


def _cost_coherence(fleet: Fleet, add: _Add) -> None:
    nodes = len(fleet.edge_nodes())
    for i, item in enumerate(fleet.cost.capex):
        if item.kind is CapexKind.EDGE_SERVER and item.quantity != nodes:
            add(
                ("cost", "capex", i, "quantity"),
                f"{item.quantity} edge servers priced but the fleet has {nodes}",
                "make the quantity match the edge nodes",
                "warning",
            )
        if item.kind is CapexKind.CLOUD_GPU_SERVER and item.quantity != fleet.cloud.gpu_servers.count:
            add(
                ("cost", "capex", i, "quantity"),
                f"{item.quantity} cloud GPU servers priced but cloud.gpu_servers.count is "
                f"{fleet.cloud.gpu_servers.count}",
                "make them match",
                "warning",
            )


def _autoscaling_budget(fleet: Fleet, add: _Add) -> None:
    """Autoscaler max within the GPUs, and N+1 at peak; warnings (`fleet plan --check` fails on them)."""
    for node in fleet.edge_nodes():
        demand, slots = node_gpu_demand_at_max(node), node.capacity.gpu.slots
        if node_gpu_demand(node) <= slots < demand:
            add(
                (*node_path(fleet, node), "services"),
                f"at their autoscaling max the services need {demand} GPU slots but the node has {slots}: "
                "the last replicas would stay Pending at peak",
                "lower autoscaling.max or gpu_per_replica, or raise capacity.gpu.time_slicing_replicas",
                "warning",
            )
    for name, shorts in peak_shortfalls(fleet).items():
        region = fleet.regions[name]
        for short in shorts:
            index = [n.id for n in region.edge_nodes].index(short.node)
            add(
                ("regions", name, "edge_nodes", index, "services", short.service, "autoscaling", "max"),
                f"not N+1 at peak: when {short.lost} is lost, {short.node}'s {short.reason}",
                f"raise services.{short.service}.autoscaling.max to {short.needed} (within the GPU slots)",
                "warning",
            )
    demand, gpus = cloud_gpu_demand_at_max(fleet.cloud), fleet.cloud.gpu_servers.gpus
    if fleet.cloud.llm_gpu_demand <= gpus < demand:
        add(
            ("cloud", "llm_models"),
            f"at their autoscaling max the LLM models ask for {demand} GPUs but the cloud has {gpus}",
            "lower autoscaling.max or add cloud GPU servers",
            "warning",
        )
