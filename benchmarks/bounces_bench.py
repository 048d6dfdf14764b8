"""Returned mail (issue #16), each figure beside its peer in the same run:

- 10,000 bounce and complaint messages (a third each Postfix's unknown user, Gmail's full
  mailbox and an ARF complaint, to 1,000 subscribers' bounce addresses) sent over 8
  connections to `newsdrop run`'s listener on [bounces] listen: messages/s until every
  one is kept (answered 250) and until every one is acted on, and the service's peak
  memory; beside aiosmtpd's own sink (a handler that keeps nothing) taking the same
  messages from the same client;
- 200 messages through `newsdrop bounces receive`, one process each as Postfix's pipe
  runs it: the time per message, beside `newsdrop --help` (the interpreter, the command
  line, nothing done).

Run alone: .venv/bin/python benchmarks/bounces_bench.py [MESSAGES]
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib

from report import Row, row

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "data" / "returned"
DOMAIN = "bounces.example.org"
KINDS = ("postfix-unknown-user.eml", "gmail-mailbox-full.eml", "arf-abuse.eml")
PEOPLE = 1_000
CONNECTIONS = 8

SINK = r"""
import asyncio, sys
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 taken"
controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def instance(tmp: Path) -> tuple[Path, dict[str, str], list[tuple[str, bytes]]]:
    """An instance with a bounce domain and subscribers; its environment, and the
    messages: (envelope recipient, bytes)."""
    from newsdrop.config import instance_secret, load_settings
    from newsdrop.mail.verp import bounce_address
    from newsdrop.model import SubscriberState
    from newsdrop.store import Store
    from newsdrop.subscribers import new_subscriber

    home = tmp / "news"
    subprocess.run(
        [sys.executable, "-m", "newsdrop", "init", str(home)], check=True, capture_output=True
    )
    env = {**os.environ, "NEWSDROP_BOUNCES__DOMAIN": DOMAIN}
    settings = load_settings(home, environ=env)
    store = Store.open(settings.store_url)
    try:
        added, _ = store.add_subscribers(
            [new_subscriber(f"p{n}@example.com", timezone="UTC") for n in range(PEOPLE)],
            now=datetime.now(UTC),
            state=SubscriberState.ACTIVE,
        )
    finally:
        store.close()
    secret = instance_secret(settings)
    texts = {kind: (SAMPLES / kind).read_text() for kind in KINDS}
    return (
        home,
        env,
        [
            (
                verp := bounce_address(secret, DOMAIN, "welcome", person.id),
                (
                    f"X-Copy: {n}\n"
                    + texts[KINDS[n % 3]].replace("{verp}", verp).replace("{rcpt}", person.email)
                )
                .replace("\n", "\r\n")
                .encode(),
            )
            for n in range(PEOPLE * 10)
            for person in [added[n % PEOPLE]]
        ],
    )


async def _send(port: int, messages: list[tuple[str, bytes]]) -> None:
    async def one_connection(share: list[tuple[str, bytes]]) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as client:
            for recipient, data in share:
                await client.sendmail("", [recipient], data)

    await asyncio.gather(*(one_connection(messages[k::CONNECTIONS]) for k in range(CONNECTIONS)))


def send(port: int, messages: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    asyncio.run(_send(port, messages))
    return time.perf_counter() - started


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError("the server stopped before it listened")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after 30 s")


def listener(count: int) -> dict[str, float]:
    from newsdrop.config import load_settings
    from newsdrop.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        home, env, messages = instance(Path(tmp))
        messages = messages[:count]
        port = free_port()
        env |= {
            "NEWSDROP_BOUNCES__LISTEN": f"127.0.0.1:{port}",
            "NEWSDROP_BOUNCES__LIMIT_PER_CLIENT": "1000000/minute",
            "NEWSDROP_SERVER__PORT": str(free_port()),
        }
        service = subprocess.Popen(
            [sys.executable, "-m", "newsdrop", "--home", str(home), "run"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_port(port, service)
            started = time.perf_counter()
            kept = send(port, messages)
            store = Store.open(load_settings(home, environ=env).store_url)
            try:
                for _ in range(6000):  # at most 10 minutes
                    if not store.unhandled_returns(limit=1):
                        break
                    time.sleep(0.1)
                acted = time.perf_counter() - started
            finally:
                store.close()
            status = Path(f"/proc/{service.pid}/status").read_text()
            peak = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=30)
    return {"kept": count / kept, "acted": count / acted, "peak_mb": peak / 1024}


def sink(count: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        _, _, messages = instance(Path(tmp))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        wait_port(port, process)
        return count / send(port, messages[:count])
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def receive_each(count: int) -> tuple[float, float]:
    """Seconds per `bounces receive` process, and per `newsdrop --help`."""
    with tempfile.TemporaryDirectory() as tmp:
        home, env, messages = instance(Path(tmp))
        command = [sys.executable, "-m", "newsdrop", "--home", str(home)]
        started = time.perf_counter()
        for recipient, data in messages[:count]:
            subprocess.run(
                [*command, "bounces", "receive", "--to", recipient],
                input=data, env=env, check=True, capture_output=True,
            )  # fmt: skip
        each = (time.perf_counter() - started) / count
        started = time.perf_counter()
        for _ in range(count):
            subprocess.run([*command, "--help"], env=env, check=True, capture_output=True)
        help_each = (time.perf_counter() - started) / count
    return each, help_each


def rows(count: int = 10_000) -> list[Row]:
    taken = sink(count)
    ours = listener(count)
    ratio = ours["kept"] / taken
    each, help_each = receive_each(200)
    return [
        row(
            f"{count:,} bounces and complaints through the listener ({CONNECTIONS} connections)",
            f"{ours['kept']:,.0f} msg/s kept, {ours['acted']:,.0f} msg/s acted on; "
            f"peak RSS {ours['peak_mb']:.0f} MB",
            ">= 0.15x aiosmtpd's sink, kept",
            f"aiosmtpd's own sink, the same messages: {taken:,.0f} msg/s",
            f"{ratio:.2f}x",
            ratio >= 0.15,
        ),
        row(
            "200 returned messages through `newsdrop bounces receive`, one process each",
            f"{each * 1000:.0f} ms a message",
            "<= 2x `newsdrop --help`",
            f"`newsdrop --help`: {help_each * 1000:.0f} ms",
            f"{each / help_each:.2f}x",
            each <= 2 * help_each,
        ),
    ]


if __name__ == "__main__":
    for line in rows(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000):
        print(" | ".join(line))
