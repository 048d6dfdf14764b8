"""The chaos run (`make chaos MINUTES=5`): `newsdrop run` under every fault at once.

For MINUTES it drops documents into seeds/ (good ones from ../shared/corpus/news
when present, else generated; the naughty strings as titles and bodies; binary
files, invalid encodings, empty and oversized files, files written slowly in
pieces, renames, edits and deletions), adds and removes subscribers, lets short
digest periods pass, sends digests to an SMTP server that at random answers 421,
451 or 550, drops the connection in DATA or is down for a while, and kills the
service with SIGKILL at random moments, restarting it each time. Then it stops
the service, lets the queue drain, and checks:

- every good document is an entry in the served feeds (head and RFC 5005
  archives, over HTTP) with its exact title, and nothing else is;
- every bad document is a recorded problem with a reason;
- every feed file on disk parsed at every moment it was read;
- every active subscriber's periods are contiguous from when they joined to the
  last due instant (missed = 0), each with one outcome: sent (received once, or
  twice if it was in flight at a kill), failed with the server's 5xx reply, or
  skipped as empty; nothing is left queued;
- no file in seeds/ was changed by newsdrop; the store passes an integrity check.

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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
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

from smtpd import PASSWORD, Sink, SmtpServer, free_port  # noqa: E402  (the tests' server)

from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS  # noqa: E402
from newsdrop.errors import SourceError  # noqa: E402
from newsdrop.model import Hints  # noqa: E402
from newsdrop.normalize import normalize  # noqa: E402

RECORD = ROOT / "benchmarks" / "chaos-runs.json"  # read by benchmarks/report.py
MAX_BYTES = 64 * 1024
INTERVAL = 20  # seconds per digest period
POOL = 4


# --- the SMTP server's bad days ----------------------------------------------------------------


class ChaoticSink(Sink):
    """Answers at random: 421 or 451 (retry), 550 (failed), or drops the connection."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.calm = False
        self.replies: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        roll = self.rng.random()
        if not self.calm and roll < 0.04:
            self.replies["421"] += 1
            return "421 4.3.2 service shutting down, try later"
        if not self.calm and roll < 0.08:
            self.replies["451"] += 1
            return "451 4.3.0 temporary failure"
        if not self.calm and roll < 0.10:
            self.replies["550"] += 1
            return "550 5.1.1 mailbox unavailable"
        if not self.calm and roll < 0.13:
            self.replies["dropped"] += 1
            server.transport.abort()  # the connection dies in the middle of DATA
            return "451 4.4.2 lost"
        self.replies["250"] += 1
        return await super().handle_DATA(server, session, envelope)


# --- what the run did, and what it expects ---------------------------------------------------------


@dataclass
class Ledger:
    written: dict[str, str] = field(default_factory=dict)  # seeds path -> sha256 we wrote
    kills: int = 0
    restarts: list[float] = field(default_factory=list)
    feed_reads: int = 0
    feed_failures: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    subscribers_added: list[str] = field(default_factory=list)
    subscribers_removed: list[str] = field(default_factory=list)


