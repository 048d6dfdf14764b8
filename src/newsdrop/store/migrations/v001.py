"""Schema version 1: entries, problems, runs, tails, tags, build records, counters.

Frozen: the tables as this version made them, never the live ones in schema.py (a column
added there later would be created here too, and its own migration would then fail)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.store.times import UTCDateTime

meta = sa.MetaData()

entries = sa.Table(
    "entries",
    meta,
    sa.Column("id", sa.String(400), primary_key=True),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),
    # Not unique: a withdrawn entry keeps the path its file had, which a new file may take.
    sa.Column("source", sa.String(1000), nullable=False, index=True),
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("file_mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("file_hash", sa.String(64), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content_html", sa.Text, nullable=False),
    sa.Column("content_text", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("lang", sa.String(35), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array
    sa.Column("media", sa.Text, nullable=False),  # JSON array
    sa.Column("word_count", sa.Integer, nullable=False),
    sa.Column("reading_minutes", sa.Integer, nullable=False),
    sa.Column("last_paragraph", sa.Text, nullable=False),
    sa.Column("published", UTCDateTime, nullable=False, index=True),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False, index=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False, default=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    # Publication: seq orders entries as first published (archive pages are seq ranges);
    # both are set once, when the entry first becomes visible, and never change.
    sa.Column("seq", sa.Integer, nullable=True, unique=True),
    sa.Column("first_published", UTCDateTime, nullable=True, index=True),
    # The store revision of the last change to this row: what a build has not seen yet.
    sa.Column("rev", sa.Integer, nullable=False, default=0, index=True),
)

entry_tags = sa.Table(
    "entry_tags",
    meta,
    sa.Column("entry_id", sa.String(400), primary_key=True),
    sa.Column("tag_slug", sa.String(120), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=True),
    sa.Index("ix_entry_tags_slug_seq", "tag_slug", "seq"),
)

built_entries = sa.Table(
    "built_entries",
    meta,
    sa.Column("entry_id", sa.String(400), primary_key=True),
    sa.Column("tag_slugs", sa.Text, nullable=False),  # JSON array
    sa.Column("day", sa.String(10), nullable=False, index=True),  # YYYY-MM-DD, site's zone
    sa.Column("slug", sa.String(120), nullable=False),
)

counters = sa.Table(
    "counters",
    meta,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)

problems = sa.Table(
    "problems",
    meta,
    sa.Column("source", sa.String(1000), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("file_mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("seen", UTCDateTime, nullable=False),
)

ingest_runs = sa.Table(
    "ingest_runs",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("finished", UTCDateTime, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),  # JSON counts
)

tails = sa.Table(
    "tails",
    meta,
    sa.Column("source", sa.String(1000), primary_key=True),
    sa.Column("paragraph_hash", sa.String(64), nullable=False, index=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
)


def upgrade(conn: Connection) -> None:
    meta.create_all(conn)
    conn.execute(
        counters.insert(),
        [
            {"name": name, "value": 0}
            for name in ("revision", "seq", "built_revision", "archive_pages")
        ],
    )
