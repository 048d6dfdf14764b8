"""Queries the build makes: published entries by seq, tag and day, and what the last build wrote."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsdrop.model import (
    StoredEntry,
)
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import aware, chunks, stored_entry
from newsdrop.store.schema import (
    built_entries,
    counters,
    entries,
    entry_tags,
)

log = logging.getLogger(__name__)


class PublicationReads(StoreBase):
    """What feeds and pages read, and what the last build published."""

    def published(
        self, *, min_seq: int = 1, max_seq: int | None = None, limit: int | None = None
    ) -> list[StoredEntry]:
        """Visible published entries with seq in [min_seq, max_seq], newest first, without
        their text version."""
        query = (
            sa.select(*_FEED_COLUMNS)
            .where(entries.c.seq >= min_seq, entries.c.withdrawn.is_(False))
            .order_by(entries.c.seq.desc())
        )
        if max_seq is not None:
            query = query.where(entries.c.seq <= max_seq)
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as conn:
            return [stored_entry(row) for row in conn.execute(query)]

    def tagged(self, tag_slug: str, *, limit: int) -> list[StoredEntry]:
        """The newest visible entries carrying a tag (``limit`` rows of one index, then
        those), without their text version."""
        with self.begin() as conn:
            ids = list(
                conn.scalars(
                    sa.select(entry_tags.c.entry_id)
                    .where(entry_tags.c.tag_slug == tag_slug, entry_tags.c.seq.is_not(None))
                    .order_by(entry_tags.c.seq.desc())
                    .limit(limit)
                )
            )
            if not ids:
                return []
            rows = conn.execute(
                sa.select(*_FEED_COLUMNS)
                .where(entries.c.id.in_(ids))
                .order_by(entries.c.seq.desc())
            )
            return [stored_entry(row) for row in rows]

    def tag_slugs(self) -> list[str]:
        """Every tag of a visible published entry."""
        query = (
            sa.select(entry_tags.c.tag_slug)
            .where(entry_tags.c.seq.is_not(None))
            .distinct()
            .order_by(entry_tags.c.tag_slug)
        )
        with self.begin() as conn:
            return list(conn.scalars(query))

    def first_published_between(self, start: datetime, end: datetime) -> list[StoredEntry]:
        """Visible entries first published in [start, end), newest first (a day's page),
        without their content."""
        query = (
            sa.select(*_LISTING_COLUMNS)
            .where(*_first_published_in(start, end))
            .order_by(entries.c.seq.desc())
        )
        with self.begin() as conn:
            return [stored_entry(row) for row in conn.execute(query)]

    def topic_counts(self, since: datetime, now: datetime) -> dict[str, int]:
        """How many visible entries first published since ``since`` carry each tag (as
        subscribers choose them: by name, ignoring case; the most used spelling shown)."""
        query = sa.select(entries.c.tags).where(*_first_published_in(since, now))
        counts: dict[str, int] = {}
        spellings: dict[str, dict[str, int]] = {}
        with self.begin() as conn:
            for (tags,) in conn.execute(query):
                for tag in set(json.loads(tags)):
                    key = tag.lower()
                    counts[key] = counts.get(key, 0) + 1
                    spelled = spellings.setdefault(key, {})
                    spelled[tag] = spelled.get(tag, 0) + 1
        return {max(spellings[key], key=spellings[key].__getitem__): n for key, n in counts.items()}

    def has_published_between(self, start: datetime, end: datetime) -> bool:
        """Whether ``first_published_between`` has any entry."""
        query = sa.select(entries.c.id).where(*_first_published_in(start, end))
        with self.begin() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def changed_since(self, revision: int) -> list[StoredEntry]:
        """Every entry (withdrawn too) changed after a store revision, by id, without its
        content (what a build's walk needs to know of it)."""
        query = sa.select(*_LISTING_COLUMNS).where(
            entries.c.rev > revision
        )  # no ORDER BY: the index
        with self.begin() as conn:
            found = [stored_entry(row) for row in conn.execute(query)]
        return sorted(found, key=lambda stored: stored.entry.id)

    def seq_pages(self, size: int) -> Iterator[list[StoredEntry]]:
        """Every published entry (withdrawn too) in publication order, ``size`` seqs a chunk,
        without content: chunk k is exactly archive page k. Read about 1,000 rows a query
        (a query a chunk was a fifth of a 10,000-entry build's walk)."""
        last = self.max_seq()
        step = size * max(1, 1000 // size)
        for low in range(1, last + 1, step):
            query = (
                sa.select(*_LISTING_COLUMNS)
                .where(entries.c.seq >= low, entries.c.seq < low + step)
                .order_by(entries.c.seq)
            )
            with self.begin() as conn:
                rows = [stored_entry(row) for row in conn.execute(query)]
            chunks: list[list[StoredEntry]] = [[] for _ in range(0, step, size)]
            for stored in rows:
                chunks[((stored.seq or low) - low) // size].append(stored)
            yield from chunks[: (min(low + step, last + 1) - low + size - 1) // size]

    def unpublished(self) -> list[StoredEntry]:
        """Entries not (yet) published: held for a future date, or withdrawn before it."""
        with self.begin() as conn:
            return [
                stored_entry(row)
                for row in conn.execute(sa.select(entries).where(entries.c.seq.is_(None)))
            ]

    def count_entries(self) -> int:
        with self.begin() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(entries)) or 0)

    def max_seq(self) -> int:
        with self.begin() as conn:
            return int(conn.scalar(sa.select(sa.func.max(entries.c.seq))) or 0)

    def counter(self, name: str) -> int:
        with self.begin() as conn:
            return int(conn.scalar(sa.select(counters.c.value).where(counters.c.name == name)) or 0)

    def set_counter(self, name: str, value: int) -> None:
        with self.begin() as conn:
            updated = conn.execute(
                counters.update().where(counters.c.name == name).values(value=value)
            )
            if updated.rowcount == 0:
                conn.execute(counters.insert().values(name=name, value=value))

    def built(self, entry_ids: Sequence[str]) -> dict[str, tuple[list[str], str, str]]:
        """entry id -> (tag slugs, day, slug) as the last build published it."""
        found: dict[str, tuple[list[str], str, str]] = {}
        with self.begin() as conn:
            for chunk in chunks(list(entry_ids), 500):
                for row in conn.execute(
                    sa.select(built_entries).where(built_entries.c.entry_id.in_(chunk))
                ):
                    found[row.entry_id] = (json.loads(row.tag_slugs), row.day, row.slug)
        return found

    def has_built_day(self, day: str) -> bool:
        with self.begin() as conn:
            found = conn.scalar(
                sa.select(built_entries.c.day).where(built_entries.c.day == day).limit(1)
            )
        return found is not None

    def built_days(self) -> list[str]:
        """Days (site time zone) on which the last build published something, newest first."""
        with self.begin() as conn:
            return list(
                conn.scalars(
                    sa.select(built_entries.c.day)
                    .where(built_entries.c.day != "")
                    .distinct()
                    .order_by(built_entries.c.day.desc())
                )
            )

    def record_build(
        self,
        built: dict[str, tuple[list[str], str, str] | None],
        *,
        revision: int,
        archive_pages: int,
        page_size: int,
        fingerprint: int | None = None,
    ) -> None:
        """Remember what a build published (None: no longer published) and how far it got,
        and the fingerprint of the settings and templates it used (build.output_fingerprint)."""
        with self.begin() as conn:
            ids = list(built)
            for chunk in chunks(ids, 500):
                conn.execute(built_entries.delete().where(built_entries.c.entry_id.in_(chunk)))
            rows = [
                {"entry_id": key, "tag_slugs": json.dumps(v[0]), "day": v[1], "slug": v[2]}
                for key, v in built.items()
                if v is not None
            ]
            if rows:
                conn.execute(built_entries.insert(), rows)
            for name, value in (
                ("built_revision", revision),
                ("archive_pages", archive_pages),
                ("built_page_size", page_size),
                *([("built_fingerprint", fingerprint)] if fingerprint is not None else []),
            ):
                updated = conn.execute(
                    counters.update().where(counters.c.name == name).values(value=value)
                )
                if updated.rowcount == 0:
                    conn.execute(counters.insert().values(name=name, value=value))

    def seq_at(self, moment: datetime) -> int:
        """The last seq first published at or before ``moment`` (0 if none)."""
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.max(entries.c.seq)).where(entries.c.first_published <= moment)
            )
        return int(value or 0)

    def published_after_seq(self, low: int, high: int) -> list[StoredEntry]:
        """Visible entries with seq in (low, high], newest first: one digest's contents."""
        query = (
            sa.select(entries)
            .where(entries.c.seq > low, entries.c.seq <= high, entries.c.withdrawn.is_(False))
            .order_by(entries.c.seq.desc())
        )
        with self.begin() as conn:
            return [stored_entry(row) for row in conn.execute(query)]

    def entries_by_id(self, entry_ids: Sequence[str]) -> list[StoredEntry]:
        """These entries, newest first (the order of a digest), leaving out any withdrawn
        since the digest was recorded."""
        found: list[StoredEntry] = []
        with self.begin() as conn:
            for chunk in chunks(list(entry_ids), 500):
                query = sa.select(entries).where(
                    entries.c.id.in_(chunk), entries.c.withdrawn.is_(False)
                )
                found += [stored_entry(row) for row in conn.execute(query)]
        return sorted(found, key=lambda s: s.seq or 0, reverse=True)

    def next_publication(self, *, now: datetime) -> datetime | None:
        """When the earliest future-dated live entry comes due (None: none is waiting)."""
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.min(entries.c.published)).where(
                    entries.c.withdrawn.is_(False), entries.c.published > now
                )
            )
        return None if value is None else aware(value)


def _first_published_in(start: datetime, end: datetime) -> tuple[Any, ...]:
    """Visible entries first published in [start, end)."""
    return (
        entries.c.first_published >= start,
        entries.c.first_published < end,
        entries.c.withdrawn.is_(False),
    )


_FEED_OMITS = ("content_text", "last_paragraph", "notes")  # never in a feed or page


_LISTING_OMITS = ("content_html", *_FEED_OMITS)  # nor in a list of entries


_FEED_COLUMNS = [c for c in entries.c if c.name not in _FEED_OMITS]


_LISTING_COLUMNS = [c for c in entries.c if c.name not in _LISTING_OMITS]
