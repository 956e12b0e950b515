"""The service contract of an edge node: how each service is reached, in one place.

For every service the xiaozhi server and the cluster talk to (vad, asr, tts, the xiaozhi server itself and the LLM
endpoint the server calls): its ports and the environment variable that sets each, its paths (work, ready, health,
metrics), protocol, audio format, and the upstream provider type and keys that reach it. The renderer (the
server's override), the manifests (container and Service ports, port env, probes), the image builds, the inference
services (`inference_images/xz_inference`) and the sandbox all read it; nobody else spells a port or a path.

Standard library only: the images carry a byte-identical copy of this file (like `xzctl/metrics/contract.py`), so a
port changed here is changed in the next build, never by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PORT_ENV = "XZ_PORT"  # what every xz_inference service reads for its HTTP port
ASR_WS_PORT_ENV = "XZ_ASR_WS_PORT"  # the ASR service's FunASR runtime WebSocket port
# The rest of the environment the xz_inference services read, one name each; nobody else spells these.
HOST_ENV = "XZ_HOST"
TRACK_ENV = "XZ_TRACK"  # the metrics' track label: a canary pod must say canary, or no analysis tells it apart
IMAGE_ENV = "XZ_IMAGE"  # the metrics' image label; readers of a pod find its main container by it
REGION_ENV = "XZ_REGION"  # region/node labels: only where no scrape relabelling adds them (a local run)
NODE_ENV = "XZ_NODE"
MODEL_PATH_ENV = "XZ_MODEL_PATH"  # the model file the image carries (set by the image build, not the spec)
THREADS_ENV = "XZ_THREADS"
BATCH_SIZE_ENV = "XZ_BATCH_SIZE"
VAD_THRESHOLD_ENV = "XZ_THRESHOLD"
VAD_THRESHOLD_LOW_ENV = "XZ_THRESHOLD_LOW"
ASR_ENGINE_ENV = "XZ_ASR_ENGINE"
ASR_BEAM_ENV = "XZ_ASR_BEAM"
ASR_TOKENS_PATH_ENV = "XZ_TOKENS_PATH"
ASR_ONNX_PROVIDER_ENV = "XZ_ONNX_PROVIDER"
ASR_LANGUAGE_ENV = "XZ_LANGUAGE"
ASR_PARALLEL_ENV = "XZ_ASR_PARALLEL"  # decodes at once per replica
ASR_PARTIAL_SECONDS_ENV = "XZ_ASR_PARTIAL_SECONDS"  # new audio between two partial results on the WebSocket
WHISPER_MODEL_ENV = "XZ_WHISPER_MODEL"  # tiny.en | base
WHISPER_DIR_ENV = "XZ_WHISPER_DIR"
WHISPER_DEVICE_ENV = "XZ_WHISPER_DEVICE"  # cpu | cuda
WHISPER_COMPUTE_ENV = "XZ_WHISPER_COMPUTE"
WHISPER_BEAM_ENV = "XZ_WHISPER_BEAM"
WHISPER_PAD_SECONDS_ENV = "XZ_WHISPER_PAD_SECONDS"  # silence after the audio in the decoding window
TTS_VOICE_ENV = "XZ_TTS_VOICE"
TTS_BACKEND_ENV = "XZ_TTS_BACKEND"
TTS_EDGE_VOICE_ENV = "XZ_TTS_EDGE_VOICE"
TTS_CACHE_BYTES_ENV = "XZ_TTS_CACHE_BYTES"
LLM_MODEL_ENV = "MODEL"  # what the external LLM servers take (like their PORT), edge and cloud
LLM_BATCH_SIZE_ENV = "MAX_BATCH_SIZE"
# What every xz_inference service reads (server.py), and what a deployment sets on each pod (the identity the
# metrics carry; region and node come from the scrape's relabelling in Kubernetes)
COMMON_ENV = (HOST_ENV, TRACK_ENV, IMAGE_ENV, REGION_ENV, NODE_ENV)
POD_ENV = (TRACK_ENV, IMAGE_ENV)
# Ready (200 only after a real warm-up inference), health and metrics paths of every xz_inference service
READY_PATH = "/ready"
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"

# Protocols
HTTP = "http"
WEBSOCKET = "websocket"  # the xiaozhi device protocol (upstream server)
FUNASR_WEBSOCKET = "funasr-websocket"  # the FunASR runtime protocol upstream's `fun_server` ASR provider speaks
OPENAI_HTTP = "openai-http"  # OpenAI-compatible JSON over HTTP


@dataclass(frozen=True)
class AudioFormat:
    encoding: str  # pcm16 | wav | opus
    sample_rate: int  # Hz
    channels: int = 1
    frame_ms: int | None = None  # for framed streams (Opus)


PCM16_16K = AudioFormat("pcm16", 16000)
WAV = AudioFormat("wav", 16000)  # a WAV file; its header names the real rate (espeak-ng writes 22050 Hz)
OPUS_16K = AudioFormat("opus", 16000, frame_ms=60)


@dataclass(frozen=True)
class Provider:
    """An upstream xiaozhi server provider that reaches one endpoint of a service."""

    module: str  # the server's selected_module key: ASR | TTS | LLM
    type: str  # the provider type upstream (core/providers/<module>/<type>.py)
    endpoint: str  # the Endpoint.name it calls
    keys: tuple[str, ...]  # the keys of its block that xzctl renders


@dataclass(frozen=True)
class Endpoint:
    name: str  # the Kubernetes port name
    port: int  # the default, and the in-cluster port
    port_env: str | None  # the env var the service reads for this port (None: set in the server's config)
    protocol: str
    path: str  # where the work is done
    config_key: str | None = None  # the server config key that sets the port, for the upstream server

    def port_in(self, environ: Mapping[str, str]) -> int:
        """The port a service listens on given its environment: the env var when set, else the default."""
        value = environ.get(self.port_env) if self.port_env else None
        return int(value) if value else self.port


@dataclass(frozen=True)
class EdgeService:
    name: str
    endpoints: tuple[Endpoint, ...]  # the first answers ready, health and metrics
    ready_path: str
    health_path: str
    metrics_path: str | None  # None: the service exposes no metrics
    audio_in: AudioFormat | None
    audio_out: AudioFormat | None
    providers: tuple[Provider, ...] = ()  # the first is the one the override renders
    env: tuple[str, ...] = ()  # what an xz_inference service reads besides COMMON_ENV and its port variables
    spec_env: tuple[tuple[str, str], ...] = ()  # (spec field, env var): the spec settings the manifests pass on

    @property
    def reads(self) -> frozenset[str]:
        """Every env var the service reads: common, port variables (through `Endpoint.port_in`) and its own."""
        ports = {e.port_env for e in self.endpoints if e.port_env}
        return frozenset(COMMON_ENV + self.env) | ports

    @property
    def main(self) -> Endpoint:
        return self.endpoints[0]

    def endpoint(self, name: str) -> Endpoint:
        found = next((e for e in self.endpoints if e.name == name), None)
        if found is None:
            raise KeyError(f"{self.name} has no endpoint {name!r}")
        return found

    def port_environment(self, ports: Mapping[str, int] | None = None) -> dict[str, str]:
        """The env vars that make the service listen on `ports` (endpoint name -> port; the defaults elsewhere)."""
        given = dict(ports or {})
        unknown = set(given) - {e.name for e in self.endpoints}
        if unknown:
            raise KeyError(f"{self.name} has no endpoint {', '.join(sorted(unknown))}")
        return {e.port_env: str(given.get(e.name, e.port)) for e in self.endpoints if e.port_env}


# Upstream has no remote VAD provider (silero runs in the server process): the service is for the node's own use.
VAD = EdgeService(
    "vad",
    (Endpoint("http", 8100, PORT_ENV, HTTP, "/v1/vad"),),
    ready_path=READY_PATH,
    health_path=HEALTH_PATH,
    metrics_path=METRICS_PATH,
    audio_in=PCM16_16K,
    audio_out=None,
    env=(MODEL_PATH_ENV, THREADS_ENV, BATCH_SIZE_ENV, VAD_THRESHOLD_ENV, VAD_THRESHOLD_LOW_ENV),
    spec_env=(("batch_size", BATCH_SIZE_ENV),),
)
ASR = EdgeService(
    "asr",
    (
        Endpoint("http", 8200, PORT_ENV, OPENAI_HTTP, "/v1/audio/transcriptions"),
        Endpoint("ws", 10095, ASR_WS_PORT_ENV, FUNASR_WEBSOCKET, "/"),
    ),
    ready_path=READY_PATH,
    health_path=HEALTH_PATH,
    metrics_path=METRICS_PATH,
    audio_in=PCM16_16K,
    audio_out=None,
    # `fun_server` is async; upstream's `openai` ASR does a blocking requests.post on the server's one event loop,
    # stalling every session of the process for each transcription (issue 22), so the override renders fun_server.
    providers=(
        Provider("ASR", "fun_server", "ws", ("type", "host", "port", "is_ssl", "api_key", "output_dir")),
        Provider("ASR", "openai", "http", ("type", "base_url", "api_key", "model_name", "output_dir")),
    ),
    env=(
        MODEL_PATH_ENV,
        THREADS_ENV,
        ASR_ENGINE_ENV,
        ASR_BEAM_ENV,
        ASR_TOKENS_PATH_ENV,
        ASR_ONNX_PROVIDER_ENV,
        ASR_LANGUAGE_ENV,
        ASR_PARALLEL_ENV,
        ASR_PARTIAL_SECONDS_ENV,
        WHISPER_MODEL_ENV,
        WHISPER_DIR_ENV,
        WHISPER_DEVICE_ENV,
        WHISPER_COMPUTE_ENV,
        WHISPER_BEAM_ENV,
        WHISPER_PAD_SECONDS_ENV,
    ),
)
TTS = EdgeService(
    "tts",
    (Endpoint("http", 8300, PORT_ENV, HTTP, "/v1/audio/speech"),),
    ready_path=READY_PATH,
    health_path=HEALTH_PATH,
    metrics_path=METRICS_PATH,
    audio_in=None,
    audio_out=WAV,
    providers=(
        Provider("TTS", "custom", "http", ("type", "method", "url", "params", "headers", "format", "output_dir")),
    ),
    env=(TTS_VOICE_ENV, TTS_BACKEND_ENV, TTS_EDGE_VOICE_ENV, TTS_CACHE_BYTES_ENV),
)
# The upstream server: device WebSocket and OTA/HTTP; a plain GET on the WebSocket port is its only health signal.
XIAOZHI_SERVER = EdgeService(
    "xiaozhi_server",
    (
        Endpoint("ws", 8000, None, WEBSOCKET, "/xiaozhi/v1/", config_key="server.port"),
        Endpoint("http", 8003, None, HTTP, "/xiaozhi/ota/", config_key="server.http_port"),
    ),
    ready_path="/",
    health_path="/",
    metrics_path=None,
    audio_in=OPUS_16K,
    audio_out=OPUS_16K,
)
XIAOZHI_MCP_PATH = "/mcp/"  # the server's MCP endpoint, on its http port beside OTA
# The OpenAI-compatible LLM endpoint the server calls (the cloud router the fleet spec names; the cloud's and an
# edge node's LLM servers behind it). Their images are external: PORT is what the manifests give them.
LLM = EdgeService(
    "llm",
    (Endpoint("http", 8000, "PORT", OPENAI_HTTP, "/v1/chat/completions"),),
    ready_path="/health",
    health_path="/health",
    metrics_path="/metrics",
    audio_in=None,
    audio_out=None,
    providers=(Provider("LLM", "openai", "http", ("type", "base_url", "model_name", "api_key")),),
    spec_env=(("model", LLM_MODEL_ENV), ("batch_size", LLM_BATCH_SIZE_ENV)),
)

SERVICES: dict[str, EdgeService] = {s.name: s for s in (VAD, ASR, TTS, XIAOZHI_SERVER, LLM)}
INFERENCE = ("vad", "asr", "tts")  # the services built here (inference_images/xz_inference)

# The TTS request upstream's `custom` provider sends: JSON {TTS_TEXT_KEY: text, TTS_FORMAT_KEY: format}. The
# service answers exactly the format asked; the override asks for TTS.audio_out (upstream decodes by `format`).
TTS_TEXT_KEY = "input"
TTS_FORMAT_KEY = "response_format"
TTS_FORMATS = ("wav",)
