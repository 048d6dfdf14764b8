"""Where a digest send's CPU goes, stage by stage (not part of `make bench`; a tool for
work on the CPU-per-message target of benchmarks/mail_bench.py).

Each stage runs alone over N subscribers, one digest each of 15 entries, against the
same aiosmtpd sink as mail_bench, and reports this process's CPU (user + system) per
message. The stages' sum falls short of send_digests end to end (also reported): the
rest is the interleaving (thread hops for store calls, tasks, caches).

Run: .venv/bin/python benchmarks/mail_breakdown.py [N]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mail_bench
from newsdrop.config import Settings
from newsdrop.store import Store

ROOT = Path(__file__).resolve().parents[1]


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def instance(port: int, count: int, corpus: Path) -> tuple[Settings, Store]:
    from newsdrop.config import load_settings
    from newsdrop.ingest.run import ingest
    from newsdrop.model import SubscriberState
    from newsdrop.subscribers import new_subscriber

    home = Path(tempfile.mkdtemp()) / "news"
    subprocess.run(
        [sys.executable, "-m", "newsdrop", "init", str(home)], check=True, capture_output=True
    )
    for path in sorted((corpus / "news").rglob("*.txt"))[:15]:
        (home / "seeds" / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    settings = load_settings(home, environ={
        "NEWSDROP_MAIL__TRANSPORT": "smtp", "NEWSDROP_MAIL__PORT": str(port),
        "NEWSDROP_MAIL__POOL_SIZE": "8", "NEWSDROP_MAIL__RATE_PER_SECOND": "100000",
    })  # fmt: skip
    store = Store.open(settings.store_url)
    joined = datetime(2026, 1, 1, tzinfo=UTC)
    people = [new_subscriber(f"p{n}@example.org", name=f"Reader {n}", timezone="UTC")
              for n in range(count)]  # fmt: skip
    store.add_subscribers(people, now=joined, state=SubscriberState.ACTIVE)
    ingest(settings, store, now=joined + timedelta(hours=1))
    return settings, store


def main(count: int, corpus: Path) -> None:
    from newsdrop import loop
    from newsdrop.mail.compose import Composer
    from newsdrop.mail.deliver import send_digests
    from newsdrop.mail.schedule import due_period_pages
    from newsdrop.mail.transports import SmtpTransport

    sink, port = mail_bench.start_sink()
    now = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        settings, store = instance(port, count, corpus)
        stages: dict[str, float] = {}
        start = cpu()
        for page in due_period_pages(settings, store, now=now):
            store.open_periods(page, now=now)
        stages["open the periods"] = cpu() - start
        start, batch = cpu(), []
        while claimed := store.claim_batch(now=now, limit=200):
            batch += claimed
            store.subscribers_by_id(sorted({d.subscriber_id for d in claimed}))
        stages["claim, with the subscribers"] = cpu() - start
        people = store.subscribers_by_id(sorted({d.subscriber_id for d in batch}))
        composer = Composer(settings, store)
        start = cpu()
        messages = [composer.message(d, people[d.subscriber_id], sent=now) for d in batch]
        stages["render and compose"] = cpu() - start

        async def send_all() -> None:
            transport = SmtpTransport(settings.mail, password=None)
            async with transport:
                slots = asyncio.Semaphore(8)

                async def one(data: bytes, to: str) -> None:
                    async with slots:
                        await transport.send(sender="news@example.org", recipient=to, data=data)

                await asyncio.gather(*(one(m, f"p{n}@example.org") for n, m in enumerate(messages)))

        start = cpu()
        loop.run(send_all())
        stages["SMTP (8 reused connections)"] = cpu() - start
        start = cpu()
        for n in range(0, len(batch), 4):
            store.finish_sent([(d.id, "250 OK") for d in batch[n : n + 4]], now=now)
        stages["mark sent, 4 a transaction"] = cpu() - start
        store.close()

        settings, store = instance(port, count, corpus)
        start = cpu()
        send_digests(settings, store, now=now)
        end_to_end = cpu() - start
    finally:
        sink.terminate()
    for stage, seconds in stages.items():
        print(f"{stage:32} {seconds / count * 1000:.3f} ms/message")
    print(f"{'sum of the stages':32} {sum(stages.values()) / count * 1000:.3f} ms/message")
    print(f"{'send_digests end to end':32} {end_to_end / count * 1000:.3f} ms/message")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000, ROOT.parent / "shared" / "corpus")
