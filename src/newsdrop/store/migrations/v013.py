"""Schema version 13: returned mail. Each message is stored before it is acted on
(``returned_mail``), each act recorded with the delivery it belongs to (``bounce_events``),
and a subscriber's soft-bounce score, which halves with time (``soft_score``, as of
``soft_at``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.times import UTCDateTime

meta = sa.MetaData()

returned_mail = sa.Table(
    "returned_mail",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received", UTCDateTime, nullable=False, index=True),
    sa.Column("envelope_to", sa.String(320), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(10), nullable=False, index=True),  # "stored" or "handled"
    sa.Column("outcome", sa.Text, nullable=False),
)

bounce_events = sa.Table(
    "bounce_events",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False, index=True),
    sa.Column("delivery_id", sa.Integer, nullable=True),
    sa.Column("returned_id", sa.Integer, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("kind", sa.String(10), nullable=False),  # "hard", "soft" or "complaint"
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)


def upgrade(conn: Connection) -> None:
    moment = "VARCHAR(26)" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    conn.execute(sa.text("ALTER TABLE subscribers ADD COLUMN soft_score FLOAT NOT NULL DEFAULT 0"))
    conn.execute(sa.text(f"ALTER TABLE subscribers ADD COLUMN soft_at {moment}"))
    meta.create_all(conn)
