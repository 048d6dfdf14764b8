"""Schema version 2: subscribers and the digest ledger.

Frozen: the tables as this version made them, never the live ones in schema.py (a column
added there later would be created here too, and its own migration would then fail)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.times import UTCDateTime

meta = sa.MetaData()

subscribers = sa.Table(
    "subscribers",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("frequency", sa.String(10), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    sa.Column("activated", UTCDateTime, nullable=True),
    # The subscriber's latest period (kept with the ledger row, in one transaction), so that
    # finding what is due costs one read of this table, however long the ledger grows.
    sa.Column("period_end", UTCDateTime, nullable=True),
    sa.Column("period_seq", sa.Integer, nullable=False, default=0),
)

deliveries = sa.Table(
    "deliveries",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("due", UTCDateTime, nullable=False),  # the period's name: its due instant
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    # What the digest holds: the entries with seq in (seq_start, seq_end]. Seqs are given
    # when entries are committed, so no entry falls between two digests, however a long
    # ingest and a send interleave.
    sa.Column("seq_start", sa.Integer, nullable=False),
    sa.Column("seq_end", sa.Integer, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, index=True),
    sa.Column("entry_ids", sa.Text, nullable=False),  # JSON: the contents, frozen at creation
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt", UTCDateTime, nullable=True),  # when a retrying one is due again
    sa.Column("reply", sa.Text, nullable=False, default=""),
    sa.Column("claim", sa.String(32), nullable=True, index=True),  # the run sending it
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    sa.UniqueConstraint("subscriber_id", "due", name="uq_deliveries_period"),
    # Two runs that read the same last period can record only one next period.
    sa.UniqueConstraint("subscriber_id", "window_start", name="uq_deliveries_follows"),
)


def upgrade(conn: Connection) -> None:
    meta.create_all(conn)
