"""VAD service: silero-vad (ONNX, int8-quantised at image build) over HTTP, frames of many sessions batched.

POST /v1/vad?session=ID with 16 kHz PCM16 (raw `audio/l16`, a multiple of 512 samples, or a WAV file): answers the
speech probability of every 512-sample frame and the speech/silence decision with upstream xiaozhi's thresholds
(on at 0.5, off below 0.3). The model is stateful per stream, so each session keeps its LSTM state and the last
64 samples of context, as silero's own wrapper does.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from xz_inference.audio import RATE, read_wav
from xz_inference.server import Handler, Request, RequestError, Response, Service, main
from xzctl import service_contract as sc

FRAME = 512
CONTEXT = 64
MAX_SESSIONS = 4096
BATCH_WINDOW = 0.002  # seconds a batch waits for more sessions once it has one


@dataclass
class _Stream:
    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))
    speaking: bool = False


@dataclass
class _Job:
    session: str
    frames: np.ndarray  # (n, FRAME) float32
    done: threading.Event = field(default_factory=threading.Event)
    probabilities: list[float] = field(default_factory=list)
    speech: list[bool] = field(default_factory=list)
    error: BaseException | None = None


class VadService(Service):
    name = "vad"

    def __init__(self) -> None:
        super().__init__()
        self.model_path = os.environ.get(sc.MODEL_PATH_ENV, "/models/silero_vad_int8.onnx")
        self.batch_size = int(os.environ.get(sc.BATCH_SIZE_ENV, "16"))
        self.threshold = float(os.environ.get(sc.VAD_THRESHOLD_ENV, "0.5"))
        self.threshold_low = float(os.environ.get(sc.VAD_THRESHOLD_LOW_ENV, "0.3"))
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=1024)
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get(sc.THREADS_ENV, "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.model_path, options, providers=["CPUExecutionProvider"])
        threading.Thread(target=self._batch_loop, name="vad-batches", daemon=True).start()

    def warm_up(self) -> None:
        """One full batch of silent frames through the model, as the image's readiness condition says."""
        jobs = [_Job(f"warm-up-{i}", np.zeros((1, FRAME), np.float32)) for i in range(self.batch_size)]
        self._run_batch(jobs)
        for job in jobs:
            self._streams.pop(job.session, None)
            if job.error is not None:
                raise job.error

    def _stream(self, session: str) -> _Stream:
        stream = self._streams.pop(session, None) or _Stream()
        self._streams[session] = stream
        while len(self._streams) > MAX_SESSIONS:
            self._streams.popitem(last=False)
        return stream

    def _run_batch(self, jobs: list[_Job]) -> None:
        """Lockstep over the jobs' frames: step t runs frame t of every job that has one, in one ONNX call."""
        try:
            streams = [self._stream(job.session) for job in jobs]
            steps = max(len(job.frames) for job in jobs)
            for t in range(steps):
                live = [i for i, job in enumerate(jobs) if t < len(job.frames)]
                x = np.stack([np.concatenate([streams[i].context, jobs[i].frames[t]]) for i in live])
                state = np.concatenate([streams[i].state for i in live], axis=1)
                out, new_state = self.session.run(
                    None, {"input": x, "state": state, "sr": np.array(RATE, dtype=np.int64)}
                )
                for row, i in enumerate(live):
                    stream, job = streams[i], jobs[i]
                    stream.state = new_state[:, row : row + 1, :]
                    stream.context = jobs[i].frames[t][-CONTEXT:]
                    p = float(out[row][0])
                    if p >= self.threshold:
                        stream.speaking = True
                    elif p < self.threshold_low:
                        stream.speaking = False
                    job.probabilities.append(p)
                    job.speech.append(stream.speaking)
        except Exception as exc:  # handed to every waiting request, which answers 500 and counts it
            for job in jobs:
                job.error = exc
        for job in jobs:
            job.done.set()

    def _batch_loop(self) -> None:
        held: deque[_Job] = deque()  # jobs whose session already had a chunk in the batch: they go first next time
        while True:
            incoming = held or deque([self._jobs.get()])
            batch: list[_Job] = []
            seen: set[str] = set()
            held = deque()
            deadline = time.monotonic() + BATCH_WINDOW
            while incoming or len(batch) < self.batch_size:
                if incoming:
                    job = incoming.popleft()
                else:
                    try:
                        job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                # two chunks of one session must run in order, never side by side
                (batch if job.session not in seen and len(batch) < self.batch_size else held).append(job)
                seen.add(job.session)
            self.set_queue(self._jobs.qsize() + len(held))
            self._run_batch(batch)

    def detect(self, request: Request) -> Response:
        if request.content_type.startswith("audio/wav") or request.body[:4] == b"RIFF":
            samples = read_wav(request.body)
            samples = np.pad(samples, (0, -len(samples) % FRAME))  # a whole file: its tail frame is padded
        else:
            samples = np.frombuffer(request.body, dtype=np.int16)
        if len(samples) == 0 or len(samples) % FRAME:
            raise RequestError(f"send a positive multiple of {FRAME} samples of 16 kHz PCM16")
        frames = (samples.astype(np.float32) / 32768.0).reshape(-1, FRAME)
        job = _Job(request.query.get("session", "default"), frames)
        try:
            self._jobs.put(job, timeout=5.0)
        except queue.Full:
            raise RuntimeError("VAD queue full") from None
        if not job.done.wait(timeout=30.0):
            raise TimeoutError("VAD batch did not finish in 30 s")
        if job.error is not None:
            raise job.error
        return Response.json({"probabilities": job.probabilities, "speech": job.speech})

    def routes(self) -> dict[str, Handler]:
        return {sc.VAD.main.path: self.detect}


if __name__ == "__main__":
    main(VadService())
