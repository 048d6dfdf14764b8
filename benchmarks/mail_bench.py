"""Digest sending benchmark: newsdrop end to end against the rss2email way and the ceiling.

An aiosmtpd sink runs in its own process on 127.0.0.1 and answers 250 at once.
In the same run:
- ceiling: a bare aiosmtplib pool of 8 reused connections sending pre-composed messages
  (on asyncio's loop, as the issue measured it; and on uvloop with newsdrop's own message,
  like for like, since newsdrop sends on uvloop);
- the rss2email way: compose with ``email.mime``, send with smtplib, one connection a message;
- newsdrop: ``send_digests`` end to end (select, render, compose, send) for N subscribers,
  one digest each of 15 entries, with DKIM off and on, in a fresh process each, reporting
  messages/s, its own CPU per message and its peak RSS during the send (VmHWM, reset
  after the set-up; at 1,000 and at N subscribers).

Run: .venv/bin/python benchmarks/mail_bench.py [N]   (make bench runs it with 10,000)
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from report import Row, record, row

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sink(port: int, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def start_sink() -> tuple[multiprocessing.process.BaseProcess, int]:
    context = multiprocessing.get_context("spawn")
    port, ready = free_port(), context.Event()
    process = context.Process(target=_sink, args=(port, ready), daemon=True)
    process.start()
    ready.wait(30)
    return process, port


def sample_message(size: int = 20_000) -> bytes:
    body = "All the news that fits, and then some more of it here.\r\n" * (size // 56)
    return (
        "From: bench@example.org\r\nTo: reader@example.org\r\nSubject: bench\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    ).encode()


def ceiling(
    port: int, count: int, pool: int = 8, data: bytes | None = None, *, uvloop: bool = False
) -> float:
    """The bare aiosmtplib pool: on asyncio's own loop as the issue measured it, or on
    uvloop, the loop newsdrop sends on (like for like)."""
    import aiosmtplib

    data = data or sample_message()

    async def run() -> float:
        clients = [
            aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) for _ in range(pool)
        ]
        for client in clients:
            await client.connect()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in range(count):
            queue.put_nowait(number)

        async def worker(client: aiosmtplib.SMTP) -> None:
            while not queue.empty():
                number = queue.get_nowait()
                await client.sendmail("bench@example.org", [f"r{number}@example.org"], data)

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        elapsed = time.perf_counter() - started
        for client in clients:
            await client.quit()
        return count / elapsed

    if uvloop:
        import uvloop as fast

        return fast.run(run())
    return asyncio.run(run())


def rss2email_way(port: int, count: int) -> float:
    text = "All the news that fits, and then some more of it here.\n" * 170
    started = time.perf_counter()
    for number in range(count):
        message = MIMEMultipart("alternative")
        message["From"] = "bench@example.org"
        message["To"] = f"r{number}@example.org"
        message["Subject"] = "Digest"
        message.attach(MIMEText(text, "plain", "utf-8"))
        message.attach(MIMEText(f"<p>{text}</p>", "html", "utf-8"))
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("bench@example.org", [message["To"]], message.as_string())
    return count / (time.perf_counter() - started)


CHILD = r"""
import json, resource, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from newsdrop.config import load_settings
from newsdrop.ingest.run import ingest
from newsdrop.mail.deliver import send_digests
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import new_subscriber
home, count, port, dkim = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
environ = {"NEWSDROP_MAIL__TRANSPORT": "smtp", "NEWSDROP_MAIL__PORT": port,
           "NEWSDROP_MAIL__POOL_SIZE": sys.argv[5], "NEWSDROP_MAIL__RATE_PER_SECOND": "100000"}
if dkim:
    environ.update({"NEWSDROP_MAIL__DKIM_SELECTOR": "news", "NEWSDROP_MAIL__DKIM_DOMAIN": "example.org",
                    "NEWSDROP_MAIL__DKIM_KEY_FILE": "dkim.pem"})
settings = load_settings(home, environ=environ)
store = Store.open(settings.store_url)
joined = datetime(2026, 1, 1, tzinfo=UTC)
store.add_subscribers([new_subscriber(f"p{n}@example.org", name=f"Reader {n}", timezone="UTC")
                       for n in range(count)], now=joined, state=SubscriberState.ACTIVE)
