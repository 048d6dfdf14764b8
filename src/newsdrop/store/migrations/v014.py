"""Schema version 14: each returned message's fingerprint (``returned_mail.fingerprint``, a
SHA-256 of the address it came to and its bytes, unique), so that the same message handed
over twice (an MTA retrying after a crash lost its answer, a Maildir file a crash left in
place) is kept and acted on once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE returned_mail ADD COLUMN fingerprint VARCHAR(64)"))
    conn.execute(
        sa.text("CREATE UNIQUE INDEX ix_returned_mail_fingerprint ON returned_mail (fingerprint)")
    )
