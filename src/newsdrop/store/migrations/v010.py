"""Schema version 10: a subscriber's own delivery hour and weekly day (NULL: the site's)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE subscribers ADD COLUMN send_at VARCHAR(5)"))
    conn.execute(sa.text("ALTER TABLE subscribers ADD COLUMN weekday VARCHAR(9)"))