ingest(settings, store, now=joined + timedelta(hours=1))
def peak_mb():  # this process's own peak: ru_maxrss of a child started with vfork and exec
    try:        # (subprocess does so) starts at its parent's peak, the harness's, not ours
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:  # count the send only, not the set-up above (writing 5 resets VmHWM, Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
except OSError:
    pass
cpu0, started = time.process_time(), time.perf_counter()
report = send_digests(settings, store, now=joined + timedelta(days=1))
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
assert len(report.sent) == count, (len(report.sent), report.failed[:3], report.paused)
from newsdrop.mail.compose import Composer  # one message as sent, for the like-for-like ceiling
first = store.delivery(report.sent[0])
person = store.subscribers_by_id([first.subscriber_id])[first.subscriber_id]
(home / "sample.eml").write_bytes(Composer(settings, store).message(first, person, sent=joined))
print(json.dumps({"rate": count / elapsed, "cpu_ms": cpu / count * 1000, "rss_mb": peak_mb()}))
"""


def newsdrop_run(
    corpus: Path, port: int, count: int, *, dkim: bool, pool: int = 8
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "news"
        subprocess.run(
            [sys.executable, "-m", "newsdrop", "init", str(home)], check=True, capture_output=True
        )
        for path in sorted((corpus / "news").rglob("*.txt"))[:15]:
            (home / "seeds" / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
        if dkim:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            (home / "dkim.pem").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(home), str(count), str(port), "1" if dkim else "0",
             str(pool)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode:
            raise SystemExit(f"newsdrop_run failed:\n{result.stderr}")
        figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        figures["sample"] = (home / "sample.eml").read_bytes()
    return figures


def rows(corpus: Path, *, count: int = 10_000, sweep: int = 2_000) -> list[Row]:
    sink, port = start_sink()
    try:
        top = ceiling(port, count)
        peer = rss2email_way(port, min(count, 3_000))
        small = newsdrop_run(corpus, port, 1_000, dkim=False)
        plain = newsdrop_run(corpus, port, count, dkim=False)
        signed = newsdrop_run(corpus, port, min(count, 3_000), dkim=True)
        alike = ceiling(port, count, data=plain["sample"], uvloop=True)  # our message, our loop
        by_pool: dict[str, dict[int, float]] = {"newsdrop": {}, "bare aiosmtplib pool": {}}
        for pool in (1, 2, 4, 8, 16):
            by_pool["newsdrop"][pool] = newsdrop_run(corpus, port, sweep, dkim=False, pool=pool)[
                "rate"
            ]
            by_pool["bare aiosmtplib pool"][pool] = ceiling(
                port, sweep, pool=pool, data=plain["sample"], uvloop=True
            )
        record("send_rate_by_pool", by_pool)
    finally:
        sink.terminate()
    rate = plain["rate"]
    return [
        row(
            f"digests sent end to end, {count:,} subscribers (DKIM off)",
            f"{rate:,.0f} msg/s",
            ">= 2x rss2email way, >= 0.7x ceiling",
            f"rss2email way {peer:,.0f}/s; ceiling (20 KB sample, asyncio loop) {top:,.0f}/s; "
            f"the bare pool with newsdrop's own message on uvloop, as newsdrop sends, "
            f"{alike:,.0f}/s",
            f"{rate / peer:.1f}x; {rate / top:.2f}x; {rate / alike:.2f}x like for like",
            rate >= 2 * peer and rate >= 0.7 * top,
        ),
        row(
            "newsdrop CPU per message (DKIM off)",
            f"{plain['cpu_ms']:.2f} ms",
            "<= 1.5 ms",
            f"with DKIM: {signed['cpu_ms']:.2f} ms, {signed['rate']:,.0f} msg/s",
            f"{plain['cpu_ms'] / 1.5:.2f}x the budget",
            plain["cpu_ms"] <= 1.5,
        ),
        row(
            "peak RSS of a send",
            f"{small['rss_mb']:.0f} MB at 1,000; {plain['rss_mb']:.0f} MB at {count:,}",
            "flat",
            "",
            f"{plain['rss_mb'] / small['rss_mb']:.2f}",
            plain["rss_mb"] <= small["rss_mb"] * 1.25,
        ),
    ]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("subscribers", nargs="?", type=int, default=10_000)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    for line in rows(args.corpus, count=args.subscribers):
        print(" | ".join(line))
