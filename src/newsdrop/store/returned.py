"""Returned mail: stored as it comes, then acted on and marked handled in one transaction,
so that a crash between the two loses nothing and acts on nothing twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from newsdrop.model import SubscriberState
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import aware
from newsdrop.store.schema import bounce_events, deliveries, returned_mail, subscribers
from newsdrop.store.subscribers import record_change


@dataclass(frozen=True, slots=True)
class StoredReturn:
    id: int
    envelope_to: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Act:
    """What one returned message does to one subscriber."""

    subscriber_id: int
    delivery_id: int | None
    kind: str  # "hard", "soft", "complaint" or "unsubscribe" (a mail to List-Unsubscribe)
    status: str  # "5.1.1", the complaint's feedback type, or "mailto"
    detail: str  # the remote server's words


COMPLAINT_WARNING = 0.001  # Gmail and Yahoo: keep complaints under 0.3%; warn well before


@dataclass(frozen=True, slots=True)
class PeriodReturns:
    """What came back of one period's digests."""

    due: datetime
    sent: int
    bounced: int  # digests that came back as a failure, hard or soft
    complaints: int

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def complaints_high(self) -> bool:
        return self.complaint_rate > COMPLAINT_WARNING

    def figures(self) -> dict[str, object]:
        return {
            "sent": self.sent, "bounced": self.bounced, "complaints": self.complaints,
            "bounce_rate": self.bounce_rate, "complaint_rate": self.complaint_rate,
            "complaints_high": self.complaints_high,
        }  # fmt: skip

    def in_words(self) -> str:
        words = (
            f"sent {self.sent}, bounced {self.bounced} ({self.bounce_rate:.2%}), "
            f"complaints {self.complaints} ({self.complaint_rate:.2%})"
        )
        if self.complaints_high:
            words += (
                f"; WARNING: complaints over {COMPLAINT_WARNING:.1%} of the mail: mailbox "
                "providers start refusing it at 0.3%; look at what this period sent"
            )
        return words


