"""A subscriber's own mails, the confirmation (double opt-in) and the welcome after it:
queued in the store, sent on the digests' path.

A subscribe request (or a confirmation, for the welcome) queues one row
(``Store.queue_confirmation``); every sending run
(the service's digest job, ``newsdrop digest send``) sends the queued ones first,
through the digests' transport and with their rules: a temporary refusal is retried
with backoff up to ``[mail] max_attempts``, a fault every message would meet pauses
sending without charging an attempt, a permanent refusal fails the mail. The link is
made when the message is composed, so its ``[server] confirm_hours`` count from the
moment it is sent, not from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import TYPE_CHECKING

from newsdrop import templates
from newsdrop.config import Settings, instance_secret
from newsdrop.errors import (
    DeliveryError,
    RenderError,
    SendingPausedError,
    StoreError,
    TemporaryDeliveryError,
    UsageError,
)
from newsdrop.i18n import N_, translations
from newsdrop.logs import without
from newsdrop.mail.compose import in_their_language, inliner, list_id
from newsdrop.mail.dkim import signed
from newsdrop.mail.identity import identity_of, list_unsubscribe
from newsdrop.mail.schedule import wanted
from newsdrop.mail.verp import envelope_sender
from newsdrop.model import Site, StoredEntry, Subscriber
from newsdrop.publish.feeds import feed_item
from newsdrop.store import Confirmation, Store, new_claimant
from newsdrop.subscribers import (
    clean_name,
    confirm_token,
    describe,
    expiring_token,
    manage_url,
    unsubscribe_token,
    wire_address,
)

if TYPE_CHECKING:
    from newsdrop.mail.claims import SendReport
    from newsdrop.mail.transports import Transport

log = logging.getLogger(__name__)

BATCH = 50  # claimed at a time: few are ever queued, and each is sent at once


def confirmation_message(
    settings: Settings,
    site: Site,
    *,
    person: Subscriber,
    email: str,
    url: str,
    now: datetime,
    secret: bytes,
) -> bytes:
    """The double opt-in message as it travels (CRLF line ends): what they chose, the link
    to confirm, and their manage link to change it first; in their language."""
    site = in_their_language(site, person)
    body = templates.render(
        settings.home,
        "confirm.txt.j2",
        site=site,
        subscriber_name=clean_name(person.name),
        choices=describe(person, settings, translations(site.language, settings.home).gettext),
        confirm_url=url,
        manage_url=manage_url(settings.site.base_url, secret, person),
        hours=settings.server.confirm_hours,
    )
    _ = translations(site.language, settings.home).gettext
    subject = _(N_("Confirm your subscription to {title}")).format(title=site.title)
    message = _message(settings, email=email, subject=subject, kind="confirm")
    message["Date"] = format_datetime(now)
    message.set_content(body)
    return _wire(message)


WELCOME_ENTRIES = 5  # the latest of their topics, so that the first mail is not empty


def welcome_message(
    settings: Settings, store: Store, site: Site, *, person: Subscriber, email: str,
    now: datetime, secret: bytes,
) -> bytes:  # fmt: skip
    """The welcome after they confirmed: what they get, the latest entries of their topics,
    and their manage and unsubscribe links (with RFC 8058's one-click headers); in their
    language."""
    site = in_their_language(site, person)
    base = settings.site.base_url
    recent: list[StoredEntry] = []
    high = top = store.max_seq()
    while high > 0 and len(recent) < WELCOME_ENTRIES and top - high < 1000:  # newest first
        low = max(0, high - 50)
        recent += wanted(person, store.published_after_seq(low, high))
        high = low
    items = [feed_item(s, base_url=base, default_author="") for s in recent]
    unsubscribe = f"{base}unsubscribe?token={unsubscribe_token(secret, person.id)}"
    context = {
        "site": site,
        "subscriber": replace(person, name=clean_name(person.name)),
        "choices": describe(person, settings, translations(site.language, settings.home).gettext),
        "entries": items[:WELCOME_ENTRIES],
        "manage_url": manage_url(base, secret, person),
        "unsubscribe_url": unsubscribe,
    }
    subject = translations(site.language, settings.home).gettext(N_("Welcome to {title}"))
    message = _message(
        settings, email=email, subject=subject.format(title=site.title), kind="welcome"
    )
    message["Date"] = format_datetime(now)
    message["List-Id"] = f"<{list_id(base)}>"
    message["List-Unsubscribe"] = list_unsubscribe(settings, secret, person.id, unsubscribe)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(templates.render(settings.home, "welcome.txt.j2", **context))
    html = templates.render(settings.home, "welcome.html.j2", **context)
    message.add_alternative(inliner().inline(html), subtype="html")
    return _wire(message)


ACCOUNT_HOURS = 1  # a link to change the address, download or delete is for now


def link_message(
    settings: Settings, site: Site, item: Confirmation, *, email: str, composed: float,
    secret: bytes,
) -> bytes:  # fmt: skip
    """The fresh link a subscriber asked for: to their address and data ("account"), or to
    confirm a new address (sent to that address)."""
    base = settings.site.base_url
    if item.kind == "account":
        expires = int(composed + ACCOUNT_HOURS * 3600)
        token = expiring_token(secret, "account", item.subscriber_id, expires=expires)
        url, hours = f"{base}account/{token}", float(ACCOUNT_HOURS)
        subject = N_("Your link for {title}")
    else:
        expires = int(composed + settings.server.confirm_hours * 3600)
        token = expiring_token(
            secret, "address", item.subscriber_id, expires=expires, extra=item.address or ""
        )
        url, hours = f"{base}address/{token}", settings.server.confirm_hours
        subject = N_("Confirm your new address for {title}")
    body = templates.render(settings.home, f"{item.kind}.txt.j2", site=site, url=url, hours=hours)
    subject = translations(site.language, settings.home).gettext(subject).format(title=site.title)
    message = _message(settings, email=email, subject=subject, kind=item.kind)
    message["Date"] = format_datetime(datetime.fromtimestamp(composed, UTC))
    message.set_content(body)
    return _wire(message)


def _wire(message: EmailMessage) -> bytes:
    """The message as it travels: CRLF; UTF-8 headers for an address whose local part is
    not ASCII (RFC 6532, sent with SMTPUTF8)."""
    utf8 = not str(message["To"]).isascii()
    return message.as_bytes(policy=email_policy.default.clone(linesep="\r\n", utf8=utf8))


def _message(settings: Settings, *, email: str, subject: str, kind: str) -> EmailMessage:
    message = EmailMessage()
    for name, value in identity_of(settings).headers(kind):
        message[name] = value
    message["To"] = email
    message["Subject"] = subject
    domain = parseaddr(settings.mail.from_)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid("confirm", domain=domain)
    return message


def confirmation_url(settings: Settings, secret: bytes, subscriber_id: int, *, now: float) -> str:
    """The link of a mail composed at ``now`` (a POSIX time): valid for confirm_hours."""
    expires = int(now + settings.server.confirm_hours * 3600)
    token = confirm_token(secret, subscriber_id, expires=expires)
    return f"{settings.site.base_url}confirm?token={token}"


async def send_confirmations(
    settings: Settings,
    store: Store,
    transport: Transport,
    *,
    now: datetime,
    report: SendReport,
    stop: threading.Event | None = None,
    instance: str | None = None,
    dkim_key: bytes = b"",
) -> None:
    """Send every queued confirmation mail (and every retry that is due) through
    ``transport``, already open. A pause (``report.paused``) or a stop gives the rest back.
    ``instance``: the `newsdrop run` sending, whose claims others take over as soon as it
    is dead (see ``Store.claim_confirmations``). Signed with ``dkim_key`` as digests are."""
    site = Site.from_settings(settings)
    secret = instance_secret(settings)
    claimant = new_claimant()

    def halted() -> bool:
        return bool(report.paused) or (stop is not None and stop.is_set())

    def compose_notice(item: Confirmation, to: str, composed: float) -> bytes:
        person = store.subscribers_by_id([item.subscriber_id])[item.subscriber_id]
        sent_at = datetime.fromtimestamp(composed, UTC)
        if item.kind == "welcome":
            return welcome_message(
                settings, store, site, person=person, email=to, now=sent_at, secret=secret
            )
        if item.kind in ("account", "address"):
            return link_message(
                settings,
                in_their_language(site, person),
                item,
                email=to,
                composed=composed,
                secret=secret,
            )
        url = confirmation_url(settings, secret, item.subscriber_id, now=composed)
        return confirmation_message(
            settings, site, person=person, email=to, url=url, now=sent_at, secret=secret
        )

    async def one(item: Confirmation) -> None:
        if halted():  # give it back untouched: the next run sends it
            await asyncio.to_thread(
                store.finish_confirmation, item.subscriber_id, state="queued",
                reply=report.paused or "not sent yet: the service was stopping",
                now=now, counts_as_attempt=False,
            )  # fmt: skip
            return
        if not item.wanted:  # confirmed by an earlier link, unsubscribed or removed
            await asyncio.to_thread(
                store.finish_confirmation, item.subscriber_id, state="cancelled",
                reply="no longer pending", now=now, counts_as_attempt=False,
            )  # fmt: skip
            return
        composed = time.time()
        sent_at = datetime.fromtimestamp(composed, UTC)
        try:
            to = wire_address(item.address or item.email)  # a new address: to it
            data = await asyncio.to_thread(compose_notice, item, to, composed)
            data = signed(data, settings.mail, key=dkim_key)
            sender = envelope_sender(settings, secret, item.kind, item.subscriber_id)
            reply = await transport.send(sender=sender, recipient=to, data=data)
        except UsageError as exc:  # an address no relay takes (a store older than the checks)
            await asyncio.to_thread(
                store.finish_confirmation, item.subscriber_id, state="failed",
                reply=str(exc), now=now,
            )  # fmt: skip
            return
        except RenderError as exc:  # the template: every mail would fail alike
            await asyncio.to_thread(
                record_confirmation_failure, settings, store, item,
                SendingPausedError(str(exc)), now, report,
            )  # fmt: skip
            return
        except DeliveryError as exc:
            await asyncio.to_thread(
                record_confirmation_failure, settings, store, item, exc, now, report
            )
            return
        await asyncio.to_thread(
            store.finish_confirmation, item.subscriber_id, state="sent", reply=reply, now=sent_at
        )
        report.confirmations.append(item.subscriber_id)
        log.info("confirmation mail sent", extra={"subscriber": item.subscriber_id})

    try:
        while not halted():
            batch = await asyncio.to_thread(
                store.claim_confirmations, now=now, claimant=claimant, limit=BATCH,
                claim_timeout=settings.mail.claim_timeout_s, instance=instance,
                lease_seconds=settings.cluster.lease_seconds,
            )  # fmt: skip
            if not batch:
                return
            await asyncio.gather(*(one(item) for item in batch))
    except StoreError as exc:  # a full disk: pause, and give back what this run holds
        from newsdrop.mail.deliver import store_failed  # (deliver imports this module

        store_failed(report, exc)
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(store.release_confirmations, claimant, reply=str(exc), now=now)


def record_confirmation_failure(
    settings: Settings,
    store: Store,
    item: Confirmation,
    error: DeliveryError,
    now: datetime,
    report: SendReport,
) -> None:
    """Retry later, fail, or pause: the digests' rules (``deliver.record_failure``), without
    the bounce count (a pending address has no digests to count)."""
    if isinstance(error, SendingPausedError):
        store.finish_confirmation(
            item.subscriber_id, state="queued", reply=error.reply, now=now,
            counts_as_attempt=False,
        )  # fmt: skip
        if not report.paused:
            report.paused = error.reply
            log.error("sending paused: %s", error.reply)
        return
    mail = settings.mail
    if isinstance(error, TemporaryDeliveryError) and item.attempts + 1 < mail.max_attempts:
        # bandit B311: this randomness spreads retries out; it protects nothing.
        wait = min(3600.0, mail.retry_base_s * 2**item.attempts) * random.uniform(0.8, 1.2)  # nosec B311
        store.finish_confirmation(
            item.subscriber_id, state="retrying", reply=error.reply, now=now,
            next_attempt=now + timedelta(seconds=wait),
        )  # fmt: skip
        log.warning(
            "%s mail to subscriber %d will be retried: %s", item.kind, item.subscriber_id,
            without(error.reply, item.address or item.email),
            extra={"subscriber": item.subscriber_id},
        )  # fmt: skip
        return
    store.finish_confirmation(item.subscriber_id, state="failed", reply=error.reply, now=now)
    report.confirmations_failed.append((item.subscriber_id, error.reply))
    log.error(
        "%s mail to subscriber %d failed: %s", item.kind, item.subscriber_id,
        without(error.reply, item.address or item.email),
        extra={"subscriber": item.subscriber_id},
    )  # fmt: skip
