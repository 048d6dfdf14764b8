"""Schema version 11: request limits kept in the store, so that every instance counts alike."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

meta = sa.MetaData()

rate_windows = sa.Table(
    "rate_windows",
    meta,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("expires", sa.Float, nullable=False, index=True),  # seconds since the epoch
    sa.Column("count", sa.Integer, nullable=False),
)


def upgrade(conn: Connection) -> None:
    meta.create_all(conn)
