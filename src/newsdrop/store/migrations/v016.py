"""Schema version 16: tag slugs keep their script ("україна", not ""), so tags in any
language get their feeds. Each live entry's tag rows are made again from its tags with the
slug rule of this version, and an entry whose slugs changed is marked changed (a new
revision), so that the next build writes its new tag feeds and removes the old."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.model import tag_names

entries = sa.table(
    "entries",
    sa.column("id"),
    sa.column("tags"),
    sa.column("seq"),
    sa.column("withdrawn"),
    sa.column("rev"),
)
entry_tags = sa.table("entry_tags", sa.column("entry_id"), sa.column("tag_slug"), sa.column("seq"))
counters = sa.table("counters", sa.column("name"), sa.column("value"))


def upgrade(conn: Connection) -> None:
    had: dict[str, set[str]] = {}
    for row in conn.execute(sa.select(entry_tags.c.entry_id, entry_tags.c.tag_slug)):
        had.setdefault(row.entry_id, set()).add(row.tag_slug)
    live = conn.execute(
        sa.select(entries.c.id, entries.c.tags, entries.c.seq).where(
            entries.c.withdrawn == sa.false()
        )
    ).all()
    changed = [
        (row.id, row.seq, slugs)
        for row in live
        if (slugs := set(tag_names(json.loads(row.tags or "[]")))) != had.get(row.id, set())
    ]
    if not changed:
        return
    revision = (
        conn.scalar(sa.select(counters.c.value).where(counters.c.name == "revision")) or 0
    ) + 1
    conn.execute(counters.update().where(counters.c.name == "revision").values(value=revision))
    for entry_id, seq, slugs in changed:
        conn.execute(entry_tags.delete().where(entry_tags.c.entry_id == entry_id))
        if slugs:
            conn.execute(
                entry_tags.insert(),
                [{"entry_id": entry_id, "tag_slug": slug, "seq": seq} for slug in sorted(slugs)],
            )
        conn.execute(entries.update().where(entries.c.id == entry_id).values(rev=revision))
