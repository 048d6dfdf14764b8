"""Schema version 6: what judged a problem file, so that it is parsed again only when that changes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    # Problems of older versions have no fingerprint: each is judged again once.
    for column in ("file_hash", "judged"):
        conn.execute(
            sa.text(f"ALTER TABLE problems ADD COLUMN {column} VARCHAR(64) NOT NULL DEFAULT ''")
        )
