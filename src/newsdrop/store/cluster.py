"""Work shared by several `newsdrop run` instances: leases, instances, one sending rate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import aware
from newsdrop.store.schema import (
    instances,
    leases,
    rate_buckets,
    rate_windows,
)

log = logging.getLogger(__name__)


class ClusterQueries(StoreBase):
    """Several instances on one store: leases, instances seen, the sending rate, request limits."""

    def take_send_slots(self, count: int, *, gap: float, now: float, bucket: str = "mail") -> float:
        """Take ``count`` send slots ``gap`` seconds apart from the store's token bucket: how
        many seconds from now the first one is (the others follow it at ``gap``). The
        clock is the database server's on PostgreSQL, so that instances on machines whose
        clocks differ share one, else ``now`` (seconds since the epoch, from the caller).
        One conditional UPDATE, so racing processes get disjoint slots; an idle bucket
        saves up nothing, so no burst exceeds the rate."""
        clock: sa.ColumnElement[float] = sa.literal(now, sa.Float)
        if self.engine.dialect.name == "postgresql":
            clock = sa.cast(sa.func.extract("epoch", sa.func.statement_timestamp()), sa.Float)
        free = rate_buckets.c.next_free
        with self.begin() as conn:
            wait = conn.execute(
                rate_buckets.update()
                .where(rate_buckets.c.name == bucket)
                .values(next_free=sa.case((free > clock, free), else_=clock) + count * gap)
                .returning(free - count * gap - clock)
            ).scalar_one()
        return float(wait)

    def take_hit(self, key: str, *, amount: int, period: float, now: float) -> bool:
        """Count one request against ``key``'s limit of ``amount`` per ``period`` seconds,
        kept in the store so that every instance counts alike: False when over it. A window
        starts at a key's first request; one conditional UPDATE decides between racers, and
        an INSERT the first time."""
        windows = rate_windows.c
        fresh = windows.expires <= now
        count_one = (
            rate_windows.update()
            .where(windows.key == key, fresh | (windows.count < amount))
            .values(
                count=sa.case((fresh, 1), else_=windows.count + 1),
                expires=sa.case((fresh, now + period), else_=windows.expires),
            )
        )
        with self.begin() as conn:
            for _ in range(2):  # a racer's first insert wins: this one then counts on its row
                if conn.execute(count_one).rowcount:
                    return True
                if conn.scalar(sa.select(windows.key).where(windows.key == key)) is not None:
                    return False
                conn.execute(rate_windows.delete().where(fresh))  # windows run out: forgotten
                try:
                    with conn.begin_nested():
                        conn.execute(
                            rate_windows.insert().values(key=key, expires=now + period, count=1)
                        )
                except sa.exc.IntegrityError:
                    continue
                return amount > 0
            return False

    def take_lease(self, name: str, holder: str, *, now: datetime, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until now + seconds; False while
        another holder's lease runs. One conditional UPDATE decides between racers."""
        until = now + timedelta(seconds=seconds)
        with self.begin() as conn:
            renewed = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires=until)
            ).rowcount
            if renewed:
                return True
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.expires < now)
                .values(holder=holder, taken=now, expires=until)
            ).rowcount
            if taken:
                return True
            if conn.scalar(sa.select(leases.c.name).where(leases.c.name == name)) is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        leases.insert().values(name=name, holder=holder, taken=now, expires=until)
                    )
            except sa.exc.IntegrityError:
                return False  # another instance inserted it first
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))

    def lease(self, name: str) -> tuple[str, datetime, datetime] | None:
        """(holder, taken, expires) of a lease, or None."""
        with self.begin() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else (row.holder, aware(row.taken), aware(row.expires))

    def heartbeat(
        self, name: str, *, pid: int, host: str, url: str, started: datetime, now: datetime
    ) -> None:
        """Record that the instance ``name`` is alive (for `newsdrop status`), and forget
        instances stopped or unseen for a day (a service's name includes its port when
        [cluster] instance is unset, so old names would pile up over months)."""
        values = {
            "pid": pid,
            "host": host,
            "url": url,
            "started": started,
            "seen": now,
            "stopped": None,
        }
        with self.begin() as conn:
            gone = (instances.c.stopped < now - FORGET_INSTANCES) | (
                instances.c.seen < now - FORGET_INSTANCES
            )
            conn.execute(instances.delete().where(gone, instances.c.name != name))
            if conn.execute(
                instances.update().where(instances.c.name == name).values(values)
            ).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(instances.insert().values(name=name, **values))
            except sa.exc.IntegrityError:
                conn.execute(instances.update().where(instances.c.name == name).values(values))

    def instance_stopped(self, name: str, *, now: datetime) -> None:
        with self.begin() as conn:
            conn.execute(instances.update().where(instances.c.name == name).values(stopped=now))

    def instances(self) -> list[dict[str, Any]]:
        with self.begin() as conn:
            rows = conn.execute(sa.select(instances).order_by(instances.c.name)).all()
        return [
            {
                "name": row.name,
                "pid": row.pid,
                "host": row.host,
                "url": row.url,
                "started": aware(row.started),
                "seen": aware(row.seen),
                "stopped": aware(row.stopped) if row.stopped else None,
            }
            for row in rows
        ]


def claimer_dead(table: sa.Table, *, stamp: datetime, lease_seconds: float) -> Any:
    """Whether a row's claim was made by a `newsdrop run` instance now known dead: not seen
    for ``lease_seconds``, or started again since it claimed the row."""
    return sa.exists().where(
        instances.c.name == table.c.claimed_by,
        (instances.c.seen < stamp - timedelta(seconds=lease_seconds))
        | (instances.c.started > table.c.changed),
    )


Claimed = TypeVar("Claimed")


def claim_rows(
    store: StoreBase,
    read: Callable[[Connection], Sequence[Any]],
    take: Callable[[Connection, Sequence[Any]], list[Claimed]],
) -> list[Claimed]:
    """Claim what ``read`` finds sendable (its keys) with ``take`` (which re-checks each row
    and returns those it took), in one transaction; empty only when nothing is sendable.
    A claim that lost every row it read to another run's claim (on SQLite the read and
    the write are not one snapshot) reads again: an empty claim taken for an empty queue
    would end a run with mail still queued. Each lost read means other runs took those
    rows, so the queue shrinks and this ends."""
    while True:
        with store.begin() as conn:
            wanted = read(conn)
            if not wanted:
                return []
            claimed = take(conn, wanted)
        if claimed:
            return claimed


FORGET_INSTANCES = timedelta(days=1)  # `status` lists instances seen within this
