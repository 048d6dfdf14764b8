"""Several `newsdrop run` instances on one store (issue #7): leases, disjoint claims, and
three real instances on one PostgreSQL server that share seeds/ and feeds/, lose their
leader in the middle of a send, and still deliver every digest once."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from smtpd import PASSWORD, Sink, SmtpServer
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsdrop.cli.main import cli
from newsdrop.config import load_settings
from newsdrop.ingest.run import ingest
from newsdrop.model import SubscriberState
from newsdrop.store import Store, new_claimant
from newsdrop.store.schema import deliveries
from newsdrop.subscribers import new_subscriber

import pg
from appserver import AppServer
from live import RunningService, until

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_lease_has_one_holder_until_it_runs_out(store: Store) -> None:
    assert store.take_lease("leader", "a", now=T, seconds=10)
    assert not store.take_lease("leader", "b", now=T + timedelta(seconds=5), seconds=10)
    assert store.take_lease("leader", "a", now=T + timedelta(seconds=8), seconds=10)  # renewed
    assert not store.take_lease("leader", "b", now=T + timedelta(seconds=17), seconds=10)
    assert store.take_lease("leader", "b", now=T + timedelta(seconds=19), seconds=10)  # expired
    assert store.lease("leader") == ("b", T + timedelta(seconds=19), T + timedelta(seconds=29))
    store.release_lease("leader", "a")  # not a's to release any more
    assert store.lease("leader") is not None
    store.release_lease("leader", "b")
    assert store.take_lease("leader", "c", now=T + timedelta(seconds=20), seconds=10)


def test_concurrent_claims_take_disjoint_batches(store: Store) -> None:
    _queue(store, 600)
    taken: list[list[int]] = [[], [], []]

    def claimer(mine: list[int]) -> None:
        while batch := store.claim_batch(now=T, limit=50):
            mine.extend(d.id for d in batch)

    threads = [threading.Thread(target=claimer, args=(m,)) for m in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for mine in taken for i in mine]
    assert len(everything) == len(set(everything)) == 600  # each claimed once, none missed


@pytest.mark.parametrize("kind", ["deliveries", "confirmations"])  # the tables
def test_a_claim_that_loses_its_rows_to_another_run_reads_again(
    home: Path, store: Store, kind: str
) -> None:
    """Two `digest send` runs at once: the other run claims the very rows this claim has
    just read, before this one writes. The claim takes the next rows (before, on SQLite it
    came back empty, and the run ended as if the queue were: 0 sent, mail left queued)."""
    if kind == "deliveries":
        _queue(store, 4)
    else:
        people, _ = store.add_subscribers(
            [new_subscriber(f"p{n}@example.org", timezone="UTC") for n in range(4)],
            now=T,
            state=SubscriberState.PENDING,
        )
        for person in people:
            store.queue_confirmation(person.id, now=T)
    other = Store.open(load_settings(home).store_url)

    def claim(on: Store) -> list[int]:
        if kind == "deliveries":
            return [d.id for d in on.claim_batch(now=T, limit=2)]
        return [
            c.subscriber_id for c in on.claim_confirmations(now=T, claimant=new_claimant(), limit=2)
        ]

    raced: list[list[int]] = []

    def race(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(f"UPDATE {kind}") and not raced:
            raced.append(claim(other))

    sa.event.listen(store.engine, "before_cursor_execute", race)
    try:
        mine = claim(store)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", race)
        other.close()
    assert len(raced[0]) == 2 and len(mine) == 2 and set(mine).isdisjoint(raced[0])


def test_a_limit_in_the_store_admits_exactly_its_amount_among_racers(store: Store) -> None:
    """20 per minute, 200 requests from 8 threads at once: 20 counted, whoever asks; the
    window runs out and the key starts again; another key is another count."""
    now = time.time()
    admitted: list[bool] = []

    def ask(_: int) -> None:
        admitted.append(store.take_hit("subscribe: all", amount=20, period=60, now=now))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(200)))
    assert admitted.count(True) == 20 and len(admitted) == 200
    assert store.take_hit("subscribe: client 203.0.113.7", amount=20, period=60, now=now)
    assert store.take_hit("subscribe: all", amount=20, period=60, now=now + 61)  # a new window


def test_the_subscribe_limits_hold_across_instances(home: Path) -> None:
    """Two instances serving one store (as behind a load balancer): one client's third
    request in a minute is refused by the second instance, which saw none of the first
    two (before, each process counted alone: twice the limit)."""
    env = {"NEWSDROP_SERVER__SUBSCRIBE_LIMIT_PER_CLIENT": "2/minute"}
    with AppServer(home, env) as one, AppServer(home, env) as two:
        codes = [
            server.http.post("/subscribe", data={"email": f"p{n}@example.org"}).status_code
            for n, server in enumerate((one, two, one, two))
        ]
    assert codes == [200, 200, 429, 429]


def test_a_run_never_takes_back_its_own_claims_but_takes_a_dead_runs(store: Store) -> None:
    _queue(store, 4)
    slow, other = new_claimant(), new_claimant()
    first = store.claim_batch(now=T, limit=2, claimant=slow)
    # Its two digests are still in flight after claim_timeout: the run that claimed them
    # does not send them again, but another run treats them as a dead run's.
    time.sleep(0.05)
    again = store.claim_batch(now=T, claim_timeout=0.01, limit=10, claimant=slow)
    assert {d.id for d in again}.isdisjoint(d.id for d in first) and len(again) == 2
    time.sleep(0.05)
    taken_over = store.claim_batch(now=T, claim_timeout=0.01, limit=10, claimant=other)
    assert {d.id for d in taken_over} == {d.id for d in first + again}


def test_a_dead_or_restarted_instances_claims_move_on_within_the_lease(store: Store) -> None:
    _queue(store, 3)
    started = datetime.now(UTC) - timedelta(minutes=1)
    for name in ("a", "b"):
        store.heartbeat(name, pid=1, host="h", url="", started=started, now=datetime.now(UTC))
    (by_a,) = store.claim_batch(now=T, limit=1, instance="a", lease_seconds=15)
    (by_b,) = store.claim_batch(now=T, limit=1, instance="b", lease_seconds=15)
    # Both alive: their digests in flight are theirs, whatever claim_timeout says.
    (third,) = store.claim_batch(now=T, limit=10, instance="c", lease_seconds=15)
    assert third.id not in (by_a.id, by_b.id)
    time.sleep(0.01)
    # a starts again (its claims were its previous life's); b is not seen for the lease.
    store.heartbeat("a", pid=2, host="h", url="", started=datetime.now(UTC), now=datetime.now(UTC))
    store.heartbeat("b", pid=1, host="h", url="", started=started, now=started)
    taken = store.claim_batch(now=T, limit=10, instance="c", lease_seconds=15)
    assert {d.id for d in taken} == {by_a.id, by_b.id}


def test_a_dead_instances_confirmation_mails_move_on_within_the_lease(store: Store) -> None:
    """As its digests: a confirmation mail claimed by an instance that died goes out from
    another one within the lease, not [mail] claim_timeout_s (10 minutes) later."""
    people, _ = store.add_subscribers(
        [new_subscriber(f"p{n}@example.org", timezone="UTC") for n in range(2)],
        now=T,
        state=SubscriberState.PENDING,
    )
    for person in people:
        assert store.queue_confirmation(person.id, now=T)
    started = datetime.now(UTC) - timedelta(minutes=1)
    for name in ("a", "b"):
        store.heartbeat(name, pid=1, host="h", url="", started=started, now=datetime.now(UTC))
    (by_a,) = store.claim_confirmations(now=T, claimant=new_claimant(), limit=1, instance="a")
    (by_b,) = store.claim_confirmations(now=T, claimant=new_claimant(), limit=1, instance="b")
    mine = new_claimant()
    assert store.claim_confirmations(now=T, claimant=mine, instance="c") == []  # a, b alive
    store.heartbeat("b", pid=1, host="h", url="", started=started, now=started)  # b is gone
    taken = store.claim_confirmations(now=T, claimant=mine, instance="c", lease_seconds=15)
    assert [c.subscriber_id for c in taken] == [by_b.subscriber_id]
    assert by_a.subscriber_id != by_b.subscriber_id


def test_one_shot_ingests_on_two_machines_at_once_make_each_entry_once(home: Path) -> None:
    """`newsdrop ingest` from cron on two machines sharing seeds/ and the store: both read
    the same new files, and each document still becomes one entry, with no error."""
    for n in range(300):
        (home / "seeds" / f"doc-{n}.md").write_text(f"# Story {n}\n\nBody of story {n}.\n")
    settings = load_settings(home)
    stores = [Store.open(settings.store_url) for _ in range(2)]
    reports: list[Any] = []
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        try:
            reports.append(ingest(settings, store, now=datetime.now(UTC)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for store in stores:
        store.close()
    assert not errors, errors
    assert not any(report.problems for report in reports), [r.problems for r in reports]
    # One read them all; the other waited for it, then found every file done.
    assert sorted((len(r.added), r.unchanged) for r in reports) == [(0, 300), (300, 0)]
    store = Store.open(settings.store_url)
    with store.begin() as conn:
        assert conn.scalar(sa.text("select count(*) from entries")) == 300
        assert conn.scalar(sa.text("select count(distinct seq) from entries")) == 300
    store.close()


def test_an_exclusive_lock_has_one_holder_across_connections(home: Path) -> None:
    """What keeps ingests (and builds) one at a time: held by one Store, it makes a second
    Store (another process or machine, as far as the database can tell) wait."""
    url = load_settings(home).store_url
    first, second = Store.open(url), Store.open(url)
    events: list[str] = []
    entered = threading.Event()

    def hold() -> None:
        with first.exclusive("ingest"):
            events.append("first in")
            entered.set()
            time.sleep(0.5)
            events.append("first out")

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(10)
    with second.exclusive("ingest"):
        events.append("second in")
    thread.join()
    first.close()
    second.close()
    assert events == ["first in", "first out", "second in"]


def test_instances_gone_for_a_day_are_forgotten(store: Store) -> None:
    now = datetime.now(UTC)
    for name, seen in (("old", now - timedelta(days=2)), ("recent", now - timedelta(hours=1))):
        store.heartbeat(name, pid=1, host="h", url="", started=seen, now=seen)
    store.instance_stopped("recent", now=now - timedelta(hours=1))
    store.heartbeat("web-1", pid=2, host="h", url="", started=now, now=now)
    assert [i["name"] for i in store.instances()] == ["recent", "web-1"]


def _queue(store: Store, count: int) -> None:
    with store.begin() as conn:
        conn.execute(deliveries.insert(), [
            {"subscriber_id": n, "due": T, "window_start": T, "window_end": T, "seq_start": 0,
             "seq_end": 1, "state": "queued", "entry_ids": "[]", "attempts": 0, "reply": "",
             "created": T, "changed": T}
            for n in range(count)
        ])  # fmt: skip


class CountingSink(Sink):
    """Keeps only who got which message (5,000 parsed digests would be 100 MB)."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[str, str]] = []
        self.hold = 0.004

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.hold)
        found = re.search(rb"^Message-ID: (<[^>]+>)", envelope.content, re.M)
        self.got.append((envelope.rcpt_tos[0], found.group(1).decode() if found else ""))
        return "250 2.0.0 queued"


