"""Entry pages rendered while a large ingest still runs, on the core it leaves idle.

An ingest normalises on one core, and the build that follows used to start only
when it ended: for 10,000 files dropped at once, the entry pages were most of that
build. An entry's page depends on the entry alone (and on the site and templates,
which the build's fingerprint covers), so the pages of each batch an ingest commits
can be rendered and written at once, in the render processes the build then goes on
with. One render process works at a time, so that the ingest keeps its core;
the others are started meanwhile, ready for the build. The build skips a page rendered ahead from the inputs it would use
(``render.page_key``) and renders any other as usual: a page rendered ahead is never
left wrong, at worst rendered twice. Only entries visible at the ingest's time are
rendered ahead: a page must not appear before its entry is due.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

from newsdrop.config import Settings
from newsdrop.files import write_each
from newsdrop.model import Site
from newsdrop.publish.build import PARALLEL_FROM
from newsdrop.publish.fingerprint import output_fingerprint
from newsdrop.publish.render import page_key, render_entry_pages, render_workers
from newsdrop.store import opened

Rendered = tuple[list[str], int, dict[str, str]]  # names written, left as they were, keys


class RenderAhead:
    """Given to ``ingest`` (its ``committed`` hook) and then to the ``build`` after it."""

    def __init__(self, settings: Settings, *, now: datetime) -> None:
        self.settings = settings
        self.now = now
        self.site = Site.from_settings(settings)
        self.fingerprint = 0  # of the site and templates, taken when rendering starts
        self.workers: ProcessPoolExecutor | None = None
        self.running: Future[Rendered] | None = None
        self.waiting: list[str] = []  # committed, not yet given to the render process
        self.written: list[str] = []
        self.unchanged = 0
        self.done: dict[str, str] = {}  # entry id -> page_key of the page written

    def committed(self, entry_ids: list[str], documents: int) -> None:
        """The ingest committed these entries, of ``documents`` it reads in all: render
        their pages now when the ingest is big enough for the build to use processes."""
        if documents < PARALLEL_FROM or (os.cpu_count() or 1) < 2 or not entry_ids:
            return
        if self.workers is None:
            self.fingerprint = output_fingerprint(self.settings, self.site)
            self.workers = render_workers()
            for _ in range(os.cpu_count() or 1):  # each submit finds none idle: all start
                self.workers.submit(_warm)
        self.waiting += entry_ids
        if self.running is not None and self.running.done():
            self._collect()
        if self.running is None:  # what came meanwhile goes as one job
            self._submit()

    def wait(self) -> tuple[list[str], int]:
        """Wait until every page rendered ahead is written (a failure raises its BuildError):
        the names written, and how many were left as they were."""
        while self.running is not None:
            self._collect()
            self._submit()
        return self.written, self.unchanged

    def _submit(self) -> None:
        if not self.waiting or self.workers is None:
            return
        settings, ids, self.waiting = self.settings, self.waiting, []
        self.running = self.workers.submit(
            render_ahead,
            settings.feeds_dir,
            settings.store_url,
            settings.home,
            self.site,
            ids,
            self.now,
        )

    def _collect(self) -> None:
        if self.running is None:
            return
        running, self.running = self.running, None
        names, same, keys = running.result()
        self.written += names
        self.unchanged += same
        self.done.update(keys)

    def close(self) -> None:
        if self.workers is not None:
            self.workers.shutdown(cancel_futures=True)
            self.workers = None


def render_ahead(
    root: Path, store_url: str, home: Path, site: Site, entry_ids: list[str], now: datetime
) -> Rendered:
    """In a render process: the pages of these entries, as they are in the store now, but
    for any not yet due at ``now``; with the key of each page written."""
    entries = [s for s in opened(store_url).entries_by_id(entry_ids) if s.entry.published <= now]
    written, unchanged = write_each(root, render_entry_pages(home, site, entries))
    return written, unchanged, {s.entry.id: page_key(s) for s in entries}


def _warm() -> None:
    """Nothing: a render process unpickles it by importing this module (and render.py), so
    that the build's first pages do not wait for those imports."""
