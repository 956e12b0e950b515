"""Edge inference services of a Xiaozhi node (VAD, ASR, TTS): one small package, one image per service.

Each service is an HTTP server with `/ready` (200 only after a real warm-up inference), `/metrics` (names and
labels from xzctl's metrics contract) and its inference endpoint. Configuration is environment variables the
image sets (`XZ_*`); nothing is downloaded at start.
"""
