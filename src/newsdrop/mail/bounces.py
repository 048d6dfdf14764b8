"""Returned mail, acted on: each message is stored first (a crash loses none), then read
(mail/returned.py), matched to the message it answers by its signed bounce address
(mail/verp.py: a forged or replayed one names nothing and changes nothing), judged by the
one table of status codes, and acted on with its mark as handled in one transaction."""

from __future__ import annotations

import logging
import mailbox
from datetime import datetime, timedelta

from newsdrop.config import Settings, instance_secret
from newsdrop.errors import ConfigError, UsageError
from newsdrop.mail import returned
from newsdrop.mail.verp import returned_to
from newsdrop.store import Act, Store, StoredReturn

log = logging.getLogger(__name__)


def receive(
    settings: Settings, store: Store, data: bytes, *, envelope_to: str, now: datetime
) -> str:
    """Keep one returned message, then act on it (and on any a crash left unhandled);
    what was done, in words. A StoreError when it cannot be kept (the caller asks the
    sender to try again later)."""
    kept = keep(settings, store, data, envelope_to=envelope_to, now=now)
    done = handle_kept(settings, store, now=now)
    if kept is None:
        return "already kept: this message was handed over before, and is acted on once"
    return done.get(kept, "already handled")


def keep(
    settings: Settings, store: Store, data: bytes, *, envelope_to: str, now: datetime
) -> int | None:
    """Store one returned message before anything is done about it: its id, or None when
    the same message was kept before. A ConfigError without ``[bounces] domain``, a
    UsageError over ``[bounces] max_bytes``, a StoreError when it cannot be kept."""
    admissible(settings, data)
    return store.store_returned(data, envelope_to=envelope_to, now=now)


def admissible(settings: Settings, data: bytes) -> None:
    """A ConfigError without ``[bounces] domain``; a UsageError over ``max_bytes``."""
    bounces = settings.bounces
    if not bounces.domain:
        raise ConfigError(
            f"{settings.source}: [bounces] domain is not set, so no message carries a bounce "
            "address to answer; set it (such as 'bounces.example.org') first"
        )
    if len(data) > bounces.max_bytes:
        raise UsageError(
            f"the returned message is {len(data):,} bytes, over [bounces] max_bytes "
            f"({bounces.max_bytes:,}); it was not kept"
        )


def take_maildir(settings: Settings, store: Store, *, now: datetime) -> int:
    """Keep every message in ``[bounces] maildir``, removing each only once it is kept (a
    crash between the two keeps it once: the second time it is known); how many were
    taken. One over ``[bounces] max_bytes`` goes to the Maildir's ``.refused`` folder."""
    path = settings.home / settings.bounces.maildir
    box = mailbox.Maildir(path, factory=None, create=False)
    taken = 0
    for key in list(box.iterkeys()):
        try:
            data = box.get_bytes(key)
        except (KeyError, FileNotFoundError):  # taken meanwhile by another instance
            continue
        except OSError as exc:  # left where it is, said each round, the others taken
            log.warning("%s: cannot read %s (%s); it is left there", path, key, exc.strerror)
            continue
        try:
            keep(settings, store, data, envelope_to="", now=now)
        except UsageError as exc:
            log.warning("%s: %s; moved to its .refused folder", path, exc)
            box.add_folder("refused").add(data)
        box.discard(key)
        taken += 1
    return taken


def handle_kept(settings: Settings, store: Store, *, now: datetime) -> dict[int, str]:
    """Act on every kept message not yet handled, oldest first, a batch of them in each
    transaction, and forget those handled more than ``[bounces] keep_days`` ago; what was
    done with each, by id."""
    done: dict[int, str] = {}
    while batch := [item for item in store.unhandled_returns() if item.id not in done]:
        decided = [(item.id, *_read(settings, store, item)) for item in batch]
        words = store.settle_returned_many(
            decided, now=now, soft_limit=settings.bounces.soft_limit,
            half_life_days=settings.bounces.soft_half_life_days,
        )  # fmt: skip
        for (returned_id, _, act), said in zip(decided, words, strict=True):
            who = f" (subscriber {act.subscriber_id})" if act is not None else ""
            log.info("returned mail %d: %s%s", returned_id, said, who)
            done[returned_id] = said
    store.purge_returned(before=now - timedelta(days=settings.bounces.keep_days))
    return done


def _read(settings: Settings, store: Store, item: StoredReturn) -> tuple[str, Act | None]:
    """What a stored returned message says to do: (outcome, act). The store's errors go
    up (the batch stays unhandled and is tried again), a reading error does not."""
    try:
        report = returned.read(item.data, envelope_to=item.envelope_to)
    except Exception as exc:  # a bug on an odd message must not hold up every later one
        log.error("returned mail %d could not be read", item.id, exc_info=exc)
        return f"unreadable: {exc.__class__.__name__}", None
    return _decide(settings, store, report)


def _decide(settings: Settings, store: Store, report: returned.Report) -> tuple[str, Act | None]:
    if report.kind == "auto-reply":
        return "ignored: an automatic reply", None
    secret = instance_secret(settings)
    named = next(
        (
            found
            for address in report.addressed_to
            if (found := returned_to(secret, settings.bounces.domain, address)) is not None
        ),
        None,
    )
    if named is None:
        return "dropped: no bounce address of ours with a valid signature", None
    whose = store.message_owner(named.kind, named.id)
    if whose is None:
        return f"dropped: the {named.kind} it names is gone", None
    subscriber_id, delivery_id = whose
    if named.kind == "unsubscribe":  # any mail to List-Unsubscribe's mailto: is the request
        return "unsubscribe", Act(subscriber_id, None, "unsubscribe", "mailto", "")
    if report.kind == "unknown":
        return "ignored: not a report", None
    if report.kind == "complaint":
        return "complaint", Act(subscriber_id, delivery_id, "complaint", report.feedback_type, "")
    judged = [(returned.judge(failure), failure) for failure in report.failures]
    for verdict in ("hard", "soft"):
        for found_verdict, failure in judged:
            if found_verdict == verdict:
                act = Act(subscriber_id, delivery_id, verdict, failure.status, failure.diagnostic)
                return verdict, act
    statuses = ", ".join(f.status or f.action for f in report.failures) or "no failure"
    return f"nobody's fault: {statuses}", None