class Chaos:
    def __init__(self, minutes: float, seed: int, workdir: Path) -> None:
        self.rng = random.Random(seed)
        self.minutes, self.seed = minutes, seed
        self.deadline = time.monotonic() + minutes * 60
        self.home = workdir / "news"
        subprocess.run(
            [sys.executable, "-m", "newsdrop", "init", str(self.home)],
            check=True,
            capture_output=True,
        )
        self.seeds = self.home / "seeds"
        self.smtp = SmtpServer(workdir)
        self.smtp.sink = ChaoticSink(self.rng)
        self.port = free_port()
        self.env = {
            **os.environ,
            **self.smtp.env(),
            "NEWSDROP_SMTP_PASSWORD": PASSWORD,
            "NEWSDROP_SERVER__PORT": str(self.port),
            "NEWSDROP_SITE__BASE_URL": f"http://127.0.0.1:{self.port}/",
            "NEWSDROP_SITE__TAG_AUTHORITY": "chaos.example.org",
            "NEWSDROP_DIGEST__INTERVAL_SECONDS": str(INTERVAL),
            "NEWSDROP_FEEDS__MAX_ENTRIES": "20",
            "NEWSDROP_NORMALIZE__MAX_BYTES": str(MAX_BYTES),
            "NEWSDROP_WATCH__SETTLE_MS": "300",
            "NEWSDROP_MAIL__POOL_SIZE": str(POOL),
            "NEWSDROP_MAIL__RATE_PER_SECOND": "200",
            "NEWSDROP_MAIL__TIMEOUT_S": "5",
            "NEWSDROP_MAIL__RETRY_BASE_S": "1",
            "NEWSDROP_MAIL__CLAIM_TIMEOUT_S": "15",
        }
        self.ledger = Ledger()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = (workdir / "service.log").open("ab")
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/", timeout=10)
        self.stop_reading = threading.Event()
        self.good = self._good_texts()
        self.naughty = self._naughty()
        self.serial = 0

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
        live = sorted(self.ledger.written)
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
            self.write(self.name(".txt"), b"Big\n\n" + b"word " * (MAX_BYTES // 4))
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
        result = subprocess.run(
            [sys.executable, "-m", "newsdrop", "--home", str(self.home), *args],
            env=self.env,
            capture_output=True,
            timeout=60,
        )
        return result.returncode

    # --- the service --------------------------------------------------------------------------

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "newsdrop",
                "--home",
                str(self.home),
                "run",
                "--log-format",
                "json",
            ],
            stdout=self.log,
            stderr=self.log,
            env=self.env,
        )
        started = time.monotonic()
        while time.monotonic() - started < 30:
            if self.process.poll() is not None:
                raise SystemExit(f"newsdrop run exited with {self.process.returncode}; see the log")
            try:
                if self.http.get("/healthz").status_code in (200, 503):
                    self.ledger.restarts.append(time.monotonic() - started)
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise SystemExit("newsdrop run did not answer within 30 s")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.ledger.kills += 1

    def read_feeds(self) -> None:
        """Every feed file on disk must parse whenever it is read."""
        feeds = self.home / "feeds"
        while not self.stop_reading.is_set():
            for name in ("atom.xml", "rss.xml", "feed.json"):
                try:
                    data = (feeds / name).read_bytes()
                except FileNotFoundError:
                    continue
                self.ledger.feed_reads += 1
                if name.endswith(".json"):
                    try:
                        json.loads(data)
                    except ValueError as exc:
                        self.ledger.feed_failures.append(f"{name}: {exc}")
                elif feedparser.parse(data).bozo:
                    self.ledger.feed_failures.append(
                        f"{name}: {feedparser.parse(data).bozo_exception}"
                    )
            time.sleep(0.2)

    def smtp_outages(self) -> None:
        """Now and then the mail server is down for a few seconds."""
        while not self.stop_reading.is_set():
            time.sleep(self.rng.uniform(20, 40))
            if self.stop_reading.is_set():
                break
            self.smtp.stop()
            time.sleep(self.rng.uniform(2, 6))
            self.smtp.start()

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> int:
        self.smtp.start()
        for n in range(3):
            self.cli("subscribers", "add", f"first{n}@example.org", "--tz", "UTC")
            self.ledger.subscribers_added.append(f"first{n}@example.org")
        self.start()
        threads = [
            threading.Thread(target=self.read_feeds, daemon=True),
            threading.Thread(target=self.smtp_outages, daemon=True),
        ]
        for thread in threads:
            thread.start()
        next_kill = time.monotonic() + self.rng.uniform(5, 12)
        while time.monotonic() < self.deadline:
            self.act()
            if time.monotonic() > next_kill:
                self.kill()
                time.sleep(self.rng.uniform(0, 1))
                self.start()
                next_kill = time.monotonic() + self.rng.uniform(5, 12)
            time.sleep(self.rng.uniform(0.05, 0.3))
        self.stop_reading.set()
        for thread in threads:
            thread.join()
        if self.smtp.controller is None:
            self.smtp.start()
        assert isinstance(self.smtp.sink, ChaoticSink)
        self.smtp.sink.calm = True
        end_of_chaos = datetime.now(UTC)
        self.drain()
        served = self.served_titles()  # over HTTP, before the service stops
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        return self.check(end_of_chaos, served, stop_code=code)

    def drain(self) -> None:
        """Let the last periods come due and every retry go out (the server is calm now)."""
        time.sleep(INTERVAL + 2)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            engine = sa.create_engine(f"sqlite:///{self.home / 'state' / 'newsdrop.db'}")
            with engine.connect() as conn:
                waiting = conn.scalar(sa.text(
                    "select count(*) from deliveries where state in ('queued','sending','retrying')"))  # fmt: skip
            engine.dispose()
            if not waiting:
                return
            time.sleep(1)

    # --- the checks ---------------------------------------------------------------------------

    def check(self, end_of_chaos: datetime, served: Counter[str], *, stop_code: int) -> int:
        violations: list[str] = []
        figures: dict[str, Any] = {}
        if stop_code != 0:
            violations.append(f"the final SIGTERM ended newsdrop run with {stop_code}, not 0")

        # 1. Documents: what the files in seeds/ should have become.
        hints = Hints(first_seen=datetime.now(UTC), tag_authority="chaos.example.org",
                      boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS)  # fmt: skip
        expected: Counter[str] = Counter()
        bad: set[str] = set()
        for name in sorted(self.ledger.written):
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
        figures["good documents"] = sum(expected.values())
        figures["entries served"] = sum(served.values())
        missing = expected - served
        extra = served - expected
        if missing:
            violations.append(
                f"{sum(missing.values())} good documents are not served: {list(missing)[:5]}"
            )
        if extra:
            violations.append(
                f"{sum(extra.values())} served entries have no document: {list(extra)[:5]}"
            )

        status = subprocess.run(
            [sys.executable, "-m", "newsdrop", "--home", str(self.home), "status", "--json"],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        problems = {p["path"]: p["reason"] for p in json.loads(status.stdout)["problems"]}
        figures["bad documents"] = len(bad)
        unrecorded = [n for n in bad if not problems.get(n)]
        if unrecorded:
            violations.append(f"{len(unrecorded)} bad documents are not problems: {unrecorded[:5]}")

        # 2. Feeds read while the run went on.
        figures["feed reads"] = self.ledger.feed_reads
        figures["feed reads that did not parse"] = len(self.ledger.feed_failures)
        violations += [f"a feed did not parse: {f}" for f in self.ledger.feed_failures[:5]]

        # 3. The digest ledger.
        violations += self.check_ledger(end_of_chaos, figures)

        # 4. Nothing in seeds/ was changed; the store is sound.
        changed = [n for n, digest in self.ledger.written.items()
                   if hashlib.sha256((self.seeds / n).read_bytes()).hexdigest() != digest]  # fmt: skip
        figures["seed files changed by newsdrop"] = len(changed)
        violations += [f"seeds/{n} was changed" for n in changed[:5]]
        engine = sa.create_engine(f"sqlite:///{self.home / 'state' / 'newsdrop.db'}")
        with engine.connect() as conn:
            integrity = conn.scalar(sa.text("pragma integrity_check"))
        engine.dispose()
        figures["store integrity"] = integrity
        if integrity != "ok":
            violations.append(f"the store's integrity check says {integrity}")

        figures["kills (SIGKILL)"] = self.ledger.kills
        figures["restart to first answer, max s"] = round(max(self.ledger.restarts), 2)
        figures["actions"] = dict(self.ledger.actions)
        assert isinstance(self.smtp.sink, ChaoticSink)
        figures["SMTP answers"] = dict(self.smtp.sink.replies)
        print(json.dumps(figures, indent=2, ensure_ascii=False))
        for violation in violations:
            print(f"VIOLATION: {violation}")
        print("chaos: " + ("FAILED" if violations else "passed"))
        self.record(figures, violations)
        return 1 if violations else 0

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
            json.dumps(runs[-10:], indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    def served_titles(self) -> Counter[str]:
        """Every entry title in the served feeds: the head, then each prev-archive page."""
        titles: Counter[str] = Counter()
        url: str | None = "atom.xml"
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            feed = feedparser.parse(self.http.get(url).content)
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
        for row in rows:
            if row.state == "failed" and not re.search(r"\b5\d\d\b", str(row.reply)):
                violations.append(f"delivery {row.id} failed without a 5xx reply: {row.reply!r}")
        missed = 0
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
            last_due = datetime.fromtimestamp(
                int(end_of_chaos.timestamp()) // INTERVAL * INTERVAL, UTC
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
        received = Counter(str(m["Message-ID"]) for m in self.smtp.sink.received)
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
    args = parser.parse_args()
    print(f"chaos: {args.minutes} minutes, seed {args.seed}")
    workdir = Path(tempfile.mkdtemp(prefix="newsdrop-chaos-"))
    chaos = Chaos(args.minutes, args.seed, workdir)
    try:
        code = chaos.run()
    finally:
        if chaos.process is not None and chaos.process.poll() is None:
            chaos.process.kill()
        chaos.smtp.stop()
        chaos.http.close()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"instance kept in {workdir}")
    sys.exit(code)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Session.login_data is deprecated")  # aiosmtpd's own
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # ... and its log of the same
    main()
