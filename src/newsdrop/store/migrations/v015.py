"""Schema version 15: ``bounce_events.kind`` holds "unsubscribe" (a mail to the
List-Unsubscribe address), eleven characters: widened from 10 to 16 (PostgreSQL enforces
the length; SQLite does not)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE bounce_events ALTER COLUMN kind TYPE VARCHAR(16)"))
