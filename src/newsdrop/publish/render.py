"""Rendering jobs of a build, in this process or in worker processes that read their entries from the store themselves and write their own files: entry pages, archive pages, day pages."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsdrop import templates
from newsdrop.i18n import weekday_name
from newsdrop.model import Site, StoredEntry, tag_names
from newsdrop.publish import feeds
from newsdrop.publish.feeds import FeedInfo
from newsdrop.store import Store, opened
from newsdrop.workers import die_with

if TYPE_CHECKING:  # render_ahead builds on this module
    pass
from newsdrop.files import write_each

if TYPE_CHECKING:  # the build hands itself to its Renderer
    from newsdrop.publish.build import Builder


def render_entry_pages(
    home: Path, site: Site, entries: list[StoredEntry], done: Mapping[str, str] | None = None
) -> list[tuple[str, bytes]]:
    """Entry pages, as (file name, bytes), but for those ``done`` (entry id -> page_key)
    says were rendered ahead from the same inputs. Module-level, so worker processes can
    run it."""
    pages = []
    for stored in entries:
        if done and done.get(stored.entry.id) == page_key(stored):
            continue
        item = feeds.feed_item(stored, base_url=site.base_url, default_author=site.author)
        tags = [
            {"name": name, "url": feeds.tag_url(site.base_url, slug)}
            for slug, name in tag_names(stored.entry.tags).items()
        ]
        html = templates.render(
            home, "entry.html.j2", site=site, feeds=site.feed_urls, item=item, tags=tags
        )
        pages.append((f"entries/{stored.entry.slug}.html", html.encode()))
    return pages


def page_key(stored: StoredEntry) -> str:
    """A digest of what an entry's page is rendered from besides the site and templates
    (which the build's fingerprint covers): equal keys, equal pages."""
    entry = stored.entry
    parts = [
        entry.id, entry.slug, entry.title, entry.summary, entry.content_html, entry.author,
        entry.lang, stored.source, json.dumps([entry.tags, entry.media]),
        entry.published.astimezone(UTC).isoformat(), entry.updated.astimezone(UTC).isoformat(),
    ]  # fmt: skip
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def render_archive(
    site: Site, page: int, pages: int, entries: list[StoredEntry]
) -> list[tuple[str, bytes]]:
    """Archive page ``page`` of ``pages`` (RFC 5005), its entries newest first."""
    base = site.base_url
    links = {"current": site.feed_urls["atom"]}
    if page > 1:
        links["prev-archive"] = f"{base}archive/{page - 1:04d}.atom.xml"
    if page < pages:
        links["next-archive"] = f"{base}archive/{page + 1:04d}.atom.xml"
    info = FeedInfo(
        title=f"{site.title} (archive {page})",
        description=site.description,
        self_url=f"{base}archive/{page:04d}.atom.xml",
        home_url=base,
        language=site.language,
        author=site.author,
        email=site.email,
        links=links,
        archive=True,
    )
    items = [feeds.feed_item(s, base_url=base, default_author=site.author) for s in entries]
    return [(f"archive/{page:04d}.atom.xml", feeds.render_atom(info, items))]


def render_page_of_archive(
    home: Path,
    site: Site,
    page: int,
    pages: int,
    entries: list[StoredEntry],
    done: Mapping[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """One step of a full build: archive page ``page`` (if full) and its entries' pages
    (newest first; not those rendered ahead), in one job, so the entries are read once."""
    files = render_entry_pages(home, site, entries, done)
    if page <= pages:
        files += render_archive(site, page, pages, entries)
    return files


def render_day(
    home: Path, site: Site, day: str, entries: list[StoredEntry]
) -> list[tuple[str, bytes]]:
    """The page of what was first published on ``day``, newest first."""
    label = weekday_name(datetime.fromisoformat(day), site.language)
    items = [
        feeds.feed_item(s, base_url=site.base_url, default_author=site.author) for s in entries
    ]
    html = templates.render(
        home, "day.html.j2", site=site, feeds=site.feed_urls, items=items, day_label=label
    )
    return [(f"digests/{day}.html", html.encode())]


class Read:
    """Entries a render job reads from the store where it runs (a Store method and its
    arguments): a render process reads them itself, so the building process neither
    reads nor pickles them (for a 10,000-entry build that was most of its time)."""

    def __init__(self, method: Callable[..., list[StoredEntry]], **arguments: object) -> None:
        self.method = method
        self.arguments = arguments

    def __call__(self, store: Store) -> list[StoredEntry]:
        return self.method(store, **self.arguments)


def _read(store: Store, args: tuple[object, ...]) -> list[object]:
    return [arg(store) if isinstance(arg, Read) else arg for arg in args]


class Renderer:
    """Runs render functions: in this process for a small build, and in worker processes
    (one per core) for a full build or a flood, where rendering is most of the work."""

    def __init__(
        self, builder: Builder, *, parallel: bool, workers: ProcessPoolExecutor | None = None
    ) -> None:
        """``workers``: processes already started (render_ahead.py), left running at the end."""
        self.builder = builder
        self.own = workers is None
        self.workers = workers
        if self.workers is None and parallel and (os.cpu_count() or 1) > 1:
            self.workers = render_workers()
        self.running: deque[Future[tuple[list[str], int]]] = deque()

    def submit(self, render: Callable[..., list[tuple[str, bytes]]], *args: object) -> None:
        if self.workers is None:
            self.builder.write_all(render(*_read(self.builder.store, args)))
            return
        root, url = self.builder.root, self.builder.settings.store_url
        self.running.append(self.workers.submit(render_and_write, root, url, render, *args))
        while len(self.running) > 8:  # bounded: memory does not grow with the archive
            self.builder.wrote(*self.running.popleft().result())

    def finish(self) -> None:
        try:
            while self.running:
                self.builder.wrote(*self.running.popleft().result())
        finally:
            if self.workers is not None and self.own:
                self.workers.shutdown(cancel_futures=True)


def render_workers() -> ProcessPoolExecutor:
    """One render process per core. "spawn": forking a process that runs threads (the
    service's) copies their held locks. A worker dies with its parent (`die_with`), and the
    resource tracker spawn starts then exits too: it lives while a process holding its pipe
    does."""
    return ProcessPoolExecutor(
        max_workers=os.cpu_count(),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with,
        initargs=(os.getpid(),),
    )


def render_and_write(
    root: Path, store_url: str, render: Callable[..., list[tuple[str, bytes]]], *args: object
) -> tuple[list[str], int]:
    """In a worker process: read what the job names (``Read``), render, then write each
    file (as ``Builder.write``), so that neither the entries, nor the pages, nor the work of
    writing them pass through the building process."""
    return write_each(root, render(*_read(opened(store_url), args)))
