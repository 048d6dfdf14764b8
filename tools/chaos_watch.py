"""What the chaos run watches while it goes on, each in its own thread.

- `Uptime`: when the service was down (from a kill, or an exit, until it answered again);
  the windows the latency verdict leaves out.
- `Prober`: GET /atom.xml every 150 ms on a fresh connection, with a timeout; each probe's
  start, wait and outcome.
- `HeadSampler`: the three head feeds over HTTP in quick succession, then again with
  If-None-Match; when all three answer 304 nothing was built in between, and their
  entry ids must be the same set. A sample a build cut into is taken again once.
- `ProcessTracker`: every process descended from the run, seen through /proc (with this
  process as the child subreaper, so that orphans stay descendants), to find any alive
  at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import feedparser
import httpx

HEAD_FEEDS = ("atom.xml", "rss.xml", "feed.json")
# Entry bodies, cut out before parsing: most of feedparser's time, and only ids are compared
# (that every feed parses whole is the disk reader's check).
BODIES = re.compile(rb"<(content:encoded|content|summary|description)\b[^>]*>.*?</\1>", re.DOTALL)
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


class Uptime:
    """Down windows of the service, in time.monotonic() seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: list[tuple[float, float]] = []
        self.down_since: float | None = time.monotonic()  # until the first start answers
        self.kills = 0

    def down(self) -> None:
        with self.lock:
            if self.down_since is None:
                self.down_since = time.monotonic()

    def up(self) -> None:
        with self.lock:
            if self.down_since is not None:
                self.windows.append((self.down_since, time.monotonic()))
                self.down_since = None

    @property
    def is_up(self) -> bool:
        return self.down_since is None

    def overlaps(self, start: float, end: float) -> bool:
        with self.lock:
            if self.down_since is not None and self.down_since <= end:
                return True
            return any(down <= end and start <= back for down, back in self.windows)


@dataclass(frozen=True, slots=True)
class Probe:
    at: float  # monotonic start
    waited: float
    outcome: str  # "200", "304", "503", or the error's class name


class Prober(threading.Thread):
    """GET /atom.xml continuously, each on a new connection (as a reader's poll is)."""

    def __init__(self, base_url: str, uptime: Uptime, *, every: float = 0.15) -> None:
        super().__init__(daemon=True)
        self.base_url, self.uptime, self.every = base_url, uptime, every
        self.probes: list[Probe] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.base_url, timeout=5, limits=limits) as client:
            while not self.stopping.wait(self.every):
                if not self.uptime.is_up:
                    continue
                started = time.monotonic()
                try:
                    outcome = str(client.get("/atom.xml").status_code)
                except httpx.HTTPError as exc:
                    outcome = exc.__class__.__name__
                self.probes.append(Probe(started, time.monotonic() - started, outcome))

    def counted(self) -> list[Probe]:
        """The probes made while the service was up all along."""
        return [p for p in self.probes if not self.uptime.overlaps(p.at, p.at + p.waited)]


def entry_ids(name: str, body: bytes) -> frozenset[str]:
    """The entry ids in a head feed; ValueError when it does not parse."""
    if name.endswith(".json"):
        return frozenset(str(item["id"]) for item in json.loads(body)["items"])
    parsed = feedparser.parse(BODIES.sub(b"", body))
    if parsed.bozo:
        raise ValueError(str(parsed.bozo_exception))
    return frozenset(str(entry.id) for entry in parsed.entries)


@dataclass
class Disagreement:
    at: float  # seconds into the run
    counts: dict[str, int]
    only_in: dict[str, list[str]]  # feed -> ids the other two lack (a few)


@dataclass
class HeadSamples:
    compared: int = 0
    agreed: int = 0
    cut_by_a_build: int = 0  # both tries: something changed between the reads
    unreachable: int = 0
    unparsable: list[str] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)


class HeadSampler(threading.Thread):
    def __init__(self, base_url: str, uptime: Uptime, t0: float, *, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.base_url, self.uptime, self.t0, self.every = base_url, uptime, t0, every
        self.samples = HeadSamples()
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            while not self.stopping.wait(self.every):
                if self.uptime.is_up:
                    self.sample(client)

    def sample(self, client: httpx.Client, *, tries: int = 2) -> bool | None:
        """One comparison: True (agree), False (disagree), None (no stable read)."""
        with self.lock:
            for _ in range(tries):
                try:
                    first = [client.get(name) for name in HEAD_FEEDS]
                    if any(r.status_code != 200 for r in first):
                        self.samples.unreachable += 1
                        return None
                    again = [
                        client.get(name, headers={"if-none-match": r.headers.get("etag", "")})
                        for name, r in zip(HEAD_FEEDS, first, strict=True)
                    ]
                except httpx.HTTPError:
                    self.samples.unreachable += 1
                    return None
                if all(r.status_code == 304 for r in again):
                    return self._compare(
                        {n: r.content for n, r in zip(HEAD_FEEDS, first, strict=True)}
                    )
            self.samples.cut_by_a_build += 1
            return None

    def _compare(self, bodies: dict[str, bytes]) -> bool | None:
        ids: dict[str, frozenset[str]] = {}
        for name, body in bodies.items():
            try:
                ids[name] = entry_ids(name, body)
            except (ValueError, KeyError, TypeError) as exc:
                self.samples.unparsable.append(f"{name} over HTTP: {exc}")
                return None
        self.samples.compared += 1
        if len(set(ids.values())) == 1:
            self.samples.agreed += 1
            return True
        everywhere = frozenset.intersection(*ids.values())
        self.samples.disagreements.append(
            Disagreement(
                at=round(time.monotonic() - self.t0, 1),
                counts={n: len(v) for n, v in ids.items()},
                only_in={n: sorted(v - everywhere)[:3] for n, v in ids.items() if v - everywhere},
            )
        )
        return False


# --- processes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    pid: int
    start: int  # clock ticks after boot: with the pid, names one process for good
    command: str
    first_seen: float  # seconds into the run


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:160]


class ProcessTracker(threading.Thread):
    """Every process descended from this one, sampled every 200 ms."""

    def __init__(self, t0: float) -> None:
        super().__init__(daemon=True)
        self.t0 = t0
        self.me = os.getpid()
        self.seen: dict[tuple[int, int], Seen] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        libc = ctypes.CDLL(None, use_errno=True)
        # Orphans (workers of a killed service) are re-parented to us, not to init.
        self.subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.scan()

    def scan(self) -> list[Seen]:
        """Record the descendants alive now (not zombies), and return them."""
        children: dict[int, list[int]] = {}
        states: dict[int, tuple[str, int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
                states[int(entry.name)] = (stat[0], stat[2])
        alive, todo = [], list(children.get(self.me, []))
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            state, start = states[pid]
            if state == "Z":
                continue
            with self.lock:
                seen = self.seen.get((pid, start))
                if seen is None:
                    seen = Seen(pid, start, _command(pid), round(time.monotonic() - self.t0, 1))
                    self.seen[(pid, start)] = seen
            alive.append(seen)
        return alive

    def survivors(self) -> list[Seen]:
        """The processes seen during the run that are still alive (as the same process)."""
        self.scan()
        with self.lock:
            seen = list(self.seen.values())
        out = []
        for process in seen:
            stat = _stat(process.pid)
            if stat is not None and stat[2] == process.start and stat[0] != "Z":
                out.append(process)
        return out

    def end(self, processes: list[Seen]) -> None:
        """SIGKILL these (each checked to be the same process still), so that none lingers."""
        for process in processes:
            stat = _stat(process.pid)
            if stat is not None and stat[2] == process.start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, 9)