class ReturnedQueries(StoreBase):
    """Returned mail and what it did."""

    def store_returned(self, data: bytes, *, envelope_to: str, now: datetime) -> int | None:
        """Keep a returned message before anything is done about it; its id, or None when
        this very message (the same bytes to the same address) was kept before: an MTA
        that lost our answer hands it over again."""
        return self.store_returned_many([(data, envelope_to)], now=now)[0]

    def store_returned_many(
        self, messages: list[tuple[bytes, str]], *, now: datetime
    ) -> list[int | None]:
        """``store_returned`` for several (data, envelope_to) in one transaction: the
        listener keeps what arrives together with one commit."""
        r = returned_mail.c
        prints = [hashlib.sha256(to.encode() + b"\n" + data).hexdigest() for data, to in messages]
        with self.begin() as conn:
            known = {
                row.fingerprint
                for row in conn.execute(sa.select(r.fingerprint).where(r.fingerprint.in_(prints)))
            }
            kept: list[int | None] = []
            for (data, envelope_to), fingerprint in zip(messages, prints, strict=True):
                if fingerprint in known:
                    kept.append(None)
                    continue
                known.add(fingerprint)
                row = {
                    "received": now, "envelope_to": envelope_to, "data": data,
                    "state": "stored", "outcome": "", "fingerprint": fingerprint,
                }  # fmt: skip
                try:
                    with conn.begin_nested():
                        found = conn.execute(returned_mail.insert().values(**row))
                except sa.exc.IntegrityError:  # the same message, kept meanwhile by another
                    kept.append(None)
                    continue
                kept.append(int(found.inserted_primary_key[0]))  # type: ignore[index]
            return kept

    def unhandled_returns(self, *, limit: int = 100) -> list[StoredReturn]:
        """Returned messages stored and not yet handled (a crash may have left some)."""
        r = returned_mail.c
        query = (
            sa.select(r.id, r.envelope_to, r.data)
            .where(r.state == "stored")
            .order_by(r.id)
            .limit(limit)
        )
        with self.begin() as conn:
            return [StoredReturn(row.id, row.envelope_to, row.data) for row in conn.execute(query)]

    def settle_returned(
        self,
        returned_id: int,
        *,
        outcome: str,
        act: Act | None,
        now: datetime,
        soft_limit: float,
        half_life_days: float,
    ) -> str:
        """Mark a returned message handled and do what it says, in one transaction (a
        message already handled, by a run that raced this one, is left alone). What was
        done, in words."""
        return self.settle_returned_many(
            [(returned_id, outcome, act)], now=now, soft_limit=soft_limit,
            half_life_days=half_life_days,
        )[0]  # fmt: skip

    def settle_returned_many(
        self,
        decided: list[tuple[int, str, Act | None]],
        *,
        now: datetime,
        soft_limit: float,
        half_life_days: float,
    ) -> list[str]:
        """``settle_returned`` for several (id, outcome, act) in one transaction: all of
        them handled, or (a crash) none."""
        r = returned_mail.c
        done: list[str] = []
        with self.begin() as conn:
            for returned_id, outcome, act in decided:
                taken = conn.execute(
                    returned_mail.update()
                    .where(r.id == returned_id, r.state == "stored")
                    .values(state="handled", outcome=outcome)
                )
                if not taken.rowcount:
                    done.append("already handled")
                    continue
                if act is None:
                    done.append(outcome)
                    continue
                words = _act(conn, act, returned_id, now, soft_limit, half_life_days)
                conn.execute(
                    returned_mail.update().where(r.id == returned_id).values(outcome=words)
                )
                done.append(words)
        return done

    def message_owner(self, kind: str, number: int) -> tuple[int, int | None] | None:
        """(subscriber id, delivery id) of the message a bounce address names ("digest": a
        delivery's id; else a subscriber's), or None when it is gone."""
        with self.begin() as conn:
            if kind == "digest":
                d = deliveries.c
                owner = conn.scalar(sa.select(d.subscriber_id).where(d.id == number))
                return None if owner is None else (int(owner), number)
            found = conn.scalar(sa.select(subscribers.c.id).where(subscribers.c.id == number))
            return None if found is None else (number, None)

    def act_on(self, act: Act, *, now: datetime, soft_limit: float, half_life_days: float) -> str:
        """The same policy for a refusal during the SMTP transaction: what was done."""
        with self.begin() as conn:
            return _act(conn, act, None, now, soft_limit, half_life_days)

    def bounce_events_of(self, subscriber_id: int) -> list[tuple[datetime, str, str]]:
        """(when, kind, status) of what returned mail did to a subscriber, oldest first."""
        b = bounce_events.c
        query = sa.select(b.at, b.kind, b.status).where(b.subscriber_id == subscriber_id)
        with self.begin() as conn:
            return [(aware(at), kind, status) for at, kind, status in conn.execute(query)]

    def returned_by_period(self, *, periods: int = 10) -> list[PeriodReturns]:
        """The latest ``periods`` periods that sent digests, newest first: how many were
        sent, and how many of them came back as a failure or a complaint."""
        d, b = deliveries.c, bounce_events.c
        sent = (
            sa.select(d.due, sa.func.count())
            .where(d.state == "sent")
            .group_by(d.due)
            .order_by(d.due.desc())
            .limit(periods)
        )
        with self.begin() as conn:
            counts = {aware(due): int(n) for due, n in conn.execute(sent)}
            if not counts:
                return []
            kind = sa.case((b.kind == "complaint", "complaint"), else_="bounce")
            returned = (
                sa.select(d.due, kind, sa.func.count(sa.distinct(b.delivery_id)))
                .join(deliveries, d.id == b.delivery_id)
                .where(d.due >= min(counts), b.kind.in_(("hard", "soft", "complaint")))
                .group_by(d.due, kind)
            )
            back: dict[tuple[datetime, str], int] = {
                (aware(due), kind): int(n) for due, kind, n in conn.execute(returned)
            }
        return [
            PeriodReturns(due, n, back.get((due, "bounce"), 0), back.get((due, "complaint"), 0))
            for due, n in sorted(counts.items(), reverse=True)
        ]  # fmt: skip

    def returned_counts(self) -> dict[str, int]:
        """The returned mail kept (handled mail goes after ``keep_days``), by what came of
        it: "acted on", "dropped" (no valid bounce address of ours, or one naming a message
        that is gone: forged or stale), "ignored" (automatic replies, nobody's fault) and
        "waiting" (kept, not yet handled)."""
        r = returned_mail.c
        outcome = sa.case(
            (r.state == "stored", "waiting"),
            (r.outcome.like("dropped%"), "dropped"),
            (
                sa.or_(*(r.outcome.like(f"{word}%") for word in ("bounced", "soft", "unsub"))),
                "acted on",
            ),
            else_="ignored",
        )
        query = sa.select(outcome, sa.func.count()).group_by(outcome)
        with self.begin() as conn:
            found = {str(kind): int(n) for kind, n in conn.execute(query)}
        return {kind: found.get(kind, 0) for kind in ("acted on", "dropped", "ignored", "waiting")}

    def purge_returned(self, *, before: datetime) -> int:
        """Forget handled returned messages received before ``before``; how many."""
        r = returned_mail.c
        with self.begin() as conn:
            gone = conn.execute(
                returned_mail.delete().where(r.state == "handled", r.received < before)
            )
            return int(gone.rowcount or 0)


