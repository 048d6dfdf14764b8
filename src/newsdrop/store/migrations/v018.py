"""Schema version 18: each subscriber's language (``subscribers.language``, a tag such as
"uk"; empty: the site's), chosen from the browser's Accept-Language at subscribe time and
on their manage page: the language of their mails."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(
        sa.text("ALTER TABLE subscribers ADD COLUMN language VARCHAR(35) NOT NULL DEFAULT ''")
    )
