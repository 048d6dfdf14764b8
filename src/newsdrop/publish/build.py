"""store -> feeds/: the head feeds, archives (RFC 5005), tag feeds and the pages for people.

A build is incremental: it asks the store which entries changed since the last build and writes only the files those entries appear in (their pages, the head feeds, the tag feeds and day pages they are or were on, the archive pages they fall in); a full build (a new fingerprint: newsdrop's version, the settings and templates the files depend on) writes everything. Rendering many files fans out to render processes (render.py); every file is written atomically, and only when its bytes change (files.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from newsdrop import templates
from newsdrop.config import Settings
from newsdrop.model import Site, StoredEntry, tag_names
from newsdrop.publish import feeds
from newsdrop.publish.feeds import FeedInfo, FeedItem
from newsdrop.store import Store

if TYPE_CHECKING:  # render_ahead builds on this module
    from newsdrop.publish.render_ahead import RenderAhead
from newsdrop.publish.fingerprint import output_fingerprint
from newsdrop.publish.outputs import Outputs
from newsdrop.publish.render import (
    Read,
    Renderer,
    render_archive,
    render_day,
    render_entry_pages,
    render_page_of_archive,
)

log = logging.getLogger(__name__)


PARALLEL_FROM = 2000  # entries (changed ones, incrementally) rendered in worker processes


Built = tuple[list[str], str, str]  # what a build published of an entry: tags, day, slug


# Files a build always writes (or, for digests/index.html, always after a full build): one
# missing means feeds/ was emptied or tampered with, and a full build puts everything back.
HEAD_FILES = ("atom.xml", "rss.xml", "feed.json", "index.html", "digests/index.html")


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


def build(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    full: bool = False,
    ahead: RenderAhead | None = None,
) -> BuildReport:
    """Bring feeds/ in line with the store; see the module docstring. One build of a store
    at a time, across processes and machines (a `build` from cron beside a service).
    ``ahead``: entry pages rendered while the ingest before it ran (render_ahead.py); the
    build skips those still rendered from the same inputs, and renders in their processes."""
    with store.exclusive("build"):
        return Builder(settings, store, ahead).run(now=now, full=full)


class Builder(Outputs):
    def __init__(self, settings: Settings, store: Store, ahead: RenderAhead | None) -> None:
        self.settings = settings
        self.ahead = ahead
        self.store = store
        self.site = Site.from_settings(settings)
        self.root = settings.feeds_dir
        self.zone = ZoneInfo(settings.site.timezone)
        self.report = BuildReport()
        self.lock = threading.Lock()
        self.media_queued: set[str] = set()  # paths under media/ this build writes

    def run(self, *, now: datetime, full: bool) -> BuildReport:
        # Rendering is CPU work on this thread; creating files is mostly waiting on the file
        # system, so the writes go to a few threads and overlap with the rendering.
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="build-write") as pool:
            self.pool = pool
            self.pending: list[Future[None]] = []
            try:
                finish = self._run(now=now, full=full)
            finally:
                self.wait()
            if finish is not None:
                finish()  # only once every file is written: a failed build is redone in full
                self.wait()
        return self.report

    def _run(self, *, now: datetime, full: bool) -> Callable[[], None] | None:
        """Queue every file this build writes; return what to record once they are written."""
        store, n = self.store, self.site.max_entries
        self.report.published = store.publish_due(now=now)
        target = store.counter("revision")
        previous = store.counter("built_revision")
        fingerprint = output_fingerprint(self.settings, self.site)
        restyled = store.counter("built_fingerprint") != fingerprint
        if restyled:  # Jinja's cache would keep a packaged template a new override replaces
            templates.environment.cache_clear()
        full = (
            full
            or previous == 0
            or any(not (self.root / name).exists() for name in HEAD_FILES)
            or store.counter("built_page_size") != n  # every page boundary moved
            or restyled  # every file may look different: settings or templates changed
        )
        pages = max(0, store.max_seq() // n - 1)
        old_pages = store.counter("archive_pages")
        self.done: dict[str, str] = {}  # entry id -> page_key of its page rendered ahead
        workers = None
        if self.ahead is not None:  # its pages are all written before anything else is
            self.wrote(*self.ahead.wait())
            if self.ahead.fingerprint == fingerprint:  # else rendered with other templates,
                self.done = self.ahead.done  # which its processes also keep in their cache
                workers = self.ahead.workers
        changed = [] if full else store.changed_since(previous)
        if not full and not changed and pages == old_pages:
            return None  # nothing changed: nothing is rewritten
        # A full build, or a flood of new files, renders in worker processes.
        many = store.count_entries() if full else len(changed)
        renderer = Renderer(self, parallel=many >= PARALLEL_FROM, workers=workers)
        try:
            if full:
                built, days = self._stream_everything(pages, renderer)
                tags = set(store.tag_slugs())
                touched: set[int] = set()  # archive pages were written while streaming
            else:
                built, tags, days, touched = self._changed_entries(changed, renderer)
                touched |= set(range(old_pages + 1, pages + 1))
                if pages != old_pages and old_pages:
                    touched.add(old_pages)  # its next-archive link changes
            for page in range(pages + 1, old_pages + 1):  # fewer pages (max_entries raised)
                self.remove(f"archive/{page:04d}.atom.xml")
            for page in sorted(p for p in touched if p <= pages):
                entries = Read(Store.published, min_seq=(page - 1) * n + 1, max_seq=page * n)
                renderer.submit(render_archive, self.site, page, pages, entries)
            # The list of days changes only when a day gets its first entry or loses its last.
            days_changed = full or any(not store.has_built_day(day) for day in days)
            for day in sorted(days):
                days_changed |= not self.write_day(day, renderer)
        finally:
            renderer.finish()  # every page is written before the head feeds that link to it

        head = store.published(min_seq=pages * n + 1)
        self.write_head(head, pages)
        self.write_index(head)
        for tag in sorted(tags):
            self.write_tag(tag)

        def record() -> None:
            store.record_build(
                built,
                revision=target,
                archive_pages=pages,
                page_size=n,
                fingerprint=fingerprint,
            )
            if days_changed:
                self.write_days_index(store.built_days())

        return record

    def _changed_entries(
        self, changed: list[StoredEntry], renderer: Renderer
    ) -> tuple[dict[str, Built | None], set[str], set[str], set[int]]:
        """Pages of the entries that changed, and the tags, days and archive pages they touch."""
        n = self.site.max_entries
        before = self.store.built([s.entry.id for s in changed])
        built: dict[str, Built | None] = {}
        tags: set[str] = set()
        days: set[str] = set()
        touched: set[int] = set()
        for stored in changed:
            old_tags, old_day, old_slug = before.get(stored.entry.id, ([], "", ""))
            tags.update(old_tags)
            days.update([old_day] if old_day else [])
            if stored.seq:
                touched.add((stored.seq - 1) // n + 1)
            if stored.seq is None or stored.withdrawn:
                built[stored.entry.id] = None
                self.remove(f"entries/{old_slug or stored.entry.slug}.html")
                continue
            built[stored.entry.id] = self.built_record(stored)
            tags.update(built[stored.entry.id][0])  # type: ignore[index]
            days.add(self.day_of(stored))
            self.publish_media(stored)
        live = [s.entry.id for s in changed if built[s.entry.id] is not None]
        for start in range(0, len(live), self.site.max_entries):
            ids = live[start : start + self.site.max_entries]
            chunk = Read(Store.entries_by_id, entry_ids=ids)
            done = self.done_among(ids)
            renderer.submit(render_entry_pages, self.settings.home, self.site, chunk, done)
        return built, tags, days, touched

    def _stream_everything(
        self, pages: int, renderer: Renderer
    ) -> tuple[dict[str, Built | None], set[str]]:
        """A full build: walk the entries once in publication order, one archive page's worth
        at a time, rendering archive pages and entry pages in worker processes (each reads
        its page from the store itself). Returns what was built, and the days that have
        entries, to be rendered with the rest."""
        n, home, site = self.site.max_entries, self.settings.home, self.site
        built: dict[str, Built | None] = {}
        days: set[str] = set()
        for page, chunk in enumerate(self.store.seq_pages(n), start=1):
            entries = Read(Store.published, min_seq=(page - 1) * n + 1, max_seq=page * n)
            done = self.done_among(s.entry.id for s in chunk)
            renderer.submit(render_page_of_archive, home, site, page, pages, entries, done)
            for stored in chunk:
                if stored.withdrawn:
                    built[stored.entry.id] = None
                    self.remove(f"entries/{stored.entry.slug}.html")
                    continue
                built[stored.entry.id] = self.built_record(stored)
                self.publish_media(stored)
                days.add(self.day_of(stored))
        for stored in self.store.unpublished():
            built[stored.entry.id] = None
            self.remove(f"entries/{stored.entry.slug}.html")
        return built, days

    def done_among(self, entry_ids: Iterable[str]) -> dict[str, str]:
        """The pages of these entries rendered ahead: what a render job may skip."""
        if not self.done:
            return {}
        return {i: self.done[i] for i in entry_ids if i in self.done}

    def built_record(self, stored: StoredEntry) -> Built:
        tags = sorted(tag_names(stored.entry.tags))
        return (tags, self.day_of(stored), stored.entry.slug)

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
        self.write_together(
            [
                ("atom.xml", feeds.render_atom(info, items)),
                ("rss.xml", feeds.render_rss(info, items, self_url=urls["rss"])),
                ("feed.json", feeds.render_json(info, items, self_url=urls["json"])),
            ]
        )

    def write_tag(self, tag: str) -> None:
        entries = self.store.tagged(tag, limit=self.site.max_entries)
        names = [f"tags/{tag}.atom.xml", f"tags/{tag}.rss.xml", f"tags/{tag}.json"]
        if not entries:
            for name in names:
                self.remove(name)
            return
        label = tag_names(entries[0].entry.tags).get(tag, tag)  # the tag as written
        base = self.site.base_url
        urls = [feeds.tag_url(base, tag, suffix) for suffix in ("atom.xml", "rss.xml", "json")]
        info = self.info(title=f"{self.site.title}: {label}", self_url=urls[0])
        items = self.items(entries)
        self.write_together(
            [
                (names[0], feeds.render_atom(info, items)),
                (names[1], feeds.render_rss(info, items, self_url=urls[1])),
                (names[2], feeds.render_json(info, items, self_url=urls[2])),
            ]
        )

    def write_index(self, head: list[StoredEntry]) -> None:
        items = self.items(head[: self.site.max_entries])
        self.write("index.html", self.page("index.html.j2", items=items).encode())

    def write_day(self, day: str, renderer: Renderer) -> bool:
        """Write a day's page; False when the day has nothing (left) and its page is gone."""
        start = datetime.combine(datetime.fromisoformat(day).date(), time(), self.zone)
        window = {
            "start": start.astimezone(UTC),
            "end": (start + timedelta(days=1)).astimezone(UTC),
        }
        if not self.store.has_published_between(**window):
            self.remove(f"digests/{day}.html")
            return False
        entries = Read(Store.first_published_between, **window)
        renderer.submit(render_day, self.settings.home, self.site, day, entries)
        return True

    def write_days_index(self, days: list[str]) -> None:
        self.write("digests/index.html", self.page("days.html.j2", days=days).encode())

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
