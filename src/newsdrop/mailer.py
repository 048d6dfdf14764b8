"""Deliveries: open the periods that are due in the ledger, then send what is queued.

Every digest is a row in the ledger (``deliveries``), created before anything
is sent and marked with the transport's answer after: a run that dies in
between leaves a queued row that the next run sends. The default transport
writes into a Maildir (state/outbox/) that any mail client opens, so a fresh
install works with no mail server. (SMTP is the next step of the digest issue.)
"""

from __future__ import annotations

import logging
import mailbox
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from newsdrop import digest
from newsdrop.build import Site
from newsdrop.config import Settings, instance_secret
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.store import Delivery, Period, Store
from newsdrop.subscribers import unsubscribe_token

log = logging.getLogger(__name__)


class MaildirTransport:
    """Delivers into a Maildir: written to tmp/, then renamed into new/ (by ``mailbox``)."""

    def __init__(self, path: Path) -> None:
        self.box = mailbox.Maildir(path, create=True)

    def send(self, message: EmailMessage) -> str:
        key = self.box.add(message)
        return f"stored in the Maildir as {key}"


@dataclass(slots=True)
class SendReport:
    opened: list[Period] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    skipped: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)


def due_periods(
    settings: Settings, store: Store, *, now: datetime, close_now: bool = False
) -> list[Period]:
    """The period each active subscriber has due at ``now`` that the ledger lacks. One
    period spans everything since the last one, however many were missed."""
    periods = []
    for person in store.subscribers(state=SubscriberState.ACTIVE):
        start = store.last_window_end(person.id) or person.activated or person.created
        schedule = digest.Schedule.of(person, settings.digest)
        due = now if close_now else schedule.last_due(now)
        if due <= start:
            continue  # nothing has come due since the last digest (or since they joined)
        entries = digest.wanted(person, store.first_published_in(start, due))
        empty = not entries and settings.digest.skip_empty
        periods.append(
            Period(
                subscriber_id=person.id,
                due=due,
                window_start=start,
                window_end=due,
                entry_ids=tuple(s.entry.id for s in entries),
                state="skipped" if empty else "queued",
            )
        )
    return periods


def send_digests(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    close_now: bool = False,
    dry_run: bool = False,
) -> SendReport:
    """Open due periods in the ledger, then deliver every queued digest."""
    report = SendReport()
    for period in due_periods(settings, store, now=now, close_now=close_now):
        if dry_run or store.open_period(period, now=now) is not None:
            report.opened.append(period)
            report.skipped += period.state == "skipped"
    if dry_run:
        return report
    transport = MaildirTransport(settings.state_dir / "outbox")
    secret = instance_secret(settings)
    site = Site.from_settings(settings)
    while batch := store.deliveries_to_send(now=now):
        for delivery in batch:
            if not store.claim_delivery(delivery, now=now):
                continue  # another run (cron and the service) is sending it
            person = store.subscriber_by_id(delivery.subscriber_id)
            if person is None or person.state is not SubscriberState.ACTIVE:
                store.finish_delivery(
                    delivery.id, state="cancelled", reply="no longer active", now=now
                )
                continue
            message = message_for(settings, store, site, secret, delivery, person, sent=now)
            try:
                reply = transport.send(message)
            except OSError as exc:
                reply = f"{exc.__class__.__name__}: {exc}"
                store.finish_delivery(delivery.id, state="failed", reply=reply, now=now)
                report.failed.append((delivery.id, reply))
                log.error("digest %d to %s failed: %s", delivery.id, person.email, reply)
                continue
            store.finish_delivery(delivery.id, state="sent", reply=reply, now=now)
            report.sent.append(delivery.id)
    return report


def message_for(
    settings: Settings,
    store: Store,
    site: Site,
    secret: bytes,
    delivery: Delivery,
    person: Subscriber,
    *,
    sent: datetime,
) -> EmailMessage:
    """The email of one delivery, from its frozen contents."""
    base = settings.site.base_url
    unsubscribe = f"{base}unsubscribe?token={unsubscribe_token(secret, person.id)}"
    content = digest.render(
        settings.home,
        site=site,
        base_url=base,
        subject_template=settings.digest.subject,
        subscriber=person,
        entries=store.entries_by_id(delivery.entry_ids),
        due=delivery.due,
        unsubscribe_url=unsubscribe,
    )
    return digest.compose(
        content,
        sender=settings.mail.from_,
        subscriber=person,
        delivery_id=delivery.id,
        sent=sent,
        list_id=digest.list_id(base),
        unsubscribe_url=unsubscribe,
    )
