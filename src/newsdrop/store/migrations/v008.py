"""Schema version 8: whether a failed digest was the recipient's address's fault."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    # Older failures are not known to be the recipient's: none counts toward bouncing.
    conn.execute(
        sa.text("ALTER TABLE deliveries ADD COLUMN recipient_fault BOOLEAN NOT NULL DEFAULT FALSE")
    )
