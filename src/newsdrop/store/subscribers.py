"""Queries on subscribers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.model import (
    Subscriber,
    SubscriberState,
)
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import aware, subscriber_of
from newsdrop.store.schema import (
    confirmations,
    deliveries,
    subscriber_changes,
    subscribers,
    suppressions,
)
from newsdrop.subscribers import NewSubscriber, changed_choices

log = logging.getLogger(__name__)


class SubscriberQueries(StoreBase):
    """Subscribers: added, looked up, paged through, changed."""

    def add_subscribers(
        self, new: Sequence[NewSubscriber], *, now: datetime, state: SubscriberState
    ) -> tuple[list[Subscriber], list[str]]:
        """Insert subscribers; an address already present is skipped and named."""
        added: list[Subscriber] = []
        skipped: list[str] = []
        with self.begin() as conn:
            for chunk_start in range(0, len(new), 500):
                chunk = new[chunk_start : chunk_start + 500]
                present = set(
                    conn.scalars(
                        sa.select(subscribers.c.email_key).where(
                            subscribers.c.email_key.in_([n.email.lower() for n in chunk])
                        )
                    )
                )
                for item in chunk:
                    if item.email.lower() in present:
                        skipped.append(item.email)
                        continue
                    row = {
                        "email": item.email,
                        "email_key": item.email.lower(),
                        "name": item.name,
                        "timezone": item.timezone,
                        "frequency": item.frequency,
                        "tags": json.dumps(list(item.tags), ensure_ascii=False),
                        "state": str(state),
                        "created": now,
                        "changed": now,
                        "activated": now if state is SubscriberState.ACTIVE else None,
                        "period_end": None,
                        "period_seq": 0,
                        "send_at": item.send_at,
                        "weekday": item.weekday,
                        "language": item.language,
                    }
                    new_id = conn.execute(subscribers.insert().values(row)).inserted_primary_key
                    present.add(item.email.lower())
                    added.append(subscriber_of({**row, "id": new_id[0]}))  # type: ignore[index]
        return added, skipped

    def subscriber(self, email: str) -> Subscriber | None:
        with self.begin() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email_key == email.strip().lower())
            ).first()
        return None if row is None else subscriber_of(row._mapping)

    def subscribers(self, *, state: SubscriberState | None = None) -> list[Subscriber]:
        query = sa.select(subscribers).order_by(subscribers.c.email_key)
        if state is not None:
            query = query.where(subscribers.c.state == str(state))
        with self.begin() as conn:
            return [subscriber_of(row._mapping) for row in conn.execute(query)]

    def set_subscriber_state(
        self, subscriber_id: int, state: SubscriberState, *, now: datetime, by: str = "operator"
    ) -> None:
        """Change a subscriber's state; becoming active (again) starts a new first period.
        ``by``: who changed it ("subscriber", "operator" or "newsdrop"), for the record."""
        values: dict[str, Any] = {"state": str(state), "changed": now}
        if state is SubscriberState.ACTIVE:
            values["activated"] = now
        where = subscribers.c.id == subscriber_id
        with self.begin() as conn:
            old = conn.scalar(sa.select(subscribers.c.state).where(where))
            conn.execute(subscribers.update().where(where).values(values))
            if old is not None and old != str(state):
                record_change(conn, subscriber_id, now, by, [f"state: {old} → {state}"])

    def set_choices(
        self, subscriber_id: int, choices: NewSubscriber, *, now: datetime, by: str = "operator"
    ) -> list[str]:
        """Replace what a subscriber chose (name, zone, frequency, tags, hour, weekday; not the
        address), and record what changed (returned, in words). Their next period starts
        where their last one ended, as always: the change holds from the next digest on,
        with nothing lost or sent twice."""
        values = {
            "name": choices.name,
            "timezone": choices.timezone,
            "frequency": choices.frequency,
            "tags": json.dumps(list(choices.tags), ensure_ascii=False),
            "send_at": choices.send_at,
            "weekday": choices.weekday,
            "language": choices.language,
            "changed": now,
        }
        where = subscribers.c.id == subscriber_id
        with self.begin() as conn:
            row = conn.execute(sa.select(subscribers).where(where)).first()
            changes = [] if row is None else changed_choices(subscriber_of(row._mapping), choices)
            if changes:
                conn.execute(subscribers.update().where(where).values(values))
                record_change(conn, subscriber_id, now, by, changes)
        return changes

    def pause_subscriber(
        self, subscriber_id: int, *, until: datetime, now: datetime, by: str = "subscriber"
    ) -> None:
        """No mail until ``until``; after it their window starts there (no backlog)."""
        where = subscribers.c.id == subscriber_id
        with self.begin() as conn:
            conn.execute(subscribers.update().where(where).values(paused_until=until, changed=now))
            record_change(
                conn, subscriber_id, now, by, [f"paused until {until:%Y-%m-%d %H:%M} UTC"]
            )

    def resume_subscriber(
        self, subscriber_id: int, *, missed: bool, now: datetime, by: str = "subscriber"
    ) -> None:
        """End a pause now. ``missed``: their next digest reaches back to their last one
        (what they missed, as one digest, as soon as a period is due); else it starts now."""
        where = subscribers.c.id == subscriber_id
        until = None if missed else now
        with self.begin() as conn:
            conn.execute(subscribers.update().where(where).values(paused_until=until, changed=now))
            words = "resumed with what they missed" if missed else "resumed"
            record_change(conn, subscriber_id, now, by, [words])

    def rotate_subscriber_links(self, subscriber_id: int, *, now: datetime) -> None:
        """A new version for their manage and feed links: the old ones stop working."""
        where = subscribers.c.id == subscriber_id
        with self.begin() as conn:
            conn.execute(
                subscribers.update()
                .where(where)
                .values(token_version=subscribers.c.token_version + 1, changed=now)
            )
            record_change(conn, subscriber_id, now, "operator", ["manage and feed links renewed"])

    def subscriber_changes(self, subscriber_id: int) -> list[tuple[datetime, str, str]]:
        """(when, by whom, what) of every recorded change to a subscriber, oldest first."""
        c = subscriber_changes.c
        query = sa.select(c.at, c.by, c.change).where(c.subscriber_id == subscriber_id)
        with self.begin() as conn:
            return [(aware(at), by, what) for at, by, what in conn.execute(query.order_by(c.id))]

    def change_address(self, subscriber_id: int, email: str, *, now: datetime) -> bool:
        """Their address becomes ``email`` (confirmed by a link sent to it); False when
        another subscriber has it."""
        where = subscribers.c.id == subscriber_id
        try:
            with self.begin() as conn:
                conn.execute(
                    subscribers.update()
                    .where(where)
                    .values(email=email, email_key=email.lower(), changed=now)
                )
                record_change(conn, subscriber_id, now, "subscriber", ["address changed"])
        except sa.exc.IntegrityError:
            return False
        return True

    def delete_subscriber(self, subscriber_id: int, *, suppress: str, now: datetime) -> None:
        """Delete a subscriber and every row that holds their address or their mail (their
        ledger, their queued mails); keep ``suppress`` (the keyed hash of their address) so
        that no import mails them again, and one record, by id, that they were deleted."""
        with self.begin() as conn:
            for table in (deliveries, confirmations):
                conn.execute(table.delete().where(table.c.subscriber_id == subscriber_id))
            conn.execute(subscribers.delete().where(subscribers.c.id == subscriber_id))
            known = sa.select(suppressions.c.key).where(suppressions.c.key == suppress)
            if conn.scalar(known) is None:  # (deleted before, subscribed again: kept once)
                conn.execute(suppressions.insert().values(key=suppress, since=now))
            record_change(conn, subscriber_id, now, "subscriber", ["deleted with all their data"])

    def suppressed(self, keys: Sequence[str]) -> set[str]:
        """Which of these keyed hashes of addresses are on the suppression list."""
        found: set[str] = set()
        with self.begin() as conn:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                found.update(
                    conn.scalars(sa.select(suppressions.c.key).where(suppressions.c.key.in_(chunk)))
                )
        return found

    def lift_suppression(self, key: str) -> None:
        """They subscribed again themselves (and confirmed): the list no longer holds them."""
        with self.begin() as conn:
            conn.execute(suppressions.delete().where(suppressions.c.key == key))

    def last_sent_by_subscriber(self) -> dict[int, datetime]:
        """When each subscriber's latest digest was sent (those sent one)."""
        query = (
            sa.select(deliveries.c.subscriber_id, sa.func.max(deliveries.c.changed))
            .where(deliveries.c.state == "sent")
            .group_by(deliveries.c.subscriber_id)
        )
        with self.begin() as conn:
            return {person: aware(when) for person, when in conn.execute(query)}

    def subscriber_pages(
        self, *, state: SubscriberState, size: int = 500
    ) -> Iterator[list[Subscriber]]:
        """Subscribers in one state, ``size`` at a time in id order, each page read in its own
        short transaction: a send's memory does not grow with the list."""
        after = 0
        while True:
            query = (
                sa.select(subscribers)
                .where(subscribers.c.state == str(state), subscribers.c.id > after)
                .order_by(subscribers.c.id)
                .limit(size)
            )
            with self.begin() as conn:
                page = [subscriber_of(row._mapping) for row in conn.execute(query)]
            if not page:
                return
            yield page
            after = page[-1].id

    def subscribers_by_id(self, ids: Sequence[int]) -> dict[int, Subscriber]:
        found: dict[int, Subscriber] = {}
        with self.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                rows = conn.execute(sa.select(subscribers).where(subscribers.c.id.in_(chunk)))
                found.update((row.id, subscriber_of(row._mapping)) for row in rows)
        return found

    def subscribers_version(self) -> tuple[int, str]:
        """Changes whenever a subscriber is added or changes state (from any process)."""
        query = sa.select(sa.func.count(), sa.func.max(subscribers.c.changed))
        with self.begin() as conn:
            count, changed = conn.execute(query).one()
        return int(count), str(changed)


def record_change(
    conn: Connection, subscriber_id: int, now: datetime, by: str, changes: list[str]
) -> None:
    conn.execute(
        subscriber_changes.insert(),
        [{"subscriber_id": subscriber_id, "at": now, "by": by, "change": c} for c in changes],
    )
