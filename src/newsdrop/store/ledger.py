"""The digest ledger: one row per subscriber and period, created before anything is sent."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.model import SubscriberState
from newsdrop.store.cluster import claim_rows, claimer_dead
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import aware, delivery_of
from newsdrop.store.schema import (
    deliveries,
    subscribers,
)
from newsdrop.store.values import (
    Delivery,
    Period,
    new_claimant,
)

log = logging.getLogger(__name__)


class Ledger(StoreBase):
    """The digest ledger: periods opened, claimed, sent, retried or failed."""

    def open_periods(self, periods: Sequence[Period], *, now: datetime) -> list[Period]:
        """Record periods in the ledger, in one transaction; returns those recorded. A period
        another run recorded first (cron and the service may both be up) is left out."""
        if not periods:
            return []
        encoded: dict[tuple[str, ...], str] = {}  # most periods share their contents
        rows = [
            {
                "subscriber_id": period.subscriber_id,
                "due": period.due,
                "window_start": period.window_start,
                "window_end": period.window_end,
                "seq_start": period.seq_start,
                "seq_end": period.seq_end,
                "state": period.state,
                "entry_ids": encoded.get(period.entry_ids)
                or encoded.setdefault(period.entry_ids, json.dumps(list(period.entry_ids))),
                "attempts": 0,
                "reply": "",
                "created": now,
                "changed": now,
            }
            for period in periods
        ]
        moved = (
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("person"))
            .values(period_end=sa.bindparam("end"), period_seq=sa.bindparam("seq"))
        )
        recorded: list[Period] = []
        with self.begin() as conn:
            try:  # the usual case, no other run in the way: two statements for them all
                with conn.begin_nested():
                    conn.execute(deliveries.insert(), rows)
                    conn.execute(
                        moved,
                        [
                            {"person": p.subscriber_id, "end": p.window_end, "seq": p.seq_end}
                            for p in periods
                        ],
                    )
                return list(periods)
            except sa.exc.IntegrityError:
                pass  # another run recorded some of them: one at a time, keeping the rest
            for period, row in zip(periods, rows, strict=True):
                try:
                    with conn.begin_nested():
                        conn.execute(deliveries.insert().values(row))
                        conn.execute(
                            moved,
                            {
                                "person": period.subscriber_id,
                                "end": period.window_end,
                                "seq": period.seq_end,
                            },
                        )
                except sa.exc.IntegrityError:
                    continue
                recorded.append(period)
        return recorded

    def open_period(self, period: Period, *, now: datetime) -> int | None:
        """Record one period; its delivery id, or None if another run recorded it first."""
        if not self.open_periods([period], now=now):
            return None
        with self.begin() as conn:
            return conn.scalar(
                sa.select(deliveries.c.id).where(
                    deliveries.c.subscriber_id == period.subscriber_id,
                    deliveries.c.due == period.due,
                )
            )

    def claim_batch(
        self,
        *,
        now: datetime,
        claim_timeout: float = 600.0,
        limit: int = 200,
        claimant: str | None = None,
        instance: str | None = None,
        lease_seconds: float = 15.0,
    ) -> list[Delivery]:
        """Take up to ``limit`` deliveries to send, for this run alone, in one transaction:
        queued ones, retries that are due, and ones claimed by a run that died.

        A run is known dead when its claim is older than ``claim_timeout``, or at once when
        it was made by a `newsdrop run` instance (``instance``) that has not been seen for
        ``lease_seconds`` or has started again since. A run that claims several times
        names itself (``claimant``, see ``new_claimant``), so that it never takes back its
        own digests in flight, however long they take."""
        stamp = max(now, datetime.now(UTC))
        stale = stamp - timedelta(seconds=claim_timeout)
        token = claimant or new_claimant()
        dead_claimer = claimer_dead(deliveries, stamp=stamp, lease_seconds=lease_seconds)
        kinds = (  # what may be sent, queued first
            deliveries.c.state == "queued",
            (deliveries.c.state == "retrying") & (deliveries.c.next_attempt <= now),
            (deliveries.c.state == "sending")
            & deliveries.c.claim.is_distinct_from(token)
            & ((deliveries.c.changed < stale) | dead_claimer),
        )
        sendable = sa.or_(*kinds)

        def read(conn: Connection) -> list[int]:
            # One query a kind, each stopping at `limit` rows on the state index: with
            # the kinds OR-ed and ORDER BY id, every claim read and sorted the whole
            # queue (a send of N digests read N^2/limit rows).
            # FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite serialises writers anyway): rows
            # another instance is claiming right now are passed over, not waited for, so
            # several instances take disjoint batches instead of racing for the same one.
            wanted: list[int] = []
            for kind in kinds:
                if len(wanted) < limit:
                    wanted += conn.scalars(
                        sa.select(deliveries.c.id)
                        .where(kind)
                        .order_by(deliveries.c.id)
                        .limit(limit - len(wanted))
                        .with_for_update(skip_locked=True)
                    )
            return wanted

        def take(conn: Connection, wanted: Sequence[int]) -> list[Delivery]:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(wanted), sendable)  # re-checked: another run may race
                .values(state="sending", changed=stamp, claim=token, claimed_by=instance)
            )
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.id.in_(wanted), deliveries.c.claim == token)
                .order_by(deliveries.c.id)
            )
            return [delivery_of(row._mapping) for row in rows]

        return claim_rows(self, read, take)

    def finish_sent(self, sent: Sequence[tuple[int, str]], *, now: datetime) -> None:
        """Mark delivered digests (id, server reply) in one transaction."""
        if not sent:
            return
        with self.begin() as conn:
            conn.execute(
                _MARK_SENT,
                [{"delivery_id": d, "server_reply": r, "now": now} for d, r in sent],
            )

    def release_claims(self, claimant: str, *, reply: str, now: datetime) -> int:
        """Give back every digest a run still holds as being sent (queued, the attempt not
        counted); how many."""
        with self.begin() as conn:
            done = conn.execute(
                deliveries.update()
                .where(deliveries.c.claim == claimant, deliveries.c.state == "sending")
                .values(state="queued", reply=reply, changed=now, claim=None, claimed_by=None)
            )
            return int(done.rowcount)

    def finish_delivery(
        self,
        delivery_id: int,
        *,
        state: str,
        reply: str,
        now: datetime,
        next_attempt: datetime | None = None,
        counts_as_attempt: bool = True,
        recipient_fault: bool = False,
    ) -> None:
        """Record a delivery's outcome: sent, failed (``recipient_fault``: because of the
        recipient's address), retrying (at ``next_attempt``), or queued again without
        counting the attempt (sending paused)."""
        with self.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(
                    state=state,
                    reply=reply,
                    changed=now,
                    next_attempt=next_attempt,
                    attempts=deliveries.c.attempts + (1 if counts_as_attempt else 0),
                    recipient_fault=recipient_fault,
                )
            )

    def delivery_summary(self) -> list[tuple[datetime, str, int]]:
        """(due, state, count) for every period, newest first."""
        query = (
            sa.select(deliveries.c.due, deliveries.c.state, sa.func.count())
            .group_by(deliveries.c.due, deliveries.c.state)
            .order_by(deliveries.c.due.desc(), deliveries.c.state)
        )
        with self.begin() as conn:
            return [(aware(due), state, count) for due, state, count in conn.execute(query)]

    def failed_deliveries(self) -> list[tuple[str, Delivery]]:
        """Every failed digest with its subscriber's address, by address then due."""
        query = (
            sa.select(subscribers.c.email, deliveries)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(deliveries.c.state == "failed")
            .order_by(subscribers.c.email_key, deliveries.c.due)
        )
        with self.begin() as conn:
            return [(row.email, delivery_of(row._mapping)) for row in conn.execute(query)]

    def requeue_failed(self, *, now: datetime, subscriber_id: int | None = None) -> int:
        """Queue failed digests again with every attempt back (one subscriber's, or those of
        every active subscriber); how many. The operator's word, after fixing the cause."""
        active = sa.select(subscribers.c.id).where(
            subscribers.c.state == str(SubscriberState.ACTIVE)
        )
        which = (
            deliveries.c.subscriber_id == subscriber_id
            if subscriber_id is not None
            else deliveries.c.subscriber_id.in_(active)
        )
        with self.begin() as conn:
            done = conn.execute(
                deliveries.update()
                .where(deliveries.c.state == "failed", which)
                .values(
                    state="queued", attempts=0, next_attempt=None, changed=now,
                    reply="queued again by the operator", recipient_fault=False,
                )
            )  # fmt: skip
            return int(done.rowcount)

    def sent_deliveries(self, subscriber_id: int, *, limit: int) -> list[Delivery]:
        """A subscriber's latest digests that were sent, newest first (their private feed)."""
        query = (
            sa.select(deliveries)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.state == "sent")
            .order_by(deliveries.c.due.desc())
            .limit(limit)
        )
        with self.begin() as conn:
            return [delivery_of(row._mapping) for row in conn.execute(query)]

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self.begin() as conn:
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
        return None if row is None else delivery_of(row._mapping)

    def next_retry(self) -> datetime | None:
        """When the earliest deferred delivery is due again (None: nothing to retry)."""
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.min(deliveries.c.next_attempt)).where(
                    deliveries.c.state == "retrying"
                )
            )
        return None if value is None else aware(value)

    def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are in each state (queue depth is queued + retrying)."""
        query = sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)
        with self.begin() as conn:
            return {state: count for state, count in conn.execute(query)}

    def last_sent(self) -> datetime | None:
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.max(deliveries.c.changed)).where(deliveries.c.state == "sent")
            )
        return None if value is None else aware(value)


# Built once: a send marks its digests a few at a time, and building the statement cost
# as much as running it.
_MARK_SENT = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
    .values(
        state="sent",
        reply=sa.bindparam("server_reply"),
        changed=sa.bindparam("now"),
        next_attempt=None,
        attempts=deliveries.c.attempts + 1,
    )
)
