"""Confirmation mails, kept in the store until sent, with the digests' retries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.model import (
    SubscriberState,
)
from newsdrop.store.cluster import claim_rows, claimer_dead
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import aware
from newsdrop.store.schema import (
    confirmations,
    subscribers,
)
from newsdrop.store.values import (
    Confirmation,
)

log = logging.getLogger(__name__)


# The states a subscriber must still be in for each kind of mail to go.
_ANY = tuple(SubscriberState)
_WANTS = {
    "confirm": (SubscriberState.PENDING,),
    "welcome": (SubscriberState.ACTIVE,),
    "account": _ANY,  # their data and their address are theirs whatever they receive
    "address": _ANY,
}


class ConfirmationQueries(StoreBase):
    """Confirmation mails (double opt-in), queued until sent."""

    def queue_confirmation(
        self, subscriber_id: int, *, now: datetime, kind: str = "confirm", address: str = ""
    ) -> bool:
        """Queue the confirmation mail of a pending subscriber (or, ``kind="welcome"``, the
        welcome of one who just confirmed); False when one is already waiting (queued,
        retrying or being sent): a repeat request adds none. After one was sent (or
        failed), a repeat request queues a new one, with a new link."""
        fresh = {
            "state": "queued", "attempts": 0, "next_attempt": None, "reply": "",
            "claim": None, "requested": now, "changed": now, "kind": kind,
            "address": address or None,
        }  # fmt: skip
        with self.begin() as conn:
            state = conn.scalar(
                sa.select(confirmations.c.state).where(
                    confirmations.c.subscriber_id == subscriber_id
                )
            )
            if state is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            confirmations.insert().values(subscriber_id=subscriber_id, **fresh)
                        )
                except sa.exc.IntegrityError:  # another request queued it just now
                    return False
                return True
            if state in _CONFIRMATION_WAITING:
                return False
            done = conn.execute(
                confirmations.update()
                .where(
                    confirmations.c.subscriber_id == subscriber_id,
                    confirmations.c.state.not_in(_CONFIRMATION_WAITING),
                )
                .values(fresh)
            )
            return bool(done.rowcount)

    def claim_confirmations(
        self,
        *,
        now: datetime,
        claimant: str,
        limit: int = 50,
        claim_timeout: float = 600.0,
        instance: str | None = None,
        lease_seconds: float = 15.0,
    ) -> list[Confirmation]:
        """Take up to ``limit`` confirmation mails to send, for this run alone: queued ones,
        retries that are due, and ones a run that died left being sent (after
        ``claim_timeout``, or at once when a dead `newsdrop run` instance claimed them:
        as ``claim_batch``)."""
        stamp = max(now, datetime.now(UTC))
        c = confirmations.c
        dead_claimer = claimer_dead(confirmations, stamp=stamp, lease_seconds=lease_seconds)
        sendable = sa.or_(
            c.state == "queued",
            (c.state == "retrying") & (c.next_attempt <= now),
            (c.state == "sending")
            & c.claim.is_distinct_from(claimant)
            & ((c.changed < stamp - timedelta(seconds=claim_timeout)) | dead_claimer),
        )

        def read(conn: Connection) -> list[int]:
            return list(
                conn.scalars(
                    sa.select(c.subscriber_id)
                    .where(sendable)
                    .order_by(c.requested)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )

        def take(conn: Connection, wanted: Sequence[int]) -> list[Confirmation]:
            conn.execute(
                confirmations.update()
                .where(c.subscriber_id.in_(wanted), sendable)
                .values(state="sending", claim=claimant, changed=stamp, claimed_by=instance)
            )
            rows = conn.execute(
                sa.select(
                    c.subscriber_id,
                    c.attempts,
                    c.kind,
                    c.address,
                    subscribers.c.email,
                    subscribers.c.state,
                )
                .join(subscribers, subscribers.c.id == c.subscriber_id, isouter=True)
                .where(c.subscriber_id.in_(wanted), c.claim == claimant, c.state == "sending")
                .order_by(c.requested)
            )
            return [
                Confirmation(
                    subscriber_id=row.subscriber_id,
                    email=row.email or "",
                    wanted=row.state in {str(state) for state in _WANTS[row.kind]},
                    attempts=row.attempts,
                    kind=row.kind,
                    address=row.address,
                )
                for row in rows
            ]

        return claim_rows(self, read, take)

    def finish_confirmation(
        self,
        subscriber_id: int,
        *,
        state: str,
        reply: str,
        now: datetime,
        next_attempt: datetime | None = None,
        counts_as_attempt: bool = True,
    ) -> None:
        """Record a confirmation mail's outcome: sent (at ``now``), retrying, failed,
        cancelled, or queued again without counting the attempt (sending paused)."""
        values: dict[str, Any] = {
            "state": state, "reply": reply, "changed": now, "next_attempt": next_attempt,
            "claim": None, "attempts": confirmations.c.attempts + int(counts_as_attempt),
        }  # fmt: skip
        if state == "sent":
            values["sent"] = now
        with self.begin() as conn:
            conn.execute(
                confirmations.update()
                .where(confirmations.c.subscriber_id == subscriber_id)
                .values(values)
            )

    def release_confirmations(self, claimant: str, *, reply: str, now: datetime) -> None:
        """Give back every confirmation mail a run still holds as being sent."""
        c = confirmations.c
        with self.begin() as conn:
            conn.execute(
                confirmations.update()
                .where(c.claim == claimant, c.state == "sending")
                .values(state="queued", reply=reply, changed=now, claim=None, claimed_by=None)
            )

    def next_confirmation(self) -> datetime | None:
        """When the earliest confirmation mail waiting is due (None: none waits)."""
        c = confirmations.c
        due = sa.case((c.state == "retrying", c.next_attempt), else_=c.requested)
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.min(due)).where(c.state.in_(["queued", "retrying"]))
            )
        return None if value is None else aware(value)

    def confirmation_counts(self) -> dict[str, int]:
        """How many confirmation mails are in each state."""
        c = confirmations.c
        query = sa.select(c.state, sa.func.count()).group_by(c.state)
        with self.begin() as conn:
            return {state: count for state, count in conn.execute(query)}

    def confirmation_state(self, subscriber_id: int) -> tuple[str, int, datetime | None] | None:
        """(state, attempts, sent) of a subscriber's confirmation mail, if one was queued."""
        c = confirmations.c
        with self.begin() as conn:
            row = conn.execute(
                sa.select(c.state, c.attempts, c.sent).where(c.subscriber_id == subscriber_id)
            ).first()
        if row is None:
            return None
        return row.state, row.attempts, None if row.sent is None else aware(row.sent)


_CONFIRMATION_WAITING = ("queued", "retrying", "sending")
