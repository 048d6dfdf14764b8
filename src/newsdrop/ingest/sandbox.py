"""Hostile input handled in worker processes, with bounds on time and memory per document.

A document can cost minutes of CPU and gigabytes inside the parsers (40,000
attributes on one element; millions of one-letter paragraphs), in C code that no
Python timeout interrupts. So normalising (and turning an SVG into a PNG) runs in
long-lived worker processes: a worker's address space is limited by RLIMIT_AS to
its size after start-up plus ``[normalize] max_memory_mb``, the parent waits at
most ``[normalize] timeout_s`` for an answer, and a worker that overruns or dies
is killed and replaced. Workers die with their parent: PR_SET_PDEATHSIG on Linux
(set for the thread that starts them, which lives as long as the process), and
the end of their pipe everywhere. Messages are JSON and raw bytes both ways,
never pickles: the worker parses hostile input, and the parent believes no more
of its answer than an Entry's fields.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import signal
import subprocess  # nosec B404
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from newsdrop.errors import SourceError
from newsdrop.ingest.frames import HEADER, entry_from_json, hints_json, read_frame
from newsdrop.ingest.frames import WorkerFault as WorkerFault  # a fault is part of the API
from newsdrop.ingest.normalize import claim_slug, document_kind
from newsdrop.ingest.normalize import normalize as normalize_here
from newsdrop.model import Entry, Hints

_IDLE_WORKERS = 2  # kept between calls; more are made when threads call at once


TEXT_IN_PROCESS = 256 * 1024  # plain text up to this size is normalised without a worker


T = TypeVar("T")


Job = tuple[T, bytes, str, Hints]  # tag, document, name, hints


@dataclass(frozen=True, slots=True)
class Limits:
    """Per document: ``[normalize] timeout_s`` and ``max_memory_mb``."""

    timeout_s: float
    max_memory_mb: int


class _Overrun(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "time", "memory" or how the worker died


def normalize(data: bytes, name: str, hints: Hints, *, limits: Limits) -> Entry:
    """``normalize.normalize`` in a worker: the same Entry, or SourceError, or WorkerFault."""
    header = {"op": "normalize", "name": name, "hints": hints_json(hints)}
    try:
        answer, _ = _POOL.call(header, data, limits)
    except _Overrun as exc:
        raise SourceError(_overrun_reason(name, exc.reason, limits, "normalise")) from None
    return claim_slug(entry_from_json(answer["entry"]), hints)


def normalize_many(
    jobs: Iterable[Job[T]], *, limits: Limits, window: int = 16
) -> Iterator[tuple[T, Entry | SourceError | WorkerFault]]:
    """(tag, data, name, hints) -> (tag, Entry or the error), in order, with up to ``window``
    documents in flight in one worker, so that it never waits for the parent (nor the parent
    for it) between small documents. Jobs are pulled only as the window has room, and
    ``claim_slug`` is applied as each answer is taken, with the hints' slugs as they are then.
    """
    return _POOL.stream(iter(jobs), limits, max(1, window))


def in_process(name: str, size: int) -> bool:
    """Plain text up to TEXT_IN_PROCESS bytes is normalised in the caller's process: its
    cost is linear and small (no YAML, no HTML or Markdown parser), and a round trip to a
    worker would cost more than the work. Everything else goes to a worker."""
    return size <= TEXT_IN_PROCESS and document_kind(name) == "text"


def _normalize_here(data: bytes, name: str, hints: Hints) -> Entry | SourceError | WorkerFault:
    try:
        return normalize_here(data, name, hints)
    except SourceError as exc:
        return exc
    except Exception as exc:  # a bug must not cost the other documents their run
        return WorkerFault(type(exc).__name__, str(exc), traceback.format_exc())


def svg_to_png(data: bytes, name: str, *, limits: Limits) -> bytes:
    """An SVG drawn as a PNG (cairosvg, offline) in a worker; SourceError when it cannot be."""
    try:
        _, png = _POOL.call({"op": "svg", "name": name}, data, limits)
    except _Overrun as exc:
        raise SourceError(_overrun_reason(name, exc.reason, limits, "convert to PNG")) from None
    return png


def prestart(limits: Limits) -> None:
    """Have an idle worker ready (started and warmed up, waited for if it is new), so that
    a long-lived caller's next document does not wait for the parsers to load."""
    _POOL.prestart(limits.max_memory_mb)


def close() -> None:
    """End every idle worker (at exit; a busy one ends when its call returns)."""
    _POOL.close()


def _overrun_reason(name: str, reason: str, limits: Limits, doing: str) -> str:
    after = (
        "; it is not published. Make it simpler (split it, or remove what makes it heavy) "
        "or raise the limit; it is read again when it or the [normalize] settings change"
    )
    if reason == "time":
        return f"{name}: took longer than [normalize] timeout_s = {limits.timeout_s:g} s to {doing}{after}"
    if reason == "memory":
        return (
            f"{name}: needed more than [normalize] max_memory_mb = {limits.max_memory_mb} MB "
            f"to {doing}{after}"
        )
    return (
        f"{name}: the process that was to {doing} it died ({reason}), most likely for want "
        f"of memory under [normalize] max_memory_mb = {limits.max_memory_mb} MB{after}"
    )


# Workers are started from this one thread: PR_SET_PDEATHSIG fires when the *thread* that
# started a process ends, and this one lives until the interpreter exits.
_STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsdrop-sandbox")


