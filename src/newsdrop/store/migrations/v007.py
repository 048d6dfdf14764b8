"""Schema version 7: confirmation mails, kept until sent.

Frozen: the tables as this version made them, never the live ones in schema.py (a column
added there later would be created here too, and its own migration would then fail)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.times import UTCDateTime

meta = sa.MetaData()

confirmations = sa.Table(
    "confirmations",
    meta,
    sa.Column("subscriber_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(12), nullable=False, index=True),  # as deliveries.state
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt", UTCDateTime, nullable=True),
    sa.Column("reply", sa.Text, nullable=False, default=""),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("requested", UTCDateTime, nullable=False),  # the subscribe request it answers
    sa.Column("changed", UTCDateTime, nullable=False),
    sa.Column("sent", UTCDateTime, nullable=True),  # its link's validity counts from here
)


def upgrade(conn: Connection) -> None:
    # Pending subscribers from before this version get no mail queued: whether theirs went
    # out is unknown, and a repeat subscribe queues one.
    meta.create_all(conn)
