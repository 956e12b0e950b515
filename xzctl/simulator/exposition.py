"""Write a node's metrics as Prometheus text (live scrapes) or OpenMetrics samples (backfill).

Names and labels come only from the metrics contract. Live scrapes leave out region/node: the scrape
config sets them as target labels, as for a real exporter. Backfill samples carry every target
label (job, instance, region, node) themselves, so history and live series are the same series.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from xzctl.metrics import contract as c
from xzctl.simulator.load import end_to_end_owner
from xzctl.simulator.model import CPU_MODES, MODEL_FB_MIB, FleetModel, NodeState

LE_LABELS = tuple(f"{b:g}" for b in c.LATENCY_BUCKETS)


@dataclass
class Family:
    metric: c.Metric
    samples: list[str]

    def header(self, openmetrics: bool) -> str:
        name = self.metric.name
        if openmetrics and self.metric.type is c.MetricType.COUNTER:
            name = name.removesuffix("_total")  # OpenMetrics names the counter family without _total
        return f"# HELP {name} {self.metric.help}\n# TYPE {name} {self.metric.type.value}\n"


def _labels(base: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    if base and inner:
        return "{" + base + "," + inner + "}"
    return "{" + (base or inner) + "}" if (base or inner) else ""


# Label strings are the bulk of a scrape's cost; they only change when an image is deployed, so they
# are built once per (node labels, service, track, image) and reused by every later scrape.
@lru_cache(maxsize=65536)
def _request_prefixes(base: str, service: str, track: str, image: str) -> tuple[str, ...]:
    keys = {"service": service, "track": track, "image": image}
    rd = c.REQUEST_DURATION.name
    return (
        *(f"{rd}_bucket{_labels(base, **keys, le=le)} " for le in (*LE_LABELS, "+Inf")),
        f"{rd}_sum{_labels(base, **keys)} ",
        f"{rd}_count{_labels(base, **keys)} ",
        f"{c.REQUESTS.name}{_labels(base, **keys, result='ok')} ",
        f"{c.REQUESTS.name}{_labels(base, **keys, result='error')} ",
        f"{c.INFERENCE_ERRORS.name}{_labels(base, **keys)} ",
    )


@lru_cache(maxsize=4096)
def _cpu_prefixes(base: str, cores: int) -> tuple[tuple[str, str], ...]:
    return tuple(
        (mode, f"{c.NODE_CPU_SECONDS.name}{_labels(base, cpu=str(i), mode=mode)} ")
        for i in range(cores)
        for mode in CPU_MODES
    )


def node_families(model: FleetModel, node: NodeState, base: str = "") -> list[Family]:
    """Every metric family of one node, as sample lines without timestamps."""
    lab = _labels
    histogram: list[str] = []
    requests: list[str] = []
    inference: list[str] = []
    for (service, track), s in sorted(node.series.items()):
        owner = end_to_end_owner(node.images) if service == "end_to_end" else service
        image = node.images[owner][track] or node.images[owner]["stable"] or ""
        *buckets, sum_prefix, count_prefix, ok, error, failed = _request_prefixes(base, service, track, image)
        histogram.extend(f"{prefix}{value:.3f}" for prefix, value in zip(buckets, (*s.buckets, s.count), strict=True))
        histogram.append(f"{sum_prefix}{s.total:.3f}")
        histogram.append(f"{count_prefix}{s.count:.3f}")
        requests.append(f"{ok}{s.count - s.errors:.6f}")
        requests.append(f"{error}{s.errors:.6f}")
        if service != "end_to_end":
            inference.append(f"{failed}{s.inference_errors:.6f}")
    build = [
        f"{c.BUILD_INFO.name}{lab(base, service=svc, track=track, image=image)} 1"
        for svc, tracks in sorted(node.images.items())
        for track, image in tracks.items()
        if image
    ]
    cpu_seconds = node.cpu_seconds
    cpu = [
        f"{prefix}{cpu_seconds.get(mode, 0.0):.3f}"
        for mode, prefix in _cpu_prefixes(base, node.spec.capacity.cpu_cores)
    ]
    total = float(node.spec.capacity.memory_gb * 2**30)
    gpu = node.spec.capacity.gpu
    fb_total = gpu.memory_gb * 1024.0
    fb_used = min(fb_total, MODEL_FB_MIB + node.gpu_share * fb_total * 0.5) if gpu.count else 0.0
    gpu_keys = [{"gpu": str(i), "modelName": gpu.model} for i in range(gpu.count)]
    return [
        Family(c.ACTIVE_DEVICES, [f"{c.ACTIVE_DEVICES.name}{lab(base)} {node.active}"]),
        Family(c.SESSIONS_OPENED, [f"{c.SESSIONS_OPENED.name}{lab(base)} {node.sessions_opened:.3f}"]),
        Family(c.REQUEST_DURATION, histogram),
        Family(c.REQUESTS, requests),
        Family(c.INFERENCE_ERRORS, inference),
        Family(
            c.CACHE_REQUESTS,
            [
                f"{c.CACHE_REQUESTS.name}{lab(base, tier=t, result=r)} {v:.3f}"
                for (t, r), v in sorted(node.cache.items())
            ],
        ),
        Family(
            c.QUEUE_SIZE,
            [f"{c.QUEUE_SIZE.name}{lab(base, service=s)} {q:.1f}" for s, q in sorted(node.queue.items())],
        ),
        Family(
            c.SERVICE_REPLICAS,
            [
                f"{c.SERVICE_REPLICAS.name}{lab(base, service=name)} {model.autoscaler.count(node.spec, name, svc)}"
                for name, svc in sorted(node.spec.services.inference().items())
                if model.autoscaler.enabled  # like kube-state-metrics for HPAs: no autoscaler, no series
            ],
        ),
        Family(c.BUILD_INFO, build),
        Family(c.NODE_CPU_SECONDS, cpu),
        Family(c.NODE_MEMORY_TOTAL, [f"{c.NODE_MEMORY_TOTAL.name}{lab(base)} {total:.0f}"]),
        Family(c.NODE_MEMORY_AVAILABLE, [f"{c.NODE_MEMORY_AVAILABLE.name}{lab(base)} {total - node.memory_used:.0f}"]),
        Family(c.GPU_UTIL, [f"{c.GPU_UTIL.name}{lab(base, **k)} {node.gpu_share * 100:.1f}" for k in gpu_keys]),
        Family(c.GPU_FB_USED, [f"{c.GPU_FB_USED.name}{lab(base, **k)} {round(fb_used)}" for k in gpu_keys]),
        Family(c.GPU_FB_FREE, [f"{c.GPU_FB_FREE.name}{lab(base, **k)} {round(fb_total - fb_used)}" for k in gpu_keys]),
    ]


def render_text(families: list[Family]) -> str:
    """Prometheus text exposition format 0.0.4."""
    parts: list[str] = []
    for family in families:
        if family.samples:
            parts.append(family.header(openmetrics=False))
            parts.append("\n".join(family.samples))
            parts.append("\n")
    return "".join(parts)