class _Worker:
    """One worker process; requests go through a writer thread, so that the parent never
    blocks on a full pipe while the worker blocks on an answer nobody reads."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        command = [sys.executable, "-c", "from newsdrop.ingest.worker import serve; serve()"]
        self.process = _STARTER.submit(
            subprocess.Popen,  # a fixed command line (sys.executable -c ...), no shell
            [*command, str(memory_mb), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        ).result()
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("subprocess.Popen gave no pipes")
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.ready = False
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=self._write, name="newsdrop-sandbox-writer", daemon=True).start()

    def _write(self) -> None:
        pipe = self.stdin
        while (frame := self._out.get()) is not None:
            try:
                pipe.write(frame)
                pipe.flush()
            except (OSError, ValueError):  # the worker died, or was killed (closed pipe)
                return

    def send(self, header: dict[str, Any], payload: bytes) -> None:
        body = json.dumps(header).encode()
        self._out.put(HEADER.pack(len(body), len(payload)) + body + payload)

    def wait_ready(self) -> bool:
        """Wait for the end of start-up (imports, warm-up); False if the worker died."""
        if not self.ready:
            if read_frame(self.stdout.fileno(), time.monotonic() + 60)[0] is None:
                self.kill()
                return False
            self.ready = True
        return True

    def receive(self, timeout_s: float) -> tuple[dict[str, Any], bytes]:
        """The next answer, within timeout_s of now (start-up does not count)."""
        fd = self.stdout.fileno()
        if not self.wait_ready():  # imports and warm-up are not the document's time
            raise _Overrun(self._death())
        deadline = time.monotonic() + timeout_s
        try:
            answer, data = read_frame(fd, deadline)
        except ValueError:  # not JSON: nothing more it says can be believed
            self.kill()
            raise _Overrun("it answered what is not JSON") from None
        if answer is None:
            if time.monotonic() >= deadline:
                self.kill()
                raise _Overrun("time")
            raise _Overrun(self._death())
        if "memory" in answer:
            raise _Overrun("memory")
        if "problem" in answer:
            raise SourceError(str(answer["problem"]))
        if "fault" in answer:
            fault = answer["fault"]
            raise WorkerFault(str(fault["kind"]), str(fault["message"]), str(fault["trace"]))
        return answer, data

    def call(
        self, header: dict[str, Any], payload: bytes, timeout_s: float
    ) -> tuple[dict[str, Any], bytes]:
        self.send(header, payload)
        return self.receive(timeout_s)

    def alive(self) -> bool:
        return self.process.poll() is None

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "it stopped answering"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def kill(self) -> None:
        self._out.put(None)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stdout.close()
        with contextlib.suppress(OSError):  # the writer's unflushed bytes: nobody reads them
            self.stdin.close()


class _Pool:
    """Idle workers, taken by one call at a time and given back when they are still sound."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def call(
        self, header: dict[str, Any], payload: bytes, limits: Limits
    ) -> tuple[dict[str, Any], bytes]:
        worker = self._take(limits.max_memory_mb)
        sound = False
        try:
            answer = worker.call(header, payload, limits.timeout_s)
            sound = True
            return answer
        except (SourceError, WorkerFault):
            sound = True  # the worker answered: it is as good as before
            raise
        finally:
            if sound and worker.alive():
                self._give_back(worker)
            else:
                worker.kill()  # overran or died: a new one takes the next document

    def stream(
        self, jobs: Iterator[Job[T]], limits: Limits, window: int
    ) -> Iterator[tuple[T, Entry | SourceError | WorkerFault]]:
        """normalize_many: up to ``window`` documents in flight, answers in order."""
        pending: deque[Job[T]] = deque()
        worker: _Worker | None = None
        sent = 0  # of pending, how many were given to the current worker (or are local)
        try:
            while True:
                while len(pending) < window and (job := next(jobs, None)) is not None:
                    pending.append(job)
                if not pending:
                    return
                for _tag, data, name, hints in list(pending)[sent:]:
                    if not in_process(name, len(data)):
                        if worker is None:
                            worker = self._take(limits.max_memory_mb)
                        header = {"op": "normalize", "name": name, "hints": hints_json(hints)}
                        worker.send(header, data)
                sent = len(pending) - 1
                tag, data, name, hints = pending.popleft()
                outcome: Entry | SourceError | WorkerFault
                if in_process(name, len(data)):
                    yield tag, _normalize_here(data, name, hints)
                    continue
                if worker is None:  # unreachable: a worker was taken when it was sent
                    raise RuntimeError("no worker for a document sent to one")
                try:
                    answer, _ = worker.receive(limits.timeout_s)
                    outcome = claim_slug(entry_from_json(answer["entry"]), hints)
                except (SourceError, WorkerFault) as exc:
                    outcome = exc
                except (KeyError, TypeError, ValueError) as exc:  # an answer of the wrong shape
                    outcome = WorkerFault("ProtocolError", repr(exc), "")
                except _Overrun as exc:  # the rest of pending go to a new worker
                    outcome = SourceError(_overrun_reason(name, exc.reason, limits, "normalise"))
                    worker.kill()
                    worker, sent = None, 0
                yield tag, outcome
        finally:
            if worker is not None:
                if any(not in_process(n, len(d)) for _, d, n, _ in pending) or not worker.alive():
                    worker.kill()  # left with answers in flight: not reusable
                else:
                    self._give_back(worker)

    def _take(self, memory_mb: int) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.memory_mb == memory_mb and worker.alive():
                    return worker
                worker.kill()
        return _Worker(memory_mb)

    def prestart(self, memory_mb: int) -> None:
        with self._lock:
            if any(w.memory_mb == memory_mb and w.alive() for w in self._idle):
                return
        worker = _Worker(memory_mb)
        if worker.wait_ready():
            self._give_back(worker)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < _IDLE_WORKERS:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_POOL = _Pool()


atexit.register(close)
