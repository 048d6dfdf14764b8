"""The chaos run (`make chaos MINUTES=5`): `newsdrop run` under every fault at once.

For MINUTES (the fault phase) it drops documents into seeds/ (good ones from
../shared/corpus/news when present, else generated; the naughty strings as titles
and bodies; binary files, invalid encodings, empty and oversized files, files
written slowly in pieces, renames, edits and deletions), adds and removes
subscribers, lets short digest periods pass (10 s when MINUTES < 2, else 20 s), and
injects these faults, each switchable (`--without 421,disk` or `--faults kills,flood`
to bisect; `--list-faults` names them):

- kills: SIGKILL of the service at random moments, restarting it each time;
- smtp: the relay answers DATA at random with 421, 451 or 550, or drops the
  connection; outages: the relay is down for a few seconds now and then;
- 421: the relay answers `421 4.3.2` at the greeting and at `MAIL FROM`, in turns of
  5 s, for a minute (at most a third of the fault phase); a subscription on the web
  page asks for a confirmation mail in each kind's first turn;
- 552: a `552 5.3.4` at DATA for one message;
- state-disk, feeds-disk: state/ and feeds/ are each a small tmpfs (when root; skipped
  with the reason otherwise) that a ballast file fills to ENOSPC for a while, then
  empties;
- flood: 2,000 good documents written as NAME.part, then renamed into seeds/ at once;
- idle: 500 TCP connections to the service that send nothing (a fifth send half a
  request head), held for a while (any a kill took are opened again), then closed;
- pathological: an HTML file with 40,000 attributes on one element (430 KB) and a
  2.5 MB Markdown file of `p` paragraphs (`[normalize] timeout_s` is set to 3 s when
  this version of newsdrop has it).

Every moment is random (the flood in the first third, so that a full build in worker
processes is likely to meet a kill); mail gets at most 4 attempts, as in issue #13. A
timeline of the faults is printed as they happen. Then every fault is lifted and a drain
phase (at most 75 s, as the service tries a paused relay again after a minute, + 15 s
for each minute beyond the first) lets the last periods come due, every retry go out
and every document be published. The verdict, each check by name with its evidence:

- documents: every good document is an entry in the served feeds (head and RFC 5005
  archives, over HTTP) with its exact title, and nothing else is (the flood counted
  apart); problems: every bad document is a recorded problem with a reason;
  pathological: each pathological document is a problem with a reason, not an entry;
- feed-parse: every feed file on disk parsed whenever it was read, and over HTTP;
- head-feeds: whenever atom.xml, rss.xml and feed.json were read with no build in
  between (their ETags unchanged), and after the last build, they held the same ids;
- atom-latency: no probe of /atom.xml (every 150 ms) made while the service was up
  waited more than 2 s or failed (a 404 before the first build excepted); the windows from a kill until it answers are left out;
- ledger: every active subscriber's periods are contiguous from when they joined to
  the last due instant (missed = 0), each with one outcome: sent (received once, or
  twice if it was in flight at a kill), failed with the server's 5xx reply, or skipped
  as empty; nothing is left queued; the 552's recipient is not bounced;
- seeds, store: no file in seeds/ was changed by newsdrop; the store passes an
  integrity check; service: the service never exited by itself, answered within 20 s
  of each start, and stopped with 0 within 10 s of the final SIGTERM;
- survivors: no process the run started (or their descendants, multiprocessing workers
  and resource trackers included) is alive after it;
- injected: each fault did what it says: the relay answered a connection of the run's
  own 421 at the greeting and at MAIL FROM, each ballast met ENOSPC, 2,000 files were
  renamed in, 500 idle connections were held at once, the service was killed. A relay
  fault the service never met (it sent no mail in the 421 window, or while the 552
  waited) is printed as a NOTE, not a violation: the documents and ledger checks judge
  a service that sends nothing.

It prints the figures and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT / "tests"))

from smtpd import PASSWORD, free_port  # noqa: E402  (the tests' server)

from chaos_faults import (  # noqa: E402
    PATHOLOGICAL_TITLES,
    Disk,
    IdleConnections,
    flood_documents,
    many_attributes,
    many_paragraphs,
    write_flood,
)
from chaos_relay import TOO_BIG, Relay  # noqa: E402
from chaos_watch import HeadSampler, Prober, ProcessTracker, Seen, Uptime  # noqa: E402
from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS, NormalizeSettings  # noqa: E402
from newsdrop.errors import SourceError  # noqa: E402
from newsdrop.ingest.normalize import normalize  # noqa: E402
from newsdrop.model import Hints  # noqa: E402

RECORD = ROOT / "benchmarks" / "chaos-runs.json"  # read by benchmarks/report.py
MAX_BYTES = 4 * 1024 * 1024  # above the pathological Markdown, so that it is parsed
POOL = 4
FLOOD = 2000
IDLE = 500
SLOW_PROBE_S = 2.0
STOP_WAIT_S = 10
START_WAIT_S = 20
ENTRY_BODY = re.compile(rb"<(content|summary)\b[^>]*>.*?</\1>", re.DOTALL)

FAULTS = {
    "kills": "SIGKILL the service at random moments, then start it again",
    "smtp": "the relay answers DATA at random: 421, 451, 550, or drops the connection",
    "outages": "the relay is down for a few seconds now and then",
    "421": "the relay answers 421 at the greeting, then at MAIL FROM, for a minute",
    "552": "a 552 5.3.4 at DATA for one message",
    "state-disk": "state/ on a small tmpfs that a ballast file fills, then empties (root)",
    "feeds-disk": "feeds/ on a small tmpfs that a ballast file fills, then empties (root)",
    "flood": f"{FLOOD} documents written as NAME.part and renamed into seeds/ at once",
    "idle": f"{IDLE} idle TCP connections to the service, held for a while",
    "pathological": "an HTML file with 40,000 attributes and a 2.5 MB Markdown of p's",
}
ALIASES = {"disk": ("state-disk", "feeds-disk"), "all": tuple(FAULTS)}


def fault_set(text: str) -> set[str]:
    names: set[str] = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word in ALIASES:
            names.update(ALIASES[word])
        elif word in FAULTS:
            names.add(word)
        else:
            valid = ", ".join([*FAULTS, *ALIASES])
            raise argparse.ArgumentTypeError(f"unknown fault {word!r}; the faults are: {valid}")
    return names


# --- what the run did, and what it expects ---------------------------------------------------------


@dataclass
class Ledger:
    written: dict[str, str] = field(default_factory=dict)  # seeds path -> sha256 we wrote
    flood: dict[str, str] = field(default_factory=dict)  # seeds path -> title
    pathological: set[str] = field(default_factory=set)
    kills: int = 0
    restarts: list[float] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)  # the service ended by itself
    starts_refused_disk_full: int = 0
    feed_reads: int = 0
    feed_failures: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    subscribers_added: list[str] = field(default_factory=list)
    subscribers_removed: list[str] = field(default_factory=list)
    injected: dict[str, Any] = field(default_factory=dict)  # what each fault did


Violations = list[tuple[str, str]]  # (check, what with evidence)
Plan = list[tuple[float, str, Callable[[], None]]]  # (seconds into the fault phase, fault, run)


class Chaos:
    def __init__(self, minutes: float, seed: int, workdir: Path, faults: set[str]) -> None:
        self.rng = random.Random(seed)
        self.minutes, self.seed, self.faults = minutes, seed, faults
        self.phase = minutes * 60
        self.interval = 10 if minutes < 2 else 20  # seconds per digest period
        self.window_421 = min(60.0, self.phase / 3)
        self.disk_hold = min(20.0, self.phase / 6)
        self.idle_hold = min(30.0, self.phase / 4)
        # The service tries a paused relay again after a minute (PAUSED_RETRY): the drain
        # outlasts that, and a longer run's longer backoffs.
        self.drain_cap = min(75 + 15 * max(0.0, minutes - 1), 150)
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.home = workdir / "news"
        subprocess.run(
            [sys.executable, "-m", "newsdrop", "init", str(self.home)],
            check=True,
            capture_output=True,
        )
        self.seeds = self.home / "seeds"
        self.disks = {
            "state-disk": Disk(self.home / "state", size="512m"),
            "feeds-disk": Disk(self.home / "feeds", size="1g"),
        }
        for name, disk in self.disks.items():
            if name in faults and not disk.mount():
                print(f"chaos: {name} skipped: {disk.why_not}")
        self.full: set[str] = set()  # the disks full now
        self.relay = Relay(workdir, self.rng, random_faults="smtp" in faults)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.env = {
            **os.environ,
            **self.relay.env(),
            "NEWSDROP_SMTP_PASSWORD": PASSWORD,
            "NEWSDROP_SERVER__PORT": str(self.port),
            "NEWSDROP_SITE__BASE_URL": self.base_url,
            "NEWSDROP_SITE__TAG_AUTHORITY": "chaos.example.org",
            "NEWSDROP_DIGEST__INTERVAL_SECONDS": str(self.interval),
            "NEWSDROP_FEEDS__MAX_ENTRIES": "20",
            "NEWSDROP_NORMALIZE__MAX_BYTES": str(MAX_BYTES),
            "NEWSDROP_WATCH__SETTLE_MS": "300",
            "NEWSDROP_MAIL__POOL_SIZE": str(POOL),
            "NEWSDROP_MAIL__RATE_PER_SECOND": "200",
            "NEWSDROP_MAIL__TIMEOUT_S": "5",
            "NEWSDROP_MAIL__RETRY_BASE_S": "1",
            "NEWSDROP_MAIL__MAX_ATTEMPTS": "4",  # as in issue #13: a busy relay must not use them up
            "NEWSDROP_MAIL__CLAIM_TIMEOUT_S": "15",
        }
        # The bound on a document's parse (issue #13), where this version has it.
        self.normalize_timeout = "timeout_s" in NormalizeSettings.model_fields
        if self.normalize_timeout:
            self.env["NEWSDROP_NORMALIZE__TIMEOUT_S"] = "3"
        self.ledger = Ledger()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "service.log"
        self.log = self.log_path.open("ab")
        self.http = httpx.Client(base_url=self.base_url, timeout=10)
        self.stop_reading = threading.Event()
        self.lifted = threading.Event()  # the fault phase is over: every fault ends
        self.uptime = Uptime()
        self.prober = Prober(self.base_url, self.uptime)
        self.sampler = HeadSampler(self.base_url, self.uptime, self.t0)
        self.tracker = ProcessTracker(self.t0)
        self.fault_threads: list[threading.Thread] = []
        self.confirmations: list[str] = []  # asked for on /subscribe in the 421 window
        self.notes: list[str] = []  # faults the service never met (not violations)
        self.not_run: set[str] = set()  # faults whose moment never came
        self.good = self._good_texts()
        self.naughty = self._naughty()
        self.serial = 0

    def at(self) -> float:
        """Seconds since the run began, for evidence."""
        return round(time.monotonic() - self.t0, 1)

    def say(self, what: str) -> None:
        """One line of the run's timeline."""
        print(f"chaos: {self.at():6.1f} s  {what}", flush=True)

    # --- inputs -------------------------------------------------------------------------------

    def _good_texts(self) -> list[str]:
        news = sorted((CORPUS / "news").rglob("*.txt")) if CORPUS.exists() else []
        if news:
            return [p.read_text(encoding="utf-8", errors="replace") for p in news[:400]]
        return [f"Generated story {n}\n\n" + f"Sentence {n} of the story. " * 40 for n in range(50)]

    def _naughty(self) -> list[str]:
        path = CORPUS / "naughty" / "blns.json"
        if path.exists():
            return [s for s in json.loads(path.read_text(encoding="utf-8")) if s.strip()]
        return ["<script>alert(1)</script>", "Ω≈ç√∫", "𝕿𝖍𝖊 𝖖𝖚𝖎𝖈𝖐", "\u202eRTL", "' OR 1=1 --"]

    def name(self, suffix: str) -> str:
        self.serial += 1
        folder = self.rng.choice(["", "", "desk/", "desk/late/"])
        return f"{folder}doc-{self.serial:05d}{suffix}"

    def write(self, name: str, data: bytes, *, how: str = "") -> None:
        path = self.seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        how = how or self.rng.choice(["rename", "in-place"])
        if how == "rename":
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(data)
            os.replace(partial, path)
        elif how == "slow":
            with path.open("wb") as handle:
                for start in range(0, len(data), max(1, len(data) // 4)):
                    handle.write(data[start : start + max(1, len(data) // 4)])
                    handle.flush()
                    time.sleep(self.rng.uniform(0.05, 0.2))
        else:
            path.write_bytes(data)
        self.ledger.written[name] = hashlib.sha256(data).hexdigest()

    def markdown(self, title: str, body: str) -> bytes:
        return f"---\ntitle: {json.dumps(title)}\n---\n{body}\n".encode()

    def act(self) -> None:
        # The flood and the pathological documents stay as written: the verdict counts them.
        live = sorted(set(self.ledger.written) - set(self.ledger.flood) - self.ledger.pathological)
        choice = self.rng.choices(
            ["good", "slow", "naughty", "binary", "encoding", "empty", "oversized",
             "rename", "edit", "delete", "subscribe", "unsubscribe"],
            weights=[30, 4, 10, 3, 3, 2, 2, 6, 6, 5, 3, 1],
        )[0]  # fmt: skip
        self.ledger.actions[choice] += 1
        if choice in ("good", "slow"):
            text = self.rng.choice(self.good)
            headline, _, body = text.partition("\n")
            title = f"{headline.strip()[:80]} #{self.serial + 1}"
            self.write(self.name(".md"), self.markdown(title, body.strip() or headline),
                       how="slow" if choice == "slow" else "")  # fmt: skip
        elif choice == "naughty":
            title, body = self.rng.choice(self.naughty), self.rng.choice(self.naughty)
            kind = self.rng.choice([".md", ".txt", ".html"])
            data = self.markdown(title, body) if kind == ".md" else f"{title}\n\n{body}\n".encode()
            self.write(self.name(kind), data)
        elif choice == "binary":
            self.write(self.name(".txt"), bytes(self.rng.randrange(256) for _ in range(2000)))
        elif choice == "encoding":
            self.write(
                self.name(".md"), b"---\ntitle: bad\n---\n\xff\xfe\xc3\x28\xa0\xa1 \x80\x81" * 20
            )
        elif choice == "empty":
            self.write(self.name(".txt"), b"")
        elif choice == "oversized":
            self.write(self.name(".txt"), b"Big\n\n" + b"w" * MAX_BYTES)
        elif choice == "rename" and live:
            old = self.rng.choice(live)
            new = self.name(Path(old).suffix)
            (self.seeds / new).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.seeds / old, self.seeds / new)
            self.ledger.written[new] = self.ledger.written.pop(old)
        elif choice == "edit" and live:
            name = self.rng.choice([n for n in live if n.endswith(".md")] or live)
            title = f"Edited story #{self.serial} {self.rng.choice(self.naughty)[:40]}"
            self.write(name, self.markdown(title, self.rng.choice(self.good)))
        elif choice == "delete" and live:
            name = self.rng.choice(live)
            (self.seeds / name).unlink()
            del self.ledger.written[name]
        elif choice == "subscribe":
            email = f"reader{len(self.ledger.subscribers_added)}@example.org"
            if self.cli("subscribers", "add", email, "--tz", self.rng.choice(
                    ["UTC", "Europe/Kyiv", "America/New_York", "Asia/Kolkata"])) == 0:  # fmt: skip
                self.ledger.subscribers_added.append(email)
        elif choice == "unsubscribe":
            still = [
                e for e in self.ledger.subscribers_added if e not in self.ledger.subscribers_removed
            ]
            if len(still) > 2:
                email = self.rng.choice(still)
                if self.cli("subscribers", "remove", email) == 0:
                    self.ledger.subscribers_removed.append(email)

    def cli(self, *args: str) -> int:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "newsdrop", "--home", str(self.home), *args],
                env=self.env,
                capture_output=True,
                timeout=20,
            )
        except subprocess.TimeoutExpired:
            self.ledger.actions["cli timed out"] += 1
            return -1
        return result.returncode

    # --- the service --------------------------------------------------------------------------

    def start(self) -> None:
        """Start newsdrop run and wait for its first answer. A start refused while state/ is
        full is tried again once a second (a supervisor would); any other exit, or no answer
        within START_WAIT_S, is a violation (the run goes on: the probes then tell)."""
        started = time.monotonic()
        while True:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "newsdrop", "--home", str(self.home), "run",
                 "--log-format", "json"],
                stdout=self.log, stderr=self.log, env=self.env,
            )  # fmt: skip
            while time.monotonic() - started < START_WAIT_S and self.process.poll() is None:
                try:
                    if self.http.get("/healthz", timeout=2).status_code in (200, 503):
                        self.ledger.restarts.append(time.monotonic() - started)
                        self.uptime.up()
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            if self.process.poll() is None:  # running, but no answer
                self.ledger.exits.append(
                    f"at {self.at()} s newsdrop run did not answer /healthz within "
                    f"{START_WAIT_S} s of its start; see {self.log_path}"
                )
                self.ledger.restarts.append(time.monotonic() - started)
                self.uptime.up()
                return
            if "state-disk" in self.full:
                self.ledger.starts_refused_disk_full += 1
            else:
                self.ledger.exits.append(
                    f"at {self.at()} s newsdrop run exited with {self.process.returncode} "
                    f"while starting; see {self.log_path}"
                )
            if time.monotonic() - started > 3 * START_WAIT_S:
                raise SystemExit(f"newsdrop run would not start; see {self.log_path}")
            time.sleep(1)

    def kill(self) -> None:
        assert self.process is not None
        self.uptime.down()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.ledger.kills += 1

    def watch_exit(self) -> None:
        """A service that ended by itself is a violation; start it again and go on."""
        assert self.process is not None
        if self.process.poll() is None:
            return
        self.uptime.down()
        self.ledger.exits.append(
            f"at {self.at()} s newsdrop run exited by itself with {self.process.returncode}"
            f" (full: {sorted(self.full) or 'none'}); see {self.log_path}"
        )
        self.start()

    def read_feeds(self) -> None:
        """Every feed file on disk must parse whenever it is read (bytes the same as the last
        parsed are not parsed again: the run's own CPU would slow the service it judges)."""
        feeds = self.home / "feeds"
        last: dict[str, bytes] = {}
        while not self.stop_reading.is_set():
            for name in ("atom.xml", "rss.xml", "feed.json"):
                try:
                    data = (feeds / name).read_bytes()
                except FileNotFoundError:
                    continue
                self.ledger.feed_reads += 1
                digest = hashlib.blake2b(data, digest_size=16).digest()
                if last.get(name) == digest:
                    continue
                last[name] = digest
                if name.endswith(".json"):
                    try:
                        json.loads(data)
                    except ValueError as exc:
                        self.ledger.feed_failures.append(f"at {self.at()} s {name}: {exc}")
                elif feedparser.parse(data).bozo:
                    self.ledger.feed_failures.append(
                        f"at {self.at()} s {name}: {feedparser.parse(data).bozo_exception}"
                    )
            time.sleep(0.2)

    def smtp_outages(self) -> None:
        """Now and then the mail server is down for a few seconds."""
        while not self.stop_reading.wait(self.rng.uniform(20, 40)):
            with self.relay.down():
                self.relay.outages += 1
                self.stop_reading.wait(self.rng.uniform(2, 6))

    # --- the faults of issue #13, each at a random moment of the fault phase -------------------

    def schedule(self) -> tuple[Plan, Plan]:
        """(windows, moments): a window is a fault that lasts, run in its own thread from
        its moment on (so that a slow restart does not shift it); a moment is one act of
        the main loop, which owns the ledger of seeds/."""
        phase, uniform = self.phase, self.rng.uniform
        windows: Plan = []
        moments: Plan = []

        def window(name: str, length: float, run: Callable[[], None]) -> None:
            windows.append(
                (uniform(0.05 * phase, max(0.05 * phase, phase - length - 1)), name, run)
            )

        if "421" in self.faults:
            window("421", self.window_421, self.fault_421)
        for name, disk in self.disks.items():
            if name in self.faults and disk.mounted:
                window(name, self.disk_hold, lambda disk=disk: self.fault_disk(disk))
        if "idle" in self.faults:
            window("idle", self.idle_hold, self.fault_idle)
        if "552" in self.faults:  # early: it waits for the next message the service sends
            moments.append((uniform(0.05, 0.3) * phase, "552", self.fault_552))
        if "flood" in self.faults:
            # Early, so that a build after a full feeds/ (a full one, by then in worker
            # processes) is likely to meet a kill: the orphans of issue #13.
            moments.append((uniform(0.05, 0.35) * phase, "flood", self.fault_flood))
        if "pathological" in self.faults:
            for kind in ("attributes", "paragraphs"):
                moments.append(
                    (uniform(0.05, 0.7) * phase, "pathological",
                     lambda kind=kind: self.fault_pathological(kind))
                )  # fmt: skip
        return sorted(windows, key=lambda w: w[0]), sorted(moments, key=lambda m: m[0])

    def in_thread(self, moment: float, name: str, run: Callable[[], None]) -> None:
        """Run the window ``name`` from ``moment`` (monotonic) on, in a thread of its own."""

        def timed() -> None:
            if self.lifted.wait(max(0.0, moment - time.monotonic())):
                self.not_run.add(name)
                self.notes.append(f"{name}: not run, the fault phase ended first")
                return
            self.say(f"{name}: begins")
            run()
            self.say(f"{name}: lifted")

        thread = threading.Thread(target=timed, name=f"fault {name}", daemon=True)
        thread.start()
        self.fault_threads.append(thread)

    def fault_421(self) -> None:
        """421 at the greeting and at MAIL FROM in turns of at most 5 s, for the window: a
        service that pauses after its first 421 still meets the other kind when a kill
        restarts it (a start sends at once)."""
        sink, ends = self.relay.sink, time.monotonic() + self.window_421
        parts = self.rng.sample(["greeting", "MAIL FROM"], 2)
        turns: list[str] = []
        for part in itertools.cycle(parts):
            left = ends - time.monotonic()
            if left <= 0.5 or self.lifted.is_set():
                break
            turn = min(5.0, left)
            began = self.at()
            if part == "greeting":
                with self.relay.busy_greeting():
                    if part not in turns:
                        self.check_421(part)
                    self.lifted.wait(max(0.0, turn - (self.at() - began)))
            else:
                sink.mail_busy = True
                if part not in turns:
                    self.check_421(part)
                self.lifted.wait(max(0.0, turn - (self.at() - began)))
                sink.mail_busy = False
            turns.append(part)
        self.ledger.injected["421 turns"] = dict(Counter(turns))

    def check_421(self, part: str) -> None:
        self.say(f"421: at {part} now (and in turns with the other)")
        self.ledger.injected[f"421 at {part}: the run's own check"] = self.relay.check_421(part)
        self.ask_confirmation()

    def ask_confirmation(self) -> None:
        """Subscribe on the web page, so that the service sends mail (a confirmation) in the
        421 window whether or not a digest with entries comes due in it."""
        email = f"confirm{len(self.confirmations)}@example.org"
        try:
            with httpx.Client(base_url=self.base_url, timeout=5) as client:
                client.post("/subscribe", data={"email": email})
            self.confirmations.append(email)
        except httpx.HTTPError:
            pass

    def fault_552(self) -> None:
        self.relay.sink.fail_next = TOO_BIG
        self.say("552: the next message gets a 552 5.3.4")
        self.ledger.injected["552 armed at s"] = self.at()

    def fault_disk(self, disk: Disk) -> None:
        began = time.monotonic()
        disk.fill()
        self.say(f"{disk.folder.name}-disk: full (ENOSPC seen: {disk.enospc})")
        self.full.add(f"{disk.folder.name}-disk")
        self.lifted.wait(self.disk_hold)
        disk.empty()
        self.full.discard(f"{disk.folder.name}-disk")
        disk.full_seconds += time.monotonic() - began

    def fault_idle(self) -> None:
        idle = IdleConnections(self.port, count=IDLE, half_heads=IDLE // 5)
        began = self.at()
        idle.hold(
            self.idle_hold,
            up=lambda: self.uptime.is_up,
            kills=lambda: self.ledger.kills,
            lifted=self.lifted,
        )
        self.ledger.injected["idle connections"] = {
            "from s": began, "to s": self.at(), "opened": idle.opened, "most held at once":
            idle.most_held, "closed by the service": idle.closed_by_service,
            "first closed after s": idle.first_closed_after_s, "lost to kills (reopened)":
            idle.lost_to_kills, "connects refused": idle.refused,
        }  # fmt: skip

    def fault_flood(self) -> None:
        documents = flood_documents(FLOOD, self.seed)
        self.say(f"flood: {FLOOD} files written as NAME.part, then renamed into seeds/")
        renamed, seconds = write_flood(self.seeds, documents)
        for name, data, title in documents:
            self.ledger.written[name] = hashlib.sha256(data).hexdigest()
            self.ledger.flood[name] = title
        self.ledger.injected["flood"] = {
            "at s": self.at(), "renamed into seeds/": renamed, "renames took s": round(seconds, 2)
        }  # fmt: skip

    def fault_pathological(self, kind: str) -> None:
        name = f"pathological-{kind}.html" if kind == "attributes" else f"pathological-{kind}.md"
        data = many_attributes() if kind == "attributes" else many_paragraphs()
        self.say(f"pathological: seeds/{name}, {len(data) // 1024} KB")
        self.write(name, data, how="rename")
        self.ledger.pathological.add(name)
        self.ledger.injected.setdefault("pathological", {})[name] = {
            "at s": self.at(), "KB": len(data) // 1024
        }  # fmt: skip

    def lift(self) -> None:
        """End every fault: the relay calm and whole, the disks empty, connections closed."""
        self.lifted.set()
        self.stop_reading.set()
        for thread in self.fault_threads:
            thread.join()
        sink = self.relay.sink
        sink.calm, sink.mail_busy = True, False
        if sink.fail_next is not None:
            sink.fail_next = None
            self.ledger.injected["552 given"] = f"no: no message reached DATA from then to {self.at()} s"  # fmt: skip
        for disk in self.disks.values():
            if disk.mounted and disk.ballast.exists():
                disk.empty()

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> int:
        self.tracker.start()
        self.relay.start()
        first = [f"first{n}@example.org" for n in range(3)]
        csv = self.home / "first-subscribers.csv"
        csv.write_text("".join(f"{email},,UTC\n" for email in first), encoding="utf-8")
        if self.cli("subscribers", "import", str(csv)) != 0:
            raise SystemExit("chaos: newsdrop subscribers import failed")
        self.ledger.subscribers_added += first
        self.start()
        self.say(f"the service answers; the fault phase begins ({self.phase:g} s)")
        threads = [threading.Thread(target=self.read_feeds, daemon=True)]
        if "outages" in self.faults:
            threads.append(threading.Thread(target=self.smtp_outages, daemon=True))
        for thread in [*threads, self.prober, self.sampler]:
            thread.start()
        began = time.monotonic()
        deadline = began + self.phase
        windows, plan = self.schedule()
        self.ledger.injected["plan (s into the fault phase)"] = [
            f"{name} at {round(moment, 1)}"
            for moment, name, _ in sorted(windows + plan, key=lambda m: m[0])
        ]
        for moment, name, run in windows:
            self.in_thread(began + moment, name, run)
        next_kill = time.monotonic() + self.rng.uniform(5, 12)
        while time.monotonic() < deadline:
            while plan and plan[0][0] <= time.monotonic() - began:
                plan.pop(0)[2]()
            self.act()
            self.watch_exit()
            if "kills" in self.faults and time.monotonic() > next_kill:
                self.kill()
                time.sleep(self.rng.uniform(0, 1))
                self.start()
                next_kill = time.monotonic() + self.rng.uniform(5, 12)
            time.sleep(self.rng.uniform(0.05, 0.3))
        for _, name, _ in plan:  # the loop was held up (a slow restart) past their moment
            self.not_run.add(name)
            self.notes.append(f"{name}: not run, its moment came after a slow restart had used up the fault phase")  # fmt: skip
        self.lift()
        self.say("fault phase over; every fault lifted, draining")
        for thread in threads:
            thread.join()
        self.watch_exit()
        end_of_chaos = datetime.now(UTC)
        expected, bad = self.expectation()
        served = self.drain(expected)  # over HTTP, before the service stops
        self.sampler.stopping.set()
        self.sampler.join()
        last_sample: bool | str | None = "not taken: the service did not answer"
        if served is None:  # the service check says so; the probes show how long it waited
            self.ledger.exits.append(f"at {self.at()} s the served feeds could not be read at the end of the drain")  # fmt: skip
            served = Counter()
        else:
            last_sample = self.final_sample()
        self.prober.stopping.set()
        self.prober.join()
        assert self.process is not None
        self.uptime.down()
        self.process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        try:
            code = self.process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.ledger.exits.append(f"newsdrop run did not stop within {STOP_WAIT_S} s of SIGTERM (killed)")  # fmt: skip
            self.process.kill()
            code = self.process.wait()
        self.ledger.injected["SIGTERM to exit s"] = round(time.monotonic() - stopping, 1)
        self.tracker.stopping.set()
        self.tracker.join()
        survivors = self.survivors()
        return self.check(
            end_of_chaos, expected, bad, served,
            stop_code=code, last_sample=last_sample, survivors=survivors,
        )  # fmt: skip

    def expectation(self) -> tuple[Counter[str], set[str]]:
        """What the files in seeds/ should have become: entry titles, and bad files."""
        hints = Hints(first_seen=datetime.now(UTC), tag_authority="chaos.example.org",
                      boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS)  # fmt: skip
        expected: Counter[str] = Counter()
        bad: set[str] = set()
        for name in sorted(self.ledger.written):
            if name in self.ledger.pathological:
                continue  # judged apart; parsing them here would take minutes and GBs
            if name in self.ledger.flood:  # written by this run, with these titles
                expected[self.ledger.flood[name]] += 1
                continue
            data = (self.seeds / name).read_bytes()
            if len(data) > MAX_BYTES:
                bad.add(name)
                continue
            try:
                entry = normalize(data, name, hints)
            except SourceError:
                bad.add(name)
                continue
            if not entry.draft and entry.published <= datetime.now(UTC):  # else: not yet
                expected[entry.title] += 1
        return expected, bad

    def drain(self, expected: Counter[str]) -> Counter[str] | None:
        """Let the last periods come due, every retry go out (the server is calm now) and
        every document be published; at most drain_cap seconds. The titles served at its
        end, when they could be read."""
        began = time.monotonic()
        time.sleep(self.interval + 2)
        served: Counter[str] | None = None
        while True:
            engine = sa.create_engine(f"sqlite:///{self.home / 'state' / 'newsdrop.db'}")
            with engine.connect() as conn:
                waiting = conn.scalar(sa.text(
                    "select count(*) from deliveries where state in ('queued','sending','retrying')"))  # fmt: skip
            engine.dispose()
            left = self.drain_cap - (time.monotonic() - began)
            try:
                served = self.served_titles(timeout=max(1.0, min(5.0, left)))
                missing = sum((expected - served).values())
            except httpx.HTTPError:
                served, missing = None, -1
            if (not waiting and missing == 0) or time.monotonic() - began > self.drain_cap:
                break
            time.sleep(2)
        self.say("drained" if not waiting and missing == 0 else "the drain's time is up")
        self.ledger.injected["drain"] = {
            "s": round(time.monotonic() - began, 1), "cap s": self.drain_cap,
            "deliveries waiting at its end": waiting, "documents not yet served": missing,
        }  # fmt: skip
        return served

    def final_sample(self) -> bool | None:
        """The head feeds after the last build: one stable comparison (tries for 10 s)."""
        deadline = time.monotonic() + 10
        with httpx.Client(base_url=self.base_url, timeout=3) as client:
            while time.monotonic() < deadline:
                outcome = self.sampler.sample(client)
                if outcome is not None:
                    return outcome
                time.sleep(1)
        return None

    def survivors(self) -> list[Seen]:
        """Processes of the run still alive a few seconds after the service stopped."""
        deadline = time.monotonic() + 5
        alive = self.tracker.survivors()
        while alive and time.monotonic() < deadline:
            time.sleep(0.25)
            alive = self.tracker.survivors()
        self.tracker.end(alive)  # they must not outlive the run, even when it fails
        return alive

    # --- the checks ---------------------------------------------------------------------------

    def check(
        self,
        end_of_chaos: datetime,
        expected: Counter[str],
        bad: set[str],
        served: Counter[str],
        *,
        stop_code: int,
        last_sample: bool | str | None,
        survivors: list[Seen],
    ) -> int:
        violations: Violations = []
        figures: dict[str, Any] = {"faults": sorted(self.faults)}

        # Service: it never ended by itself, and stopped cleanly.
        if stop_code != 0:
            violations.append(("service", f"the final SIGTERM ended newsdrop run with {stop_code}, not 0"))  # fmt: skip
        violations += [("service", exit) for exit in self.ledger.exits[:5]]
        figures["service exits by itself"] = len(self.ledger.exits)
        figures["starts refused while state/ was full"] = self.ledger.starts_refused_disk_full

        # Documents: what the files in seeds/ should have become.
        figures["good documents"] = sum(expected.values())
        figures["entries served"] = sum(served.values())
        missing = expected - served
        extra = Counter(
            {t: n for t, n in (served - expected).items() if t not in PATHOLOGICAL_TITLES}
        )
        if missing:
            violations.append(("documents", f"{sum(missing.values())} good documents are not served: {list(missing)[:5]}"))  # fmt: skip
        if extra:
            violations.append(("documents", f"{sum(extra.values())} served entries have no document: {list(extra)[:5]}"))  # fmt: skip
        if self.ledger.flood:
            flood_served = sum(1 for title in self.ledger.flood.values() if served[title])
            figures["flood documents served"] = f"{flood_served} of {len(self.ledger.flood)}"
            if flood_served < len(self.ledger.flood):
                violations.append(("documents", f"{len(self.ledger.flood) - flood_served} of the {len(self.ledger.flood)} flood documents are not served"))  # fmt: skip

        status = subprocess.run(
            [sys.executable, "-m", "newsdrop", "--home", str(self.home), "status", "--json"],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        problems = {p["path"]: p["reason"] for p in json.loads(status.stdout)["problems"]}
        figures["bad documents"] = len(bad)
        unrecorded = [n for n in bad if not problems.get(n)]
        if unrecorded:
            violations.append(("problems", f"{len(unrecorded)} bad documents are not problems: {unrecorded[:5]}"))  # fmt: skip
        for name in sorted(self.ledger.pathological):
            reason = problems.get(name)
            figures.setdefault("pathological documents", {})[name] = reason or "not a problem"
            if not reason:
                violations.append(("pathological", f"seeds/{name} is not a problem with a reason (within the drain)"))  # fmt: skip
        for title in PATHOLOGICAL_TITLES:
            if served[title]:
                violations.append(("pathological", f"{title!r} is served as an entry"))

        # Feeds read while the run went on: from disk, and over HTTP.
        samples = self.sampler.samples
        figures["feed reads"] = self.ledger.feed_reads
        figures["feed reads that did not parse"] = len(self.ledger.feed_failures) + len(samples.unparsable)  # fmt: skip
        violations += [("feed-parse", f"a feed did not parse: {f}") for f in self.ledger.feed_failures[:5]]  # fmt: skip
        violations += [("feed-parse", f"a feed did not parse: {f}") for f in samples.unparsable[:5]]  # fmt: skip

        # The head feeds agree.
        figures["head feed samples"] = {
            "compared": samples.compared, "agreed": samples.agreed,
            "cut by a build twice": samples.cut_by_a_build, "unreachable": samples.unreachable,
            "after the last build": {True: "agreed", False: "DISAGREED", None: "no stable read"}.get(last_sample, last_sample),
        }  # fmt: skip
        for d in samples.disagreements[:5]:
            violations.append(("head-feeds", f"at {d.at} s the head feeds held different entries: counts {d.counts}, ids only in {d.only_in}"))  # fmt: skip
        if len(samples.disagreements) > 5:
            violations.append(("head-feeds", f"... {len(samples.disagreements)} disagreeing samples in all"))  # fmt: skip
        if last_sample in (False, None) and not samples.disagreements:
            violations.append(("head-feeds", f"after the last build: {figures['head feed samples']['after the last build']}"))  # fmt: skip
        if samples.compared == 0:
            violations.append(("head-feeds", "not one stable sample of the three head feeds"))

        # /atom.xml probes while the service was up.
        violations += self.check_probes(figures)

        # The digest ledger.
        violations += [("ledger", v) for v in self.check_ledger(end_of_chaos, figures)]

        # Nothing in seeds/ was changed; the store is sound.
        changed = [n for n, digest in self.ledger.written.items()
                   if hashlib.sha256((self.seeds / n).read_bytes()).hexdigest() != digest]  # fmt: skip
        figures["seed files changed by newsdrop"] = len(changed)
        violations += [("seeds", f"seeds/{n} was changed") for n in changed[:5]]
        engine = sa.create_engine(f"sqlite:///{self.home / 'state' / 'newsdrop.db'}")
        with engine.connect() as conn:
            integrity = conn.scalar(sa.text("pragma integrity_check"))
        engine.dispose()
        figures["store integrity"] = integrity
        if integrity != "ok":
            violations.append(("store", f"the store's integrity check says {integrity}"))

        # No process outlives the run.
        figures["processes seen"] = len(self.tracker.seen)
        figures["processes alive after the run"] = len(survivors)
        if not self.tracker.subreaper:
            figures["processes seen"] = f"{len(self.tracker.seen)} (not a subreaper: orphans may go unseen)"  # fmt: skip
        for process in survivors[:10]:
            violations.append(("survivors", f"pid {process.pid} outlived the run (first seen at {process.first_seen} s): {process.command}"))  # fmt: skip

        violations += self.check_injected(figures)
        figures["faults the service never met"] = self.notes
        figures["kills (SIGKILL)"] = self.ledger.kills
        figures["restart to first answer, max s"] = round(max(self.ledger.restarts), 2)
        figures["actions"] = dict(self.ledger.actions)
        figures["SMTP answers"] = dict(self.relay.sink.replies)
        figures["relay outages"] = self.relay.outages
        figures["normalize timeout_s"] = "3" if self.normalize_timeout else "not in this version"
        figures["faults injected"] = self.ledger.injected
        print(json.dumps(figures, indent=2, ensure_ascii=False, default=str))
        failed = Counter(check for check, _ in violations)
        for note in self.notes:
            print(f"NOTE [not exercised]: {note}")
        for check, violation in violations:
            print(f"VIOLATION [{check}]: {violation}")
        print("checks failed: " + (", ".join(f"{c} ({n})" for c, n in failed.items()) or "none"))
        print("chaos: " + ("FAILED" if violations else "passed"))
        self.record(figures, [f"[{c}] {v}" for c, v in violations])
        return 1 if violations else 0

    def check_probes(self, figures: dict[str, Any]) -> Violations:
        counted = self.prober.counted()
        waits = sorted(p.waited for p in counted)
        slow = [p for p in counted if p.waited > SLOW_PROBE_S]
        # A 404 before the first feed was ever served is a service not yet built, not a fault.
        served = [p.at for p in counted if p.outcome in ("200", "304")]
        first_served = min(served) if served else float("inf")
        early = [p for p in counted if p.outcome == "404" and p.at < first_served]
        failed = [p for p in counted if p.waited <= SLOW_PROBE_S and p.outcome not in ("200", "304") and p not in early]  # fmt: skip
        figures["atom.xml probes"] = {
            "while up": len(counted), "left out (down)": len(self.prober.probes) - len(counted),
            "p50 ms": round(statistics.median(waits) * 1000, 1) if waits else None,
            "p99 ms": round(waits[int(len(waits) * 0.99)] * 1000, 1) if waits else None,
            "max s": round(waits[-1], 2) if waits else None,
            f"over {SLOW_PROBE_S:g} s": len(slow), "failed": len(failed),
            "404 before the first build": len(early),
        }  # fmt: skip
        out: Violations = []
        for p in sorted(slow, key=lambda p: -p.waited)[:5]:
            out.append(("atom-latency", f"a probe of /atom.xml at {round(p.at - self.t0, 1)} s waited {p.waited:.1f} s ({p.outcome})"))  # fmt: skip
        if len(slow) > 5:
            out.append(("atom-latency", f"... {len(slow)} probes over {SLOW_PROBE_S:g} s in all"))  # fmt: skip
        for p in failed[:3]:
            out.append(("atom-latency", f"a probe of /atom.xml at {round(p.at - self.t0, 1)} s failed: {p.outcome}"))  # fmt: skip
        if not counted:
            out.append(("atom-latency", "no probe was made while the service was up"))
        return out

    def check_injected(self, figures: dict[str, Any]) -> Violations:
        """Each fault that was on did what it says: else the run proves nothing about it."""
        out: Violations = []
        replies = self.relay.sink.replies
        on = self.faults - self.not_run
        if "421" in on:
            for where in ("greeting", "MAIL FROM"):
                checked = self.ledger.injected.get(f"421 at {where}: the run's own check", "")
                if not checked.startswith("421"):
                    out.append(("injected", f"the relay did not answer the run's own connection 421 at {where}: {checked!r}"))  # fmt: skip
                given = replies[f"421 at {where}"] - self.relay.own_checks[where]
                figures.setdefault("421s the service got", {})[where] = given
                if not given:
                    self.notes.append(f"421 at {where}: the service made no connection to the relay in its window")  # fmt: skip
            received = {str(m["To"]) for m in self.relay.sink.received}
            got = [e for e in self.confirmations if any(e in to for to in received)]
            figures["confirmations asked in the 421 window, received by the end"] = (
                f"{len(got)} of {len(self.confirmations)}"
            )
        for when, _, recipients in self.relay.sink.refused:
            self.ledger.injected["552 given"] = (
                f"at {round(when - self.wall0, 1)} s to {recipients}"
            )
        if "552" in on and not replies["552 5.3.4 at DATA"]:
            # The service sent nothing meanwhile: the documents and ledger checks judge that.
            self.notes.append(f"552: armed at {self.ledger.injected.get('552 armed at s')} s, but {self.ledger.injected.get('552 given', '')}")  # fmt: skip
        elif "552" in on and replies["552 5.3.4 at DATA"] != 1:
            out.append(("injected", f"the 552 5.3.4 was given {replies['552 5.3.4 at DATA']} times, not once (armed at {self.ledger.injected.get('552 armed at s')} s; {self.ledger.injected.get('552 given', '')})"))  # fmt: skip
        for name, disk in self.disks.items():
            figures.setdefault("disks", {})[name] = disk.figures() if name in self.faults else "off"
            if name in on and disk.mounted and disk.enospc < 1:
                out.append(("injected", f"{name}: the ballast never met ENOSPC: {disk.figures()}"))  # fmt: skip
        flood = self.ledger.injected.get("flood", {})
        if "flood" in on and flood.get("renamed into seeds/") != FLOOD:
            out.append(("injected", f"the flood renamed {flood.get('renamed into seeds/')} files, not {FLOOD}"))  # fmt: skip
        idle = self.ledger.injected.get("idle connections", {})
        if "idle" in on and idle.get("most held at once", 0) < IDLE:
            out.append(("injected", f"at most {idle.get('most held at once')} idle connections were held at once, not {IDLE}: {idle}"))  # fmt: skip
        if "pathological" in on and len(self.ledger.pathological) != 2:
            out.append(("injected", f"{len(self.ledger.pathological)} pathological documents written, not 2"))  # fmt: skip
        if "kills" in on and not self.ledger.kills:
            out.append(("injected", "the service was never killed"))
        return out

    def record(self, figures: dict[str, Any], violations: list[str]) -> None:
        """Keep each run's figures for benchmarks/REPORT.md (the last ten runs)."""
        runs = json.loads(RECORD.read_text(encoding="utf-8")) if RECORD.exists() else []
        runs.append(
            {
                "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                "minutes": self.minutes,
                "seed": self.seed,
                "passed": not violations,
                "violations": violations[:10],
                "figures": figures,
            }
        )
        RECORD.write_text(
            json.dumps(runs[-10:], indent=1, ensure_ascii=False, default=str) + "\n",
            encoding="utf-8",
        )

    def served_titles(self, *, timeout: float = 10) -> Counter[str]:
        """Every entry title in the served feeds: the head, then each prev-archive page.
        The entries' bodies are cut out first: parsing them is most of feedparser's time
        (135 ms a page, 100 pages after the flood), and only titles are compared."""
        titles: Counter[str] = Counter()
        url: str | None = "atom.xml"
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            page = self.http.get(url, timeout=timeout).content
            feed = feedparser.parse(ENTRY_BODY.sub(b"", page))
            titles.update(entry.title for entry in feed.entries)
            url = next((link.href for link in feed.feed.get("links", [])
                        if link.rel == "prev-archive"), None)  # fmt: skip
        return titles

    def check_ledger(self, end_of_chaos: datetime, figures: dict[str, Any]) -> list[str]:
        violations = []
        engine = sa.create_engine(f"sqlite:///{self.home / 'state' / 'newsdrop.db'}")
        with engine.connect() as conn:
            people = conn.execute(sa.text(
                "select id, email, state, activated, created from subscribers")).all()  # fmt: skip
            rows = conn.execute(sa.text(
                "select id, subscriber_id, due, window_start, window_end, state, reply "
                "from deliveries order by subscriber_id, window_start")).all()  # fmt: skip
        engine.dispose()
        by_person: dict[int, list[Any]] = {}
        for row in rows:
            by_person.setdefault(row.subscriber_id, []).append(row)
        states = Counter(row.state for row in rows)
        figures["deliveries by state"] = dict(states)
        for state in ("queued", "sending", "retrying"):
            if states.get(state):
                violations.append(f"{states[state]} deliveries still {state} after the drain")
        unreplied = [row for row in rows
                     if row.state == "failed" and not re.search(r"\b5\d\d\b", str(row.reply))]  # fmt: skip
        for row in unreplied[:5]:
            violations.append(f"delivery {row.id} failed without a 5xx reply: {row.reply!r}")
        if len(unreplied) > 5:
            violations.append(f"... {len(unreplied)} deliveries failed without a 5xx reply")
        missed = 0
        last_due = datetime.fromtimestamp(
            int(end_of_chaos.timestamp()) // self.interval * self.interval, UTC
        )
        for person in people:
            if person.state != "active":
                continue
            mine = by_person.get(person.id, [])
            for before, after in itertools.pairwise(mine):
                if str(before.window_end) != str(after.window_start):
                    missed += 1
                    violations.append(
                        f"{person.email}: a gap between {before.window_end} and {after.window_start}"
                    )
            joined = datetime.fromisoformat(str(person.activated or person.created)).replace(
                tzinfo=UTC
            )
            if last_due > joined + timedelta(seconds=1) and (
                not mine
                or datetime.fromisoformat(str(mine[-1].window_end)).replace(tzinfo=UTC) < last_due
            ):
                missed += 1
                violations.append(f"{person.email}: no digest covers the period due {last_due}")
        figures["periods missed"] = missed
        # A 552 5.3.4 is the relay's limit, not the recipient's fault: nobody is bounced for it.
        state_of = {person.email: person.state for person in people}
        for when, reply, recipients in self.relay.sink.refused:
            for email in recipients:
                if state_of.get(email) == "bounced":
                    violations.append(
                        f"{email} is bounced after {reply[:9]!r} at DATA at "
                        f"{datetime.fromtimestamp(when, UTC):%H:%M:%S}"
                    )
        received = Counter(str(m["Message-ID"]) for m in self.relay.sink.received)
        duplicates = sum(count - 1 for count in received.values() if count > 1)
        figures["messages received"] = sum(received.values())
        figures["duplicates (in flight at a kill)"] = duplicates
        if duplicates > self.ledger.kills * POOL:
            violations.append(f"{duplicates} duplicates, more than {POOL} per kill")
        sent = states.get("sent", 0)
        if len(received) < sent:
            violations.append(
                f"{sent} deliveries are marked sent, but the sink got {len(received)}"
            )
        return violations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("MINUTES", 5)))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", action="store_true", help="keep the instance folder")
    parser.add_argument(
        "--faults", type=fault_set, default=set(FAULTS),
        help="comma-separated faults to inject (default all; 'disk' is both disks)",
    )  # fmt: skip
    parser.add_argument(
        "--without", type=fault_set, default=set(), help="comma-separated faults to leave out"
    )
    parser.add_argument("--list-faults", action="store_true", help="name each fault and stop")
    args = parser.parse_args()
    if args.list_faults:
        for name, what in FAULTS.items():
            print(f"{name:14} {what}")
        return
    faults = args.faults - args.without
    print(f"chaos: {args.minutes} minutes, seed {args.seed}, faults: {','.join(sorted(faults)) or 'none'}")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="newsdrop-chaos-"))
    chaos = Chaos(args.minutes, args.seed, workdir, faults)
    try:
        code = chaos.run()
    finally:
        chaos.lifted.set()
        chaos.stop_reading.set()
        if chaos.process is not None and chaos.process.poll() is None:
            chaos.process.kill()
            chaos.process.wait()
        chaos.tracker.end(chaos.tracker.survivors())
        chaos.relay.stop()
        chaos.http.close()
        for disk in chaos.disks.values():
            disk.unmount(keep=args.keep)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"instance kept in {workdir}")
    sys.exit(code)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Session.login_data is deprecated")  # aiosmtpd's own
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # ... and its log of the same
    main()