def test_three_instances_share_the_work_and_survive_losing_their_leader(
    tmp_path: Path, postgres: pg.Server
) -> None:
    postgres_url = postgres.database()
    shared = tmp_path / "shared"
    (shared / "seeds").mkdir(parents=True)
    (shared / "feeds").mkdir()
    smtp = SmtpServer(tmp_path)
    smtp.sink = CountingSink()
    smtp.start()
    common = {
        **smtp.env(),
        "NEWSDROP_SMTP_PASSWORD": PASSWORD,
        "NEWSDROP_MAIL__POOL_SIZE": "4",
        "NEWSDROP_MAIL__RATE_PER_SECOND": "10000",
        "NEWSDROP_STORE__URL": postgres_url,
        "NEWSDROP_PATHS__SEEDS": str(shared / "seeds"),
        "NEWSDROP_PATHS__FEEDS": str(shared / "feeds"),
        "NEWSDROP_SECRET": "one-secret-for-every-instance",
        "NEWSDROP_CLUSTER__LEASE_SECONDS": "3",
        "NEWSDROP_DIGEST__INTERVAL_SECONDS": "15",
    }
    nodes: list[RunningService] = []
    try:
        for name in ("i1", "i2", "i3"):
            home = tmp_path / name
            assert CliRunner().invoke(cli, ["init", str(home)]).exit_code == 0
            nodes.append(
                RunningService(home, env={**common, "NEWSDROP_CLUSTER__INSTANCE": name}).start()
            )
        settings = load_settings(nodes[0].home, environ=common)
        store = Store.open(settings.store_url)

        # 1,000 files dropped at once into the shared seeds/: 1,000 entries, each once.
        batch = tmp_path / "batch"
        batch.mkdir()
        for n in range(1000):
            (batch / f"doc-{n}.md").write_text(f"---\ntitle: Shared story {n}\n---\nBody {n}.\n")
        os.replace(batch, shared / "seeds" / "batch")
        until(lambda: store.counts(now=datetime.now(UTC))["published"] == 1000, timeout=60,
              what="1,000 entries")  # fmt: skip
        with store.begin() as conn:
            assert conn.scalar(sa.text("select count(*) from entries")) == 1000

        # 5,000 subscribers, then something new for their first digest.
        people = [new_subscriber(f"r{n}@example.org", timezone="UTC") for n in range(5000)]
        store.add_subscribers(people, now=datetime.now(UTC), state=SubscriberState.ACTIVE)
        (shared / "seeds" / "news.md").write_text("---\ntitle: For the digest\n---\nNew.\n")
        until(lambda: store.counts(now=datetime.now(UTC))["published"] == 1001, timeout=20,
              what="the new entry")  # fmt: skip

        # The send starts at the next period; kill the leader in the middle of it.
        sink = smtp.sink
        assert isinstance(sink, CountingSink)
        until(lambda: len(sink.got) >= 1500, timeout=60, what="the send to be under way")
        lease = store.lease("leader")
        assert lease is not None
        leader = next(n for n in nodes if n.env["NEWSDROP_CLUSTER__INSTANCE"] == lease[0])
        assert leader.process is not None
        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait()
        killed_at = len(sink.got)
        assert killed_at < 5000, "the send ended before the kill: make the sink slower"

        def delivered() -> bool:
            return len({to for to, _ in sink.got}) == 5000

        # The dead leader's claimed digests move on once it is unseen for lease_seconds,
        # not after [mail] claim_timeout_s (600 s by default, as here).
        until(delivered, timeout=90, what="every subscriber's digest")
        time.sleep(1)
        counts = Counter(to for to, _ in sink.got)
        duplicates = sum(c - 1 for c in counts.values())
        assert duplicates <= 4, duplicates  # at most the leader's pool in flight at the kill
        new_lease = store.lease("leader")
        assert new_lease is not None and new_lease[0] != lease[0]  # the leadership moved on
        by_state = store.delivery_counts()
        assert by_state.get("sent") == 5000 and not by_state.get("sending"), by_state
        store.close()
    finally:
        for node in nodes:
            node.close()
        smtp.stop()
