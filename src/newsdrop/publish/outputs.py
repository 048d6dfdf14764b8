"""What a build writes to feeds/ and removes from it: files queued to a few writer threads
(written atomically, only when their bytes change, a feed's formats together), and the
media its entries refer to (passive kinds as they are, SVG drawn as PNG)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from newsdrop import media
from newsdrop.config import Settings
from newsdrop.errors import BuildError, SourceError
from newsdrop.files import write_files
from newsdrop.model import StoredEntry

if TYPE_CHECKING:  # the build's report, which its Builder counts into
    from newsdrop.publish.build import BuildReport

log = logging.getLogger(__name__)


class Outputs:
    """The files of one build (``Builder`` has these): queued writes, removals, media."""

    settings: Settings
    root: Path
    report: BuildReport
    lock: threading.Lock
    pool: ThreadPoolExecutor
    pending: list[Future[None]]
    media_queued: set[str]

    def wait(self) -> None:
        """Wait for every queued write; the first that failed raises its BuildError."""
        pending, self.pending = self.pending, []
        for future in pending:
            future.exception()
        for future in pending:
            future.result()

    def write_all(self, files: list[tuple[str, bytes]]) -> None:
        for name, data in files:
            self.write(name, data)

    def publish_media(self, stored: StoredEntry) -> None:
        """Publish the files a document references beside it in seeds/ under media/: passive
        kinds as they are, SVG drawn as PNG, nothing else (media.py). Ingest records a
        missing or refused reference as a problem of the document."""
        if not stored.entry.media:
            return
        seeds = self.settings.seeds_dir.resolve()
        n = self.settings.normalize
        for written in stored.entry.media:
            reference = media.resolve(stored.source, written)
            relative, published = reference.source_path, reference.published
            if published != relative and (self.root / "media" / relative).is_file():
                self.remove(f"media/{relative}")  # refused or drawn: an older version's copy
            if published is None or published in self.media_queued:
                continue  # two documents may show one picture: it is written once a build
            source = (seeds / relative).resolve()
            if not source.is_relative_to(seeds) or not source.is_file():
                continue
            if reference.drawn and source.stat().st_size > media.MAX_DRAWN:
                continue  # ingest records it as a problem of the document
            data = source.read_bytes()
            if reference.drawn:
                # Imported here: the render processes import this module, never draw, and
                # start 0.3 s sooner without the parsers the sandbox brings.
                from newsdrop.ingest import sandbox

                try:
                    data = sandbox.svg_to_png(
                        data, relative, limits=sandbox.Limits(n.timeout_s, n.max_memory_mb)
                    )
                except SourceError as exc:
                    log.warning("not published: %s", exc)
                    continue
            self.media_queued.add(published)
            self.write(f"media/{published}", data)

    def write(self, name: str, data: bytes) -> None:
        """Queue one file: written atomically, and only if its bytes changed."""
        self.pending.append(self.pool.submit(self._write, [(name, data)]))

    def write_together(self, files: list[tuple[str, bytes]]) -> None:
        """Queue files that change together or not at all (a feed in its three formats):
        every temporary file is written first, then all are renamed. A full disk once left
        the Atom and JSON head feeds with 69 entries and the RSS one with 68."""
        self.pending.append(self.pool.submit(self._write, files))

    def _write(self, files: list[tuple[str, bytes]]) -> None:
        self.wrote(*write_files(self.root, files))

    def wrote(self, written: list[str], unchanged: int) -> None:
        """Count files written (here, or by a worker process) and files left as they were."""
        with self.lock:
            self.report.written += written
            self.report.unchanged += unchanged

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
