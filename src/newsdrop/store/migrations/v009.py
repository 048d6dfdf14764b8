"""Schema version 9: the instance that claimed a confirmation mail, as deliveries have."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE confirmations ADD COLUMN claimed_by VARCHAR(200)"))
