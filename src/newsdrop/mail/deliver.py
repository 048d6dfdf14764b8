"""Deliveries: open the periods that are due in the ledger, then send what is queued, with the
retry, pause and bounce rules. Every digest is a row in the ledger, created before anything
is sent; a crash sends nothing twice."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from datetime import datetime, timedelta

from newsdrop import loop
from newsdrop.config import Settings
from newsdrop.errors import (
    DeliveryError,
    MessageRefusedError,
    RecipientDeferredError,
    RecipientRejectedError,
    RenderError,
    SendingPausedError,
    StoreError,
    TemporaryDeliveryError,
)
from newsdrop.logs import without
from newsdrop.mail import relay, smtp_status
from newsdrop.mail.claims import Claims, SendReport, SentMarks
from newsdrop.mail.compose import Composer
from newsdrop.mail.confirmations import send_confirmations
from newsdrop.mail.schedule import due_period_pages
from newsdrop.mail.transports import SmtpTransport, Transport, transport_for
from newsdrop.mail.verp import envelope_sender
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.store import Act, Delivery, Store
from newsdrop.subscribers import wire_address

log = logging.getLogger(__name__)


def send_digests(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    close_now: bool = False,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    open_due: bool = True,
    instance: str | None = None,
) -> SendReport:
    """Open due periods in the ledger, then deliver every queued digest. ``stop`` (the
    service's shutdown) ends the run early: messages in flight finish, the rest wait.
    Without ``open_due`` (an instance that is not the leader) it only helps send.
    ``instance`` names the `newsdrop run` sending, whose claims others take over as soon
    as it is dead (see ``Store.claim_batch``)."""
    report = SendReport()
    for page in due_period_pages(settings, store, now=now, close_now=close_now) if open_due else ():
        for period in page if dry_run else store.open_periods(page, now=now):  # one transaction
            report.opened.append(period)
            report.skipped += period.state == "skipped"
    if not dry_run:
        transport = transport_for(settings, store=store)
        loop.run(
            deliver(
                settings, store, transport, now=now, report=report, stop=stop, instance=instance
            )
        )
        if isinstance(transport, SmtpTransport) and not report.store_error:
            relay.remember(settings, store, transport.offers_smtputf8)
    return report


async def deliver(
    settings: Settings,
    store: Store,
    transport: Transport,
    *,
    now: datetime,
    report: SendReport,
    stop: threading.Event | None = None,
    instance: str | None = None,
) -> SendReport:
    """Send every queued confirmation mail, then every queued digest (and every retry that
    is due) through one transport:
    ``pool_size`` senders take digests from claims of about CLAIM_SECONDS of work each.
    Store calls run in threads, so the event loop never blocks."""
    composer = Composer(settings, store)
    marks = SentMarks(store, now=now, group=max(1, settings.mail.pool_size // 2))
    claims = Claims(settings, store, now=now, report=report, stop=stop, instance=instance)
    streak = Streak()

    async def record(held: list[Refusal]) -> None:
        # After a store write failed, the room left is for `settle` (see StoreBase._keep_room in store/engine.py):
        # these claims are given back with the rest, to be tried again.
        for delivery, person, error in () if report.store_error else held:
            await asyncio.to_thread(
                record_failure, settings, store, delivery, person, error, now, report
            )

    async def one(delivery: Delivery, person: Subscriber | None) -> None:
        if await _held_back(store, delivery, person, report, stop, now) or person is None:
            return
        try:
            data = composer.message(delivery, person, sent=now)
        except RenderError as exc:  # the templates: every digest would fail alike
            await asyncio.to_thread(
                record_failure, settings, store, delivery, person,
                SendingPausedError(str(exc)), now, report,
            )  # fmt: skip
            return
        except Exception as exc:  # an address, say: this digest, not the run
            reply = f"the message could not be made: {exc}"
            await asyncio.to_thread(
                store.finish_delivery, delivery.id, state="failed", reply=reply, now=now
            )
            report.failed.append((delivery.id, reply))
            log.error("digest %d to subscriber %d: %s", delivery.id, person.id, reply)
            return
        try:
            # (the address passed `Composer.message`, which puts the same form in To)
            reply = await transport.send(
                sender=envelope_sender(settings, composer.secret, "digest", delivery.id),
                recipient=wire_address(person.email),
                data=data,
            )
        except DeliveryError as exc:
            await record(streak.add((delivery, person, exc)))
            return
        await record(streak.end())
        # Marked before the sender takes its next digest, not with the claim: a run
        # killed now repeats at most what was in flight (pool_size messages).
        try:
            await marks.mark(delivery.id, reply)
        except StoreError:
            unmarked.append((delivery.id, reply))
            raise
        report.sent.append(delivery.id)
        claims.done += 1

    unmarked: list[tuple[int, str]] = []  # sent, but the mark could not be committed

    async def sender_loop() -> None:
        try:
            while (item := await claims.next()) is not None:
                await one(*item)
        except StoreError as exc:  # its disk is full, say: this sender stops, the rest too
            store_failed(report, exc)

    async with transport:
        # Confirmation mails first: someone is waiting for each, and they are few.
        await send_confirmations(
            settings, store, transport, now=now, report=report, stop=stop, instance=instance,
            dkim_key=composer.dkim_key,
        )  # fmt: skip
        await asyncio.gather(*(sender_loop() for _ in range(settings.mail.pool_size)))
    try:
        await record(streak.end())  # a streak too short to pause: recorded as it came
    except StoreError as exc:
        store_failed(report, exc)
    if report.store_error:
        await asyncio.to_thread(
            settle, store, claimant=claims.claimant, unmarked=unmarked, now=now, report=report
        )
    log.debug("%d sent, marked in %d commits", len(report.sent), marks.commits)
    return report


async def _held_back(
    store: Store,
    delivery: Delivery,
    person: Subscriber | None,
    report: SendReport,
    stop: threading.Event | None,
    now: datetime,
) -> bool:
    """Whether a claimed digest is not to be sent now: given back untouched while sending
    is paused or the service stops (the next run sends it), cancelled for a subscriber no
    longer active. Recorded here, but for what `settle` gives back after a store failure."""
    stopping = stop is not None and stop.is_set()
    if report.paused or stopping:
        if not report.store_error:  # (`settle` gives every claim back in one write)
            await asyncio.to_thread(
                store.finish_delivery, delivery.id, state="queued",
                reply=report.paused or "not sent yet: the service was stopping",
                now=now, counts_as_attempt=False,
            )  # fmt: skip
        return True
    if person is None or person.state is not SubscriberState.ACTIVE:
        await asyncio.to_thread(
            store.finish_delivery, delivery.id, state="cancelled", reply="no longer active", now=now
        )  # fmt: skip
        return True
    return False


Refusal = tuple[Delivery, Subscriber, DeliveryError]


PAUSE_STREAK = 5  # different recipients in a row refused alike: the fault is not theirs


class Streak:
    """Refusals about our message or the relay with the same code (``DeliveryError.key``),
    in a row: held unrecorded while they last. When PAUSE_STREAK different recipients are
    refused alike, every digest would be, so they all go back queued, uncharged, and
    sending pauses; a streak that ends sooner is recorded as it came (the digests fail or
    are retried, nobody is bounced). Other outcomes pass straight through."""

    def __init__(self) -> None:
        self.key = ""
        self.held: list[Refusal] = []
        self.paused: SendingPausedError | None = None

    def add(self, refusal: Refusal) -> list[Refusal]:
        """The refusals to record now (with the errors to record them by)."""
        error = refusal[2]
        streaks = error.key and isinstance(error, MessageRefusedError | TemporaryDeliveryError)
        if not streaks or isinstance(error, RecipientDeferredError):
            return [*self.end(), refusal]
        if self.paused is not None and error.key == self.key:
            return [(refusal[0], refusal[1], self.paused)]  # still in flight at the pause
        ended = self.end() if error.key != self.key else []
        self.key = error.key
        self.held.append(refusal)
        recipients = len({person.id for _, person, _ in self.held})
        if recipients < PAUSE_STREAK:
            return ended
        self.paused = SendingPausedError(
            f"{recipients} different recipients in a row were refused with {error.reply!r}: "
            "a fault of our message, our account or the relay, not theirs; sending pauses "
            "(nobody is bounced, no digest is charged) and resumes when it is fixed",
            key=error.key,
        )
        held, self.held = self.held, []
        return [*ended, *((d, p, self.paused) for d, p, _ in held)]

    def end(self) -> list[Refusal]:
        """A different outcome came (or the run ended): the streak's refusals stand."""
        held, self.held = self.held, []
        if self.paused is None:
            self.key = ""
        return held


SETTLE_TRIES = 3  # after a store write failed: mark and give back, a second apart


def store_failed(report: SendReport, exc: StoreError) -> None:
    """The store could not record an outcome: sending pauses (no message goes out that
    could not be recorded), and the run says why."""
    if not report.store_error:
        report.store_error = str(exc)
        report.store_full = getattr(exc, "where", "")
        log.error("sending paused: %s", exc)
    report.paused = report.paused or str(exc)


def settle(
    store: Store,
    *,
    claimant: str,
    unmarked: list[tuple[int, str]],
    now: datetime,
    report: SendReport,
) -> None:
    """After a store write failed: record the digests sent whose marks failed, and give back
    every claim of this run, so that the next run neither sends those again nor waits
    [mail] claim_timeout_s for the others. What cannot be recorded is counted."""
    marked = not unmarked
    for attempt in range(SETTLE_TRIES):
        try:
            if not marked:  # (each mark counts an attempt: made once)
                store.finish_sent(unmarked, now=now)
                marked = True
                report.sent += [d for d, _ in unmarked]
            store.release_claims(claimant, reply=report.store_error, now=now)
        except StoreError:
            if attempt + 1 < SETTLE_TRIES:
                time.sleep(1.0)
            continue
        return
    if not marked:
        report.unrecorded = len(unmarked)
    log.error(
        "this run's claims could not be given back, and %d digests sent could not be "
        "recorded as sent; once the store can be written, they are taken again after "
        "[mail] claim_timeout_s (those %d sent again)",
        report.unrecorded, report.unrecorded,
    )  # fmt: skip


def record_failure(
    settings: Settings,
    store: Store,
    delivery: Delivery,
    person: Subscriber,
    error: DeliveryError,
    now: datetime,
    report: SendReport,
) -> None:
    """Retry later, fail, bounce, or pause: what the ledger does with a refusal."""
    if isinstance(error, SendingPausedError):
        store.finish_delivery(
            delivery.id, state="queued", reply=error.reply, now=now, counts_as_attempt=False
        )
        if not report.paused:
            report.paused = error.reply
            log.error("sending paused: %s", error.reply)
        return
    if (
        isinstance(error, TemporaryDeliveryError)
        and delivery.attempts + 1 < settings.mail.max_attempts
    ):
        backoff = settings.mail.retry_base_s * 2**delivery.attempts
        # bandit B311: this randomness spreads retries out; it protects nothing.
        wait = min(3600.0, backoff) * random.uniform(0.8, 1.2)  # nosec B311
        store.finish_delivery(
            delivery.id, state="retrying", reply=error.reply, now=now,
            next_attempt=now + timedelta(seconds=wait),
        )  # fmt: skip
        report.retrying.append((delivery.id, error.reply))
        log.warning(
            "digest %d to subscriber %d will be retried: %s",
            delivery.id, person.id, without(error.reply, person.email),
        )  # fmt: skip
        return
    theirs = isinstance(error, RecipientRejectedError | RecipientDeferredError)
    store.finish_delivery(
        delivery.id, state="failed", reply=error.reply, now=now, recipient_fault=theirs
    )
    report.failed.append((delivery.id, error.reply))
    log.error(
        "digest %d to subscriber %d failed: %s",
        delivery.id, person.id, without(error.reply, person.email),
    )  # fmt: skip
    if theirs:  # the policy returned mail follows too (store/returned.py)
        code, _, text = error.key.partition(" ")
        kind = smtp_status.verdict(int(code), text) if code.isdigit() else "soft"
        if kind != "ours":
            act = Act(person.id, delivery.id, kind, error.key[:16], error.reply)
            done = store.act_on(
                act, now=now, soft_limit=settings.bounces.soft_limit,
                half_life_days=settings.bounces.soft_half_life_days,
            )  # fmt: skip
            if "bounced" in done:
                report.bounced.append(person.email)
                log.warning("subscriber %d: %s", person.id, done)
