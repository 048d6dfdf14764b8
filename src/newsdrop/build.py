"""store -> feeds/: the head feeds, archives (RFC 5005), tag feeds and the pages for people.

A build is incremental: it asks the store which entries changed since the last
build (a store revision), and writes only the files those entries appear in —
the head feeds, the index, their archive page, their tag feeds, their own page
and their day page — so publishing one entry costs the same whatever the size
of the archive. ``full=True`` writes everything. Every file is written
atomically and only when its bytes change, so an unchanged file keeps its mtime
(and HTTP validators stay valid).

Archive pages are ranges of publication order: page k holds the entries with
seq in ((k-1)*N, k*N], N = ``[feeds] max_entries``, and is written once the
head holds N entries after it, so the head always holds between N and 2N-1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from newsdrop import feeds, templates
from newsdrop.config import Settings
from newsdrop.errors import BuildError
from newsdrop.feeds import FeedInfo, FeedItem
from newsdrop.model import StoredEntry, slugify
from newsdrop.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BuildReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    published: int = 0  # entries that became visible in this build

    @property
    def changed(self) -> list[str]:
        return self.written + self.removed

    def changed_feeds(self, base_url: str) -> list[str]:
        """URLs of the subscribable feeds this build changed: what a WebSub hub must hear."""
        names = [
            name
            for name in self.changed
            if name in ("atom.xml", "rss.xml", "feed.json") or name.startswith("tags/")
        ]
        return [base_url + name for name in names]


@dataclass(frozen=True, slots=True)
class Site:
    """What every page and feed needs to know about the instance."""

    title: str
    description: str
    base_url: str
    language: str
    author: str
    email: str
    hub: str
    timezone: str
    max_entries: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Site:
        s = settings.site
        return cls(
            title=s.title,
            description=s.description,
            base_url=s.base_url,
            language=s.language,
            author=s.author or s.title,
            email=s.email,
            hub=settings.feeds.websub_hub,
            timezone=s.timezone,
            max_entries=settings.feeds.max_entries,
        )

    @property
    def feed_urls(self) -> dict[str, str]:
        return {
            "atom": f"{self.base_url}atom.xml",
            "rss": f"{self.base_url}rss.xml",
            "json": f"{self.base_url}feed.json",
        }


def build(settings: Settings, store: Store, *, now: datetime, full: bool = False) -> BuildReport:
    """Bring feeds/ in line with the store; see the module docstring."""
    return Builder(settings, store).run(now=now, full=full)


class Builder:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.site = Site.from_settings(settings)
        self.root = settings.feeds_dir
        self.zone = ZoneInfo(settings.site.timezone)
        self.report = BuildReport()

    def run(self, *, now: datetime, full: bool) -> BuildReport:
        store, n = self.store, self.site.max_entries
        self.report.published = store.publish_due(now=now)
        target = store.counter("revision")
        previous = store.counter("built_revision")
        full = full or previous == 0 or not (self.root / "atom.xml").exists()
        dirty = store.changed_since(0 if full else previous)
        total = store.max_seq()
        pages = max(0, total // n - 1)
        old_pages = store.counter("archive_pages")
        if not dirty and pages == old_pages and not full:
            return self.report

        before = store.built([s.entry.id for s in dirty])
        visible = {s.entry.id: s for s in dirty if s.seq is not None and not s.withdrawn}

        head = store.published(min_seq=pages * n + 1)
        self.write_head(head, pages)
        self.write_index(head)

        if full:
            archive_pages: Iterable[int] = range(1, pages + 1)
        else:
            touched = {(s.seq - 1) // n + 1 for s in dirty if s.seq and s.seq <= pages * n}
            touched |= set(range(old_pages + 1, pages + 1))
            if pages != old_pages and old_pages:
                touched.add(old_pages)  # its next-archive link changes
            if pages < old_pages:  # fewer pages (max_entries raised): drop the extra ones
                for page in range(pages + 1, old_pages + 1):
                    self.remove(f"archive/{page:04d}.atom.xml")
            archive_pages = sorted(p for p in touched if p <= pages)
        for page in archive_pages:
            self.write_archive(page, pages)

        tags: set[str] = set()
        days: set[str] = set()
        for stored in dirty:
            old_tags, old_day, old_slug = before.get(stored.entry.id, ([], "", ""))
            tags.update(old_tags)
            if old_day:
                days.add(old_day)
            if stored.entry.id in visible:
                tags.update(filter(None, (slugify(t) for t in stored.entry.tags)))
                days.add(self.day_of(stored))
                self.write_entry_page(stored)
                self.publish_media(stored)
            else:
                self.remove(f"entries/{old_slug or stored.entry.slug}.html")
        if full:
            tags |= set(store.tag_slugs())
        for tag in sorted(tags):
            self.write_tag(tag)
        # The list of days changes only when a day gets its first entry or loses its last.
        days_changed = full or any(not store.has_built_day(day) for day in days)
        for day in sorted(days):
            days_changed |= not self.write_day(day)

        store.record_build(
            {
                s.entry.id: (
                    (
                        sorted({slugify(t) for t in s.entry.tags} - {""}),
                        self.day_of(s),
                        s.entry.slug,
                    )
                    if s.entry.id in visible
                    else None
                )
                for s in dirty
            },
            revision=target,
            archive_pages=pages,
        )
        if days_changed:
            self.write_days_index(store.built_days())
        return self.report

    # --- what is written -------------------------------------------------------------

    def items(self, entries: Iterable[StoredEntry]) -> list[FeedItem]:
        return [
            feeds.feed_item(s, base_url=self.site.base_url, default_author=self.site.author)
            for s in entries
        ]

    def info(self, *, title: str, self_url: str, **extra: object) -> FeedInfo:
        return FeedInfo(
            title=title,
            description=self.site.description,
            self_url=self_url,
            home_url=self.site.base_url,
            language=self.site.language,
            author=self.site.author,
            email=self.site.email,
            hub=self.site.hub,
            **extra,  # type: ignore[arg-type]
        )

    def write_head(self, head: list[StoredEntry], pages: int) -> None:
        urls = self.site.feed_urls
        links = {"prev-archive": self.archive_url(pages)} if pages else {}
        info = self.info(title=self.site.title, self_url=urls["atom"], links=links)
        items = self.items(head)
        self.write("atom.xml", feeds.render_atom(info, items))
        self.write("rss.xml", feeds.render_rss(info, items, self_url=urls["rss"]))
        self.write("feed.json", feeds.render_json(info, items, self_url=urls["json"]))

    def write_archive(self, page: int, pages: int) -> None:
        n = self.site.max_entries
        entries = self.store.published(min_seq=(page - 1) * n + 1, max_seq=page * n)
        links = {"current": self.site.feed_urls["atom"]}
        if page > 1:
            links["prev-archive"] = self.archive_url(page - 1)
        if page < pages:
            links["next-archive"] = self.archive_url(page + 1)
        info = FeedInfo(
            title=f"{self.site.title} (archive {page})",
            description=self.site.description,
            self_url=self.archive_url(page),
            home_url=self.site.base_url,
            language=self.site.language,
            author=self.site.author,
            email=self.site.email,
            links=links,
            archive=True,
        )
        self.write(f"archive/{page:04d}.atom.xml", feeds.render_atom(info, self.items(entries)))

    def write_tag(self, tag: str) -> None:
        entries = self.store.tagged(tag, limit=self.site.max_entries)
        names = [f"tags/{tag}.atom.xml", f"tags/{tag}.rss.xml", f"tags/{tag}.json"]
        if not entries:
            for name in names:
                self.remove(name)
            return
        label = next(
            (t for t in entries[0].entry.tags if slugify(t) == tag), tag
        )  # the tag as written
        base = self.site.base_url
        info = self.info(title=f"{self.site.title}: {label}", self_url=base + names[0])
        items = self.items(entries)
        self.write(names[0], feeds.render_atom(info, items))
        self.write(names[1], feeds.render_rss(info, items, self_url=base + names[1]))
        self.write(names[2], feeds.render_json(info, items, self_url=base + names[2]))

    def write_index(self, head: list[StoredEntry]) -> None:
        items = self.items(head[: self.site.max_entries])
        self.write("index.html", self.page("index.html.j2", items=items).encode())

    def write_entry_page(self, stored: StoredEntry) -> None:
        item = self.items([stored])[0]
        tags = [
            {"name": t, "url": f"{self.site.base_url}tags/{slugify(t)}.atom.xml"}
            for t in stored.entry.tags
            if slugify(t)
        ]
        html = self.page("entry.html.j2", item=item, tags=tags)
        self.write(f"entries/{stored.entry.slug}.html", html.encode())

    def write_day(self, day: str) -> bool:
        """Write a day's page; False when the day has nothing (left) and its page is gone."""
        start = datetime.combine(datetime.fromisoformat(day).date(), time(), self.zone)
        end = start + timedelta(days=1)
        entries = self.store.first_published_between(
            start.astimezone(UTC), end.astimezone(UTC).replace(tzinfo=UTC)
        )
        if not entries:
            self.remove(f"digests/{day}.html")
            return False
        label = start.strftime("%A %-d %B %Y")
        html = self.page("day.html.j2", items=self.items(entries), day_label=label)
        self.write(f"digests/{day}.html", html.encode())
        return True

    def write_days_index(self, days: list[str]) -> None:
        self.write("digests/index.html", self.page("days.html.j2", days=days).encode())

    def publish_media(self, stored: StoredEntry) -> None:
        """Copy files a document references beside it in seeds/ to media/ (if present)."""
        folder = stored.source.rpartition("/")[0]
        seeds = self.settings.seeds_dir.resolve()
        for reference in stored.entry.media:
            url = feeds.media_url(self.site.base_url, stored.source, reference)
            relative = url.removeprefix(self.site.base_url + "media/")
            source = (seeds / folder / reference).resolve()
            if not source.is_relative_to(seeds) or not source.is_file():
                continue  # ingest records a missing reference as a problem of the document
            self.write(f"media/{relative}", source.read_bytes())

    def page(self, template: str, **context: object) -> str:
        return templates.render(
            self.settings.home, template, site=self.site, feeds=self.site.feed_urls, **context
        )

    def archive_url(self, page: int) -> str:
        return f"{self.site.base_url}archive/{page:04d}.atom.xml"

    def day_of(self, stored: StoredEntry) -> str:
        moment = stored.first_published or stored.first_seen
        return moment.astimezone(self.zone).date().isoformat()

    # --- files -------------------------------------------------------------------------

    def write(self, name: str, data: bytes) -> None:
        """Atomic and quiet: temporary file in the same folder, fsync, rename; skip if equal."""
        path = self.root / name
        try:
            if path.read_bytes() == data:
                self.report.unchanged += 1
                return
        except OSError:
            pass
        try:
            write_atomic(path, data, durable=name.endswith((".xml", ".json")))
        except OSError as exc:
            raise BuildError(
                f"cannot write {path}: {exc.strerror}; the previous file is intact. "
                "Free some space or fix the folder's permissions, then build again"
            ) from exc
        self.report.written.append(name)
        log.info("wrote %s", name)

    def remove(self, name: str) -> None:
        path = self.root / name
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BuildError(f"cannot remove {path}: {exc.strerror}") from exc
        self.report.removed.append(name)
        log.info("removed %s", name)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: a reader or a
    killed process never sees half a file. ``durable`` also flushes it to the disk first, so
    that a power cut cannot leave an empty feed; pages and media, which any full build can
    rewrite, skip that (it is most of the cost of a full rebuild)."""
    try:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        handle = open(temporary, "wb")  # noqa: SIM115 - closed below, before the rename
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(temporary, "wb")  # noqa: SIM115
    try:
        with handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
