"""Schema version 5: one sending rate for the store (a token bucket).

Frozen: the tables as this version made them, never the live ones in schema.py (a column
added there later would be created here too, and its own migration would then fail)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

meta = sa.MetaData()

rate_buckets = sa.Table(
    "rate_buckets",
    meta,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("next_free", sa.Float, nullable=False),  # seconds since the epoch
)


def upgrade(conn: Connection) -> None:
    meta.create_all(conn)
    conn.execute(rate_buckets.insert().values(name="mail", next_free=0.0))
