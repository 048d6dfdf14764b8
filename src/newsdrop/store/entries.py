"""Queries on files and entries: what ingest reads and writes (ingest is the one writer of entries)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsdrop.model import (
    StoredEntry,
    paragraph_hash,
    tag_names,
)
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import chunks, stored_entry
from newsdrop.store.schema import (
    counters,
    entries,
    entry_tags,
    problems,
    tails,
)
from newsdrop.store.values import (
    EntryWrite,
    FileState,
    Identity,
)

log = logging.getLogger(__name__)


class EntryQueries(StoreBase):
    """Files in seeds/ and the entries made of them: what ingest reads and writes."""

    def file_states(self) -> dict[str, FileState]:
        """Every known source file: entries (live and withdrawn) and problems."""
        states: dict[str, FileState] = {}
        with self.begin() as conn:
            for row in conn.execute(
                sa.select(
                    problems.c.source,
                    problems.c.file_size,
                    problems.c.file_mtime_ns,
                    problems.c.file_hash,
                    problems.c.judged,
                )
            ):
                states[row.source] = FileState(
                    None, row.file_size, row.file_mtime_ns, row.file_hash, False, row.judged
                )
            for known in conn.execute(
                sa.select(
                    entries.c.id,
                    entries.c.source,
                    entries.c.file_size,
                    entries.c.file_mtime_ns,
                    entries.c.file_hash,
                    entries.c.withdrawn,
                ).order_by(entries.c.withdrawn.desc())  # live entries last: they win
            ):
                states[known.source] = FileState(
                    known.id, known.file_size, known.file_mtime_ns, known.file_hash, known.withdrawn
                )
        return states

    def entry_identity(self, source: str) -> Identity | None:
        """What an edit of this file must keep: the id, slug and first-seen time."""
        with self.begin() as conn:
            row = conn.execute(
                sa.select(
                    entries.c.id,
                    entries.c.slug,
                    entries.c.content_hash,
                    entries.c.updated,
                    entries.c.first_seen,
                )
                .where(entries.c.source == source)
                .order_by(entries.c.withdrawn, entries.c.changed.desc())
            ).first()
        if row is None:
            return None
        return Identity(row.id, row.slug, row.content_hash, row.updated, row.first_seen)

    def entry_media(self, source: str) -> tuple[str, ...]:
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(entries.c.media).where(
                    entries.c.source == source, entries.c.withdrawn.is_(False)
                )
            )
        return tuple(json.loads(value or "[]"))

    def mark_changed(self, source: str, *, now: datetime) -> None:
        """Give the live entry of a file a new revision: the next build redoes its files."""
        with self.begin() as conn:
            revision = _bump(conn, "revision")
            conn.execute(
                entries.update()
                .where(entries.c.source == source, entries.c.withdrawn.is_(False))
                .values(rev=revision, changed=now)
            )

    def has_entry_id(self, entry_id: str) -> bool:
        with self.begin() as conn:
            return conn.scalar(sa.select(entries.c.id).where(entries.c.id == entry_id)) is not None

    def taken_slugs(self) -> set[str]:
        with self.begin() as conn:
            return set(conn.scalars(sa.select(entries.c.slug)))

    def write_entries(self, writes: Sequence[EntryWrite], *, now: datetime) -> None:
        """Insert new entries and update existing ones (matched by id), in one transaction."""
        if not writes:
            return
        with self.begin() as conn:
            existing = set()
            for chunk in chunks([w.entry.id for w in writes], 500):
                existing |= set(
                    conn.scalars(sa.select(entries.c.id).where(entries.c.id.in_(chunk)))
                )
            revision = _bump(conn, "revision")
            rows = [{**_entry_row(w, now), "rev": revision} for w in writes]
            inserts = [r for r in rows if r["id"] not in existing]
            updates = [r for r in rows if r["id"] in existing]
            # A source or slug may move between entries in one batch (a rename); free them first.
            sources = [r["source"] for r in rows]
            for chunk in chunks(sources, 500):
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))
            if inserts:
                conn.execute(entries.insert(), inserts)
            _retag(conn, [(w.entry.id, w.entry.tags) for w in writes])
            for row in updates:
                conn.execute(
                    entries.update()
                    .where(entries.c.id == row["id"])
                    .values({k: v for k, v in row.items() if k not in ("id", "first_seen")})
                )
            tail_rows = {
                w.source: {
                    "source": w.source,
                    "paragraph_hash": paragraph_hash(w.entry.last_paragraph),
                    "body_hash": w.entry.content_hash,
                }
                for w in writes
                if w.entry.last_paragraph
            }
            for chunk in chunks(sources, 500):
                conn.execute(tails.delete().where(tails.c.source.in_(chunk)))
            if tail_rows:
                conn.execute(tails.insert(), list(tail_rows.values()))

    def withdraw(self, sources: Iterable[str], *, now: datetime) -> int:
        """Mark the entries of vanished files withdrawn; they stay in the store."""
        count = 0
        sources = list(sources)
        if not sources:
            return 0
        with self.begin() as conn:
            revision = _bump(conn, "revision")
            for chunk in chunks(sources, 500):
                leaving = sa.select(entries.c.id).where(
                    entries.c.source.in_(chunk), entries.c.withdrawn.is_(False)
                )
                conn.execute(entry_tags.delete().where(entry_tags.c.entry_id.in_(leaving)))
                result = conn.execute(
                    entries.update()
                    .where(entries.c.source.in_(chunk), entries.c.withdrawn.is_(False))
                    .values(withdrawn=True, changed=now, rev=revision)
                )
                count += result.rowcount
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))
                conn.execute(tails.delete().where(tails.c.source.in_(chunk)))
        return count

    def move_source(
        self, entry_id: str, new: str, *, size: int, mtime_ns: int, now: datetime
    ) -> None:
        """A renamed file: the entry keeps its id and follows the file."""
        with self.begin() as conn:
            conn.execute(problems.delete().where(problems.c.source == new))
            old = conn.scalar(sa.select(entries.c.source).where(entries.c.id == entry_id))
            conn.execute(tails.delete().where(tails.c.source == new))
            conn.execute(tails.update().where(tails.c.source == old).values(source=new))
            conn.execute(
                entries.update()
                .where(entries.c.id == entry_id)
                .values(
                    source=new,
                    file_size=size,
                    file_mtime_ns=mtime_ns,
                    withdrawn=False,
                    changed=now,
                    rev=_bump(conn, "revision"),
                )
            )
            tags = conn.scalar(sa.select(entries.c.tags).where(entries.c.id == entry_id))
            _retag(conn, [(entry_id, tuple(json.loads(tags or "[]")))])

    def touch_files(self, stats: Sequence[tuple[str, int, int]]) -> None:
        """Record new (size, mtime) for files whose bytes did not change."""
        with self.begin() as conn:
            for source, size, mtime_ns in stats:
                conn.execute(
                    entries.update()
                    .where(entries.c.source == source)
                    .values(file_size=size, file_mtime_ns=mtime_ns)
                )

    def publish_due(self, *, now: datetime) -> int:
        """Give every entry that is visible at ``now`` and not yet published its place
        (``seq``) and first-published time. Returns how many were published."""
        with self.begin() as conn:
            due = list(
                conn.scalars(
                    sa.select(entries.c.id)
                    .where(
                        entries.c.seq.is_(None),
                        entries.c.withdrawn.is_(False),
                        entries.c.published <= now,
                    )
                    .order_by(entries.c.published, entries.c.id)
                )
            )
            if not due:
                return 0
            revision = _bump(conn, "revision")
            last = _bump(conn, "seq", by=len(due))
            conn.execute(
                entries.update()
                .where(entries.c.id == sa.bindparam("entry_id"))
                .values(
                    seq=sa.bindparam("new_seq"),
                    first_published=sa.bindparam("at"),
                    rev=sa.bindparam("new_rev"),
                ),
                [
                    {
                        "entry_id": entry_id,
                        "new_seq": last - len(due) + n,
                        "at": now,
                        "new_rev": revision,
                    }
                    for n, entry_id in enumerate(due, start=1)
                ],
            )
            conn.execute(
                entry_tags.update()
                .where(entry_tags.c.entry_id == sa.bindparam("tagged_id"))
                .values(seq=sa.bindparam("new_seq")),
                [
                    {"tagged_id": entry_id, "new_seq": last - len(due) + n}
                    for n, entry_id in enumerate(due, start=1)
                ],
            )
        return len(due)

    def entries(
        self,
        *,
        include_withdrawn: bool = False,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> list[StoredEntry]:
        """Entries newest first; with ``now``, documents dated after it (held) are left out."""
        query = sa.select(entries).order_by(entries.c.published.desc(), entries.c.id)
        if not include_withdrawn:
            query = query.where(entries.c.withdrawn.is_(False))
        if now is not None:
            query = query.where(entries.c.published <= now)
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as conn:
            return [stored_entry(row) for row in conn.execute(query)]

    def learned_boilerplate(self, *, min_documents: int = 3) -> frozenset[str]:
        """Paragraph hashes that end at least ``min_documents`` documents with different bodies
        (byte-identical copies count once, and so do the versions of one file)."""
        with self.begin() as conn:
            return frozenset(
                conn.scalars(
                    sa.select(tails.c.paragraph_hash)
                    .group_by(tails.c.paragraph_hash)
                    .having(sa.func.count(sa.distinct(tails.c.body_hash)) >= min_documents)
                )
            )


def _entry_row(write: EntryWrite, now: datetime) -> dict[str, Any]:
    e = write.entry
    return {
        "id": e.id,
        "slug": e.slug,
        "source": write.source,
        "file_size": write.size,
        "file_mtime_ns": write.mtime_ns,
        "file_hash": write.file_hash,
        "content_hash": e.content_hash,
        "title": e.title,
        "summary": e.summary,
        "content_html": e.content_html,
        "content_text": e.content_text,
        "author": e.author,
        "lang": e.lang,
        "tags": json.dumps(list(e.tags), ensure_ascii=False),
        "media": json.dumps(list(e.media), ensure_ascii=False),
        "notes": json.dumps(list(e.notes), ensure_ascii=False),
        "word_count": e.word_count,
        "reading_minutes": e.reading_minutes,
        "last_paragraph": e.last_paragraph,
        "published": e.published,
        "updated": e.updated,
        "first_seen": write.first_seen,
        "withdrawn": False,
        "changed": now,
    }


def _retag(conn: Connection, tagged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
    """Replace the tag rows of these (live) entries, carrying each entry's seq."""
    ids = [entry_id for entry_id, _ in tagged]
    seqs: dict[str, int | None] = {}
    for chunk in chunks(ids, 500):
        conn.execute(entry_tags.delete().where(entry_tags.c.entry_id.in_(chunk)))
        found = conn.execute(sa.select(entries.c.id, entries.c.seq).where(entries.c.id.in_(chunk)))
        seqs.update((row.id, row.seq) for row in found)
    rows = {
        (entry_id, slug): {"entry_id": entry_id, "tag_slug": slug, "seq": seqs.get(entry_id)}
        for entry_id, tags in tagged
        for slug in tag_names(tags)
    }
    if rows:
        conn.execute(entry_tags.insert(), list(rows.values()))


def _bump(conn: Connection, name: str, *, by: int = 1) -> int:
    """Advance a counter inside the caller's transaction (which serialises writers)."""
    conn.execute(
        counters.update().where(counters.c.name == name).values(value=counters.c.value + by)
    )
    return int(conn.scalar(sa.select(counters.c.value).where(counters.c.name == name)) or 0)
