"""The metrics contract of a Xiaozhi fleet: metric names, types and labels, in one place.

The upstream xiaozhi server exposes no metrics, so xzctl defines what the fleet's services (the
edge coordinator, the inference images, Redis and node/GPU exporters) expose. Alert rules, checks,
the rollout analysis, dashboards and the fleet simulator all import these names; none spells a
metric name of its own. docs/metrics.md is rendered from this module (and tested against it).

Every xiaozhi_* series carries the target labels `region` and `node` (the edge node id). The
Prometheus job that scrapes edge nodes is `EDGE_JOB`; one target per edge node, so `up == 0` of a
target means the node is unreachable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

EDGE_JOB = "xiaozhi-edge"

# Label names
REGION = "region"
NODE = "node"
SERVICE = "service"  # vad | asr | llm | tts | end_to_end
TRACK = "track"  # stable | canary
IMAGE = "image"  # the image reference the series comes from
TIER = "tier"  # l1 | l2 | l3
RESULT = "result"  # hit | miss

SERVICES = ("vad", "asr", "llm", "tts", "end_to_end")
TRACKS = ("stable", "canary")
CACHE_TIERS = ("l1", "l2", "l3")

# Histogram buckets in seconds. histogram_quantile interpolates inside a bucket, so a p95 is only as exact as the
# step between two bounds; a canary judged at 1.5x its stable's p95 needs steps finer than that wherever the KPIs
# sit. From 10 ms to 5 s (a turn: 100 ms to 5 s) each bound is at most RESOLUTION times the one before; below and
# above that only a few bounds catch the tails (every earlier bound is kept, so SLO thresholds stay bounds).
RESOLUTION = 1.25
_MANTISSAS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.5, 9.0)  # steps of 1.11 to 1.25


def _fine(low: float, high: float) -> tuple[float, ...]:
    """Bounds from `low` to `high` at _MANTISSAS' steps, decade by decade."""
    decades = range(math.floor(math.log10(low)), math.floor(math.log10(high)) + 1)
    bounds = (round(m * 10.0**e, 9) for e in decades for m in _MANTISSAS)
    return tuple(b for b in bounds if low <= b <= high)


LATENCY_BUCKETS = (0.005, 0.0075, *_fine(0.01, 5.0), 7.5, 10.0)
# A device's turn: the seed's KPI is 3 s end to end, an overloaded node takes 10-20 s, a lost reply times out at 30 s.
TURN_BUCKETS = (*_fine(0.1, 5.0), 7.5, 10.0, 15.0, 20.0, 30.0)
TURN_RESULTS = ("ok", "failed")
# what went wrong in a failed turn (the `kind` label of TURN_FAILURES), as the device saw it
TURN_FAILURE_KINDS = ("connect", "auth", "no_transcript", "no_audio", "timeout", "closed", "error")


class MetricType(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Metric:
    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...]
    seed_name: str | None = None  # the name the users' scaling plan used, if any
    unit: str = ""


