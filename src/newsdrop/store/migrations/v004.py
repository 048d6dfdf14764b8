"""Schema version 4: the instance that claimed a digest being sent."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN claimed_by VARCHAR(200)"))
