"""Scale-out benchmark (issue #7): digest send throughput with 1, 2 and 3 `newsdrop run`
instances on one PostgreSQL store, against one SMTP sink (its own process) that holds
each message 50 ms before answering, as a real relay does, so that the sink's CPU is not
the limit; pool_size 4 per instance. Beside it, one instance on SQLite.

Throughput is counted at the sink, from its first message to its last.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import Row, record, row

HOLD = 0.05
POOL = 4


def _sink(port: int, log: str, ready: Any) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Hold:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(HOLD)
            out.write(f"{time.time()} {envelope.rcpt_tos[0]}\n")  # a line: no blocking worth naming
            out.flush()
            return "250 2.0.0 queued"

    out = open(log, "a")  # noqa: SIM115  (open for the life of this process)
    controller = Controller(Hold(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def postgres_server() -> Any:
    """$NEWSDROP_TEST_POSTGRES, or a throwaway server with fsync on (tests/pg.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import pg

    return pg.Server(durable=True)


def throughput(instances: int, store_url: str, count: int, tmp: Path) -> float:
    from datetime import UTC, datetime

    from newsdrop.config import load_settings
    from newsdrop.model import SubscriberState
    from newsdrop.store import Store
    from newsdrop.subscribers import new_subscriber

    run = tmp / f"run-{instances}-{abs(hash(store_url)) % 10_000}"
    (run / "seeds").mkdir(parents=True)
    (run / "feeds").mkdir()
    port, log = free_port(), run / "sink.log"
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=_sink, args=(port, str(log), ready), daemon=True)
    sink.start()
    ready.wait(30)
    env = {
        **os.environ,
        "NEWSDROP_STORE__URL": store_url,
        "NEWSDROP_PATHS__SEEDS": str(run / "seeds"),
        "NEWSDROP_PATHS__FEEDS": str(run / "feeds"),
        "NEWSDROP_SECRET": "bench",
        "NEWSDROP_MAIL__TRANSPORT": "smtp",
        "NEWSDROP_MAIL__PORT": str(port),
        "NEWSDROP_MAIL__POOL_SIZE": str(POOL),
        "NEWSDROP_MAIL__RATE_PER_SECOND": "100000",
        "NEWSDROP_DIGEST__INTERVAL_SECONDS": "10",
        "NEWSDROP_CLUSTER__LEASE_SECONDS": "5",
    }
    processes = []
    try:
        homes = []
        for n in range(instances):
            home = run / f"i{n}"
            subprocess.run(
                [sys.executable, "-m", "newsdrop", "init", str(home)],
                check=True,
                capture_output=True,
            )
            homes.append(home)
        store = Store.open(load_settings(homes[0], environ=env).store_url)
        people = [new_subscriber(f"r{n}@example.org", timezone="UTC") for n in range(count)]
        store.add_subscribers(people, now=datetime.now(UTC), state=SubscriberState.ACTIVE)
        for n, home in enumerate(homes):
            node_env = {
                **env,
                "NEWSDROP_CLUSTER__INSTANCE": f"i{n}",
                "NEWSDROP_SERVER__PORT": str(free_port()),
            }
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "newsdrop",
                        "--home",
                        str(home),
                        "run",
                        "--log-format",
                        "json",
                    ],
                    env=node_env,
                    stdout=subprocess.DEVNULL,
                    stderr=(home / "log").open("wb"),
                )
            )
        (run / "seeds" / "news.md").write_text("---\ntitle: Bench\n---\nNew.\n")
        wait_for(lambda: store.counts(now=datetime.now(UTC))["published"] == 1, 60, "the entry")

        def lines() -> list[str]:
            return log.read_text().splitlines() if log.exists() else []

        try:
            wait_for(lambda: len(lines()) >= count, 600, f"{count} digests at the sink")
        except SystemExit as exc:  # say what the instances said: the folder goes with us
            tails = [
                f"--- {home.name} (exit {process.poll()}):\n"
                + "\n".join((home / "log").read_text(errors="replace").splitlines()[-15:])
                for home, process in zip(homes, processes, strict=True)
            ]
            raise SystemExit(
                f"{exc} ({len(lines())} arrived, {instances} instance(s) on {store_url.split(':')[0]})\n"
                + "\n".join(tails)
            ) from None
        times = sorted(float(line.split()[0]) for line in lines())
        store.close()
        return (len(times) - 1) / (times[-1] - times[0])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        sink.terminate()


def rows(corpus: Path, *, count: int = 5_000) -> list[Row]:
    try:
        server = postgres_server()
    except LookupError as exc:  # no PostgreSQL here: say so, and the run is not "met"
        return [row("digests/s with 1, 2, 3 instances on PostgreSQL", "not run", "", str(exc),
                    "", False)]  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            rates = {n: throughput(n, server.database(), count, tmp) for n in (1, 2, 3)}
            sqlite = throughput(1, f"sqlite:///{tmp / 'one.db'}", count, tmp)
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        server.stop()
    record("send_rate_by_instances", rates)
    two, three = rates[2] / rates[1], rates[3] / rates[1]
    ideal = POOL / HOLD
    return [
        row(
            f"digests/s with 1, 2, 3 instances on PostgreSQL ({count:,} subscribers, sink holds 50 ms)",
            f"{rates[1]:.0f}, {rates[2]:.0f}, {rates[3]:.0f} msg/s",
            "2 >= 1.8x one, 3 >= 2.5x one",
            f"one instance's ideal, pool {POOL} / 50 ms: {ideal:.0f} msg/s",
            f"{two:.2f}x, {three:.2f}x",
            two >= 1.8 and three >= 2.5,
        ),
        row(
            "one instance, PostgreSQL against SQLite",
            f"{rates[1]:.0f} msg/s on PostgreSQL",
            "n/a",
            f"SQLite: {sqlite:.0f} msg/s",
            f"{rates[1] / sqlite:.2f}x",
            True,
        ),
    ]


if __name__ == "__main__":
    for line in rows(Path(__file__).resolve().parents[2] / "shared" / "corpus"):
        print(" | ".join(line))