ACTIVE_DEVICES = Metric(
    "xiaozhi_active_devices",
    MetricType.GAUGE,
    "Devices with an open WebSocket session on the edge node.",
    (REGION, NODE),
    seed_name="active_devices",
)
SESSIONS_OPENED = Metric(
    "xiaozhi_sessions_opened_total",
    MetricType.COUNTER,
    "WebSocket sessions opened (one per conversation).",
    (REGION, NODE),
)
REQUEST_DURATION = Metric(
    "xiaozhi_request_duration_seconds",
    MetricType.HISTOGRAM,
    "Time to serve one request of a pipeline stage, or end to end (speech end to first audio).",
    (REGION, NODE, SERVICE, TRACK, IMAGE),
    seed_name="http_request_duration_seconds",
    unit="seconds",
)
REQUESTS = Metric(
    "xiaozhi_requests_total",
    MetricType.COUNTER,
    "Requests served per stage; `result` is ok or error.",
    (REGION, NODE, SERVICE, TRACK, IMAGE, "result"),
)
INFERENCE_ERRORS = Metric(
    "xiaozhi_inference_errors_total",
    MetricType.COUNTER,
    "Model inference failures (a subset of requests with result=error).",
    (REGION, NODE, SERVICE, TRACK, IMAGE),
    seed_name="model_inference_errors_total",
)
CACHE_REQUESTS = Metric(
    "xiaozhi_cache_requests_total",
    MetricType.COUNTER,
    "Cache lookups per tier; the hit ratio is hits / (hits + misses).",
    (REGION, NODE, TIER, RESULT),
    seed_name="cache_hit_rate",
)
QUEUE_SIZE = Metric(
    "xiaozhi_processing_queue_size",
    MetricType.GAUGE,
    "Requests waiting for a replica of the stage.",
    (REGION, NODE, SERVICE),
    seed_name="processing_queue_size",
)
SERVICE_REPLICAS = Metric(
    "xiaozhi_service_replicas",
    MetricType.GAUGE,
    "Replicas of the stage running on the node (the autoscaler's decision, else the spec's count).",
    (REGION, NODE, SERVICE),
)
BUILD_INFO = Metric(
    "xiaozhi_build_info",
    MetricType.GAUGE,
    "Always 1: which image serves which service and track on the node.",
    (REGION, NODE, SERVICE, TRACK, IMAGE),
)
MODEL_LOAD_SECONDS = Metric(
    "xiaozhi_model_load_seconds",
    MetricType.GAUGE,
    "Seconds an inference replica took from start to ready (model load and warm-up inference).",
    (REGION, NODE, SERVICE, TRACK, IMAGE),
    unit="seconds",
)
# Word error rate = rate(errors) / rate(reference words), counted by whoever knows the spoken text (the
# sandbox load generator, a site's test-call prober): accuracy is part of an ASR image's health.
ASR_WORD_ERRORS = Metric(
    "xiaozhi_asr_word_errors_total",
    MetricType.COUNTER,
    "Word edits (substitutions, deletions, insertions) between ASR transcripts and the known spoken text.",
    (REGION, NODE, TRACK, IMAGE),
)
ASR_REFERENCE_WORDS = Metric(
    "xiaozhi_asr_reference_words_total",
    MetricType.COUNTER,
    "Words of the known spoken text sent to ASR (the denominator of the word error rate).",
    (REGION, NODE, TRACK, IMAGE),
)
# A device's conversation turn as the device sees it, measured by whoever speaks the real protocol to the node's
# xiaozhi server (the load generator's emulated devices, a site's probe devices): what the fleet exists for.
TURN_STT_SECONDS = Metric(
    "xiaozhi_turn_stt_seconds",
    MetricType.HISTOGRAM,
    "From the end of a device's speech to the transcript (stt message) it receives.",
    (REGION, NODE, TRACK),
    unit="seconds",
)
TURN_FIRST_AUDIO_SECONDS = Metric(
    "xiaozhi_turn_first_audio_seconds",
    MetricType.HISTOGRAM,
    "From the end of a device's speech to the first reply audio frame it receives (the seed's end-to-end KPI).",
    (REGION, NODE, TRACK),
    unit="seconds",
)
TURN_SECONDS = Metric(
    "xiaozhi_turn_seconds",
    MetricType.HISTOGRAM,
    "From the end of a device's speech to the end of the reply (tts stop).",
    (REGION, NODE, TRACK),
    unit="seconds",
)
TURNS = Metric(
    "xiaozhi_turns_total",
    MetricType.COUNTER,
    "Conversation turns a device started; `result` is ok or failed.",
    (REGION, NODE, TRACK, "result"),
)
TURN_FAILURES = Metric(
    "xiaozhi_turn_failures_total",
    MetricType.COUNTER,
    "Failed turns by what went wrong (`kind`: connect, auth, no_transcript, no_audio, timeout, closed, error).",
    (REGION, NODE, TRACK, "kind"),
)
# node-exporter names (https://github.com/prometheus/node_exporter)
NODE_CPU_SECONDS = Metric(
    "node_cpu_seconds_total", MetricType.COUNTER, "CPU time per core and mode.", (REGION, NODE, "cpu", "mode")
)
NODE_MEMORY_TOTAL = Metric(
    "node_memory_MemTotal_bytes", MetricType.GAUGE, "Physical memory.", (REGION, NODE), unit="bytes"
)
NODE_MEMORY_AVAILABLE = Metric(
    "node_memory_MemAvailable_bytes",
    MetricType.GAUGE,
    "Memory available to new work.",
    (REGION, NODE),
    unit="bytes",
)
# NVIDIA DCGM exporter names (https://github.com/NVIDIA/dcgm-exporter)
GPU_UTIL = Metric(
    "DCGM_FI_DEV_GPU_UTIL",
    MetricType.GAUGE,
    "GPU utilization in percent.",
    (REGION, NODE, "gpu", "modelName"),
)
GPU_FB_USED = Metric(
    "DCGM_FI_DEV_FB_USED",
    MetricType.GAUGE,
    "GPU framebuffer memory used, MiB.",
    (REGION, NODE, "gpu", "modelName"),
)
GPU_FB_FREE = Metric(
    "DCGM_FI_DEV_FB_FREE",
    MetricType.GAUGE,
    "GPU framebuffer memory free, MiB.",
    (REGION, NODE, "gpu", "modelName"),
)

ALL: tuple[Metric, ...] = (
    ACTIVE_DEVICES,
    SESSIONS_OPENED,
    REQUEST_DURATION,
    REQUESTS,
    INFERENCE_ERRORS,
    CACHE_REQUESTS,
    QUEUE_SIZE,
    SERVICE_REPLICAS,
    BUILD_INFO,
    MODEL_LOAD_SECONDS,
    ASR_WORD_ERRORS,
    ASR_REFERENCE_WORDS,
    TURN_STT_SECONDS,
    TURN_FIRST_AUDIO_SECONDS,
    TURN_SECONDS,
    TURNS,
    TURN_FAILURES,
    NODE_CPU_SECONDS,
    NODE_MEMORY_TOTAL,
    NODE_MEMORY_AVAILABLE,
    GPU_UTIL,
    GPU_FB_USED,
    GPU_FB_FREE,
)

# Emitted only by the real inference services and devices (a real model load, a prober's known speech, a real turn):
# the fleet simulator has none, so it does not expose them, and nothing judged on simulated nodes may need them.
REAL_SERVICES_ONLY: frozenset[str] = frozenset(
    {
        MODEL_LOAD_SECONDS.name,
        ASR_WORD_ERRORS.name,
        ASR_REFERENCE_WORDS.name,
        TURN_STT_SECONDS.name,
        TURN_FIRST_AUDIO_SECONDS.name,
        TURN_SECONDS.name,
        TURNS.name,
        TURN_FAILURES.name,
    }
)


def by_name(name: str) -> Metric:
    for metric in ALL:
        if metric.name == name:
            return metric
    raise KeyError(name)
