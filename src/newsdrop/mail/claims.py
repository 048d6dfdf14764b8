"""What a sending run did (SendReport), and the work it takes from the ledger and gives back:
claims of about half a second of sending each, and sent marks committed in small groups."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import datetime

from newsdrop.config import Settings
from newsdrop.model import Subscriber
from newsdrop.store import Delivery, Period, Store, new_claimant


@dataclass(slots=True)
class SendReport:
    opened: list[Period] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    skipped: int = 0
    retrying: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    bounced: list[str] = field(default_factory=list)
    paused: str = ""  # why sending stopped, when the server or our account is at fault
    confirmations: list[int] = field(default_factory=list)  # subscribers sent their link
    confirmations_failed: list[tuple[int, str]] = field(default_factory=list)
    store_error: str = ""  # the store could not be written (a full disk): why
    store_full: str = ""  # where the full disk is, for pages that show no paths (state/)
    unrecorded: int = 0  # sent, but neither marked nor given back (a store that failed)

    def __repr__(self) -> str:
        # Counts only: asyncio formats the result of the task it ran (``asyncio.run``
        # checks its SIGINT handler, whose repr holds that task), and a full repr of
        # 10,000 periods was a 12 MB string, most of the peak memory of a send.
        return (
            f"SendReport(opened={len(self.opened)}, sent={len(self.sent)}, "
            f"skipped={self.skipped}, retrying={len(self.retrying)}, "
            f"failed={len(self.failed)}, bounced={len(self.bounced)}, paused={self.paused!r}, "
            f"confirmations={len(self.confirmations)})"
        )


class SentMarks:
    """Marks sent digests in the ledger a few at a time: a mark waits until ``group``
    marks are pending or ``linger`` seconds have passed, then they are committed in one
    thread call and one transaction (a thread call and a commit for every message were
    a tenth of a send's CPU time).

    A sender waits until its own mark is committed and keeps its sending slot until
    then: a run killed at any moment has at most ``pool_size`` messages sent and unmarked,
    as when each was marked alone."""

    def __init__(self, store: Store, *, now: datetime, group: int, linger: float = 0.005) -> None:
        self.store = store
        self.now = now
        self.group = group
        self.linger = linger
        self.pending: list[tuple[int, str, asyncio.Future[None]]] = []
        self.lock = asyncio.Lock()  # one commit at a time
        self.timer: asyncio.TimerHandle | None = None
        self.flushes: set[asyncio.Task[None]] = set()
        self.commits = 0

    async def mark(self, delivery_id: int, reply: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self.pending.append((delivery_id, reply, done))
        if len(self.pending) >= self.group:
            self._flush_after(0.0)
        elif len(self.pending) == 1:
            self._flush_after(self.linger)
        await done

    def _flush_after(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self.timer = None
        task = asyncio.get_running_loop().create_task(self._flush())
        self.flushes.add(task)
        task.add_done_callback(self.flushes.discard)

    async def _flush(self) -> None:
        async with self.lock:
            batch, self.pending = self.pending, []
            if not batch:
                return
            if self.timer is not None:  # this commit takes the marks it was set for
                self.timer.cancel()
                self.timer = None
            self.commits += 1
            try:
                await asyncio.to_thread(
                    self.store.finish_sent, [(d, r) for d, r, _ in batch], now=self.now
                )
            except Exception as exc:  # every sender of the group sees the store's error
                for _, _, waiter in batch:
                    waiter.set_exception(exc)
            except BaseException:
                for _, _, waiter in batch:
                    waiter.cancel()
                raise
            else:
                for _, _, waiter in batch:
                    waiter.set_result(None)


CLAIM_SECONDS = 0.5  # a claim holds about this much sending: the last one ends together


class Claims:
    """Deliveries for the senders, claimed from the ledger a batch at a time when the last
    one is used up. A batch is about CLAIM_SECONDS of sending at the rate so far (from
    2 x pool_size up to 200): several instances then finish a send within about that
    of each other, and a run that dies leaves few digests claimed."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        now: datetime,
        report: SendReport,
        stop: threading.Event | None,
        instance: str | None,
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.store = store
        self.now = now
        self.report = report
        self.stop = stop
        self.ready: list[tuple[Delivery, Subscriber | None]] = []
        self.lock = asyncio.Lock()  # one claim at a time
        self.exhausted = False
        self.done = 0  # digests sent so far, for the rate
        self.claimant = new_claimant()
        self.started = asyncio.get_running_loop().time()

    def size(self) -> int:
        pool = self.settings.mail.pool_size
        elapsed = asyncio.get_running_loop().time() - self.started
        if not self.done or elapsed <= 0:
            return 2 * pool
        return max(2 * pool, min(200, round(self.done / elapsed * CLAIM_SECONDS)))

    async def next(self) -> tuple[Delivery, Subscriber | None] | None:
        """The next digest to send, or None when the ledger has no more for this run (a
        pause or a stop claims no more; digests already claimed are still handed out, so
        that the sender gives them back)."""
        async with self.lock:
            halted = self.report.paused or (self.stop is not None and self.stop.is_set())
            if not self.ready and not self.exhausted and not halted:
                batch = await asyncio.to_thread(
                    self.store.claim_batch, now=self.now, limit=self.size(),
                    claim_timeout=self.settings.mail.claim_timeout_s, claimant=self.claimant,
                    instance=self.instance, lease_seconds=self.settings.cluster.lease_seconds,
                )  # fmt: skip
                people = await asyncio.to_thread(
                    self.store.subscribers_by_id, sorted({d.subscriber_id for d in batch})
                )
                self.ready = [(d, people.get(d.subscriber_id)) for d in reversed(batch)]
                self.exhausted = not batch
            return self.ready.pop() if self.ready else None
