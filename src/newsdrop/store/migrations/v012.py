"""Schema version 12: subscribers in charge. A pause (``paused_until``), a version for their
manage and feed links (rotating it kills the old links), a kind and an address for the
queue of a subscriber's own mails (confirmation, welcome, account link, new address), the
record of every change to a subscriber's choices, and the suppression list of deleted
addresses (keyed hashes only)."""

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

suppressions = sa.Table(
    "suppressions",
    meta,
    sa.Column("key", sa.String(64), primary_key=True),  # HMAC of the address, never the address
    sa.Column("since", UTCDateTime, nullable=False),
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
    conn.execute(sa.text("ALTER TABLE confirmations ADD COLUMN address VARCHAR(320)"))
    meta.create_all(conn)
