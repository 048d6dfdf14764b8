"""Schema version 17: what normalising guessed about an entry (``entries.notes``, a JSON
array: a date's ambiguous zone abbreviation read one way), for `newsdrop status`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE entries ADD COLUMN notes TEXT NOT NULL DEFAULT '[]'"))