def _act(
    conn: sa.Connection,
    act: Act,
    returned_id: int | None,
    now: datetime,
    limit: float,
    half_life: float,
) -> str:
    """Apply the policy and record the event, with the delivery it belongs to."""
    done = _apply(conn, act, now, limit, half_life)
    conn.execute(
        bounce_events.insert().values(
            subscriber_id=act.subscriber_id, delivery_id=act.delivery_id,
            returned_id=returned_id, at=now, kind=act.kind, status=act.status[:16],
            detail=act.detail[:2000],
        )
    )  # fmt: skip
    return done


def _apply(conn: sa.Connection, act: Act, now: datetime, limit: float, half_life: float) -> str:
    """The policy: a complaint, or a mail to the List-Unsubscribe address, unsubscribes at
    once (the subscriber by ``by``); a permanent failure of the address
    bounces it; a temporary one adds 1 to a score that halves every ``half_life`` days and
    bounces the address past ``limit`` (the model Mailman uses)."""
    where = subscribers.c.id == act.subscriber_id
    row = conn.execute(  # locked: two instances adding to one score must not lose one
        sa.select(subscribers.c.state, subscribers.c.soft_score, subscribers.c.soft_at)
        .where(where)
        .with_for_update()
    ).first()
    if row is None:
        return "no such subscriber (deleted)"
    state = row.state
    if act.kind in ("complaint", "unsubscribe"):
        if state != str(SubscriberState.UNSUBSCRIBED):
            conn.execute(
                subscribers.update().where(where).values(state="unsubscribed", changed=now)
            )
        by, why = (
            ("newsdrop", "complaint") if act.kind == "complaint" else ("subscriber", "by mail")
        )
        record_change(conn, act.subscriber_id, now, by, [f"unsubscribed: {why}"])
        return f"unsubscribed ({why})"
    if act.kind == "hard":
        if state == str(SubscriberState.ACTIVE):
            conn.execute(subscribers.update().where(where).values(state="bounced", changed=now))
            record_change(conn, act.subscriber_id, now, "newsdrop", [f"bounced: {act.status}"])
        return f"bounced ({act.status})"
    score = float(row.soft_score or 0.0)
    if row.soft_at is not None:
        days = max(0.0, (now - aware(row.soft_at)).total_seconds() / 86400)
        score *= 0.5 ** (days / half_life)
    score += 1.0
    values: dict[str, object] = {"soft_score": score, "soft_at": now}
    bounced = score > limit and state == str(SubscriberState.ACTIVE)
    if bounced:
        values |= {"state": "bounced", "changed": now}
        record_change(
            conn, act.subscriber_id, now, "newsdrop", [f"bounced: soft score {score:.2f}"]
        )
    conn.execute(subscribers.update().where(where).values(values))
    return f"soft score {score:.2f}" + (", bounced" if bounced else "")
