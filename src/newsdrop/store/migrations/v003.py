"""Schema version 3: leases and instances, for several instances on one store.

Frozen: the tables as this version made them, never the live ones in schema.py (a column
added there later would be created here too, and its own migration would then fail)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.times import UTCDateTime

meta = sa.MetaData()

leases = sa.Table(
    "leases",
    meta,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("taken", UTCDateTime, nullable=False),  # when this holder took it
    sa.Column("expires", UTCDateTime, nullable=False),
)

instances = sa.Table(
    "instances",
    meta,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("seen", UTCDateTime, nullable=False),
    sa.Column("stopped", UTCDateTime, nullable=True),
)


def upgrade(conn: Connection) -> None:
    meta.create_all(conn)
