"""Schema version 12: subscribers in charge. A pause (``paused_until``), a version for their
manage and feed links (rotating it kills the old links), a kind for the transactional mail
queue (confirmation, welcome), and the record of every change to a subscriber's choices."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.times import UTCDateTime

meta = sa.MetaData()

subscriber_changes = sa.Table(
    "subscriber_changes",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("by", sa.String(16), nullable=False),  # "subscriber" or "operator"
    sa.Column("change", sa.Text, nullable=False),  # in words, never the address
)


def upgrade(conn: Connection) -> None:
    moment = "VARCHAR(26)" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    conn.execute(sa.text(f"ALTER TABLE subscribers ADD COLUMN paused_until {moment}"))
    conn.execute(
        sa.text("ALTER TABLE subscribers ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0")
    )
    conn.execute(
        sa.text("ALTER TABLE confirmations ADD COLUMN kind VARCHAR(12) NOT NULL DEFAULT 'confirm'")
    )
    meta.create_all(conn)
