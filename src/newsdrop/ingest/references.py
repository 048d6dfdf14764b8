"""The files a document refers to, checked beside it in seeds/: a kind never published, a file
that is not there, an SVG that cannot be drawn. Its entry is published without them, and
read again when they change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from newsdrop import media
from newsdrop.config import Settings
from newsdrop.errors import SourceError
from newsdrop.ingest import sandbox
from newsdrop.model import Problem
from newsdrop.store import Store


@dataclass(frozen=True, slots=True)
class MediaCheck:
    """What is wrong with the files a document refers to, and which go unpublished."""

    refused: list[str] = field(default_factory=list)  # a kind never published (media.py)
    missing: list[str] = field(default_factory=list)  # not a file beside it in seeds/
    broken: dict[str, str] = field(default_factory=dict)  # an SVG that cannot be drawn: why

    @property
    def unpublished(self) -> set[str]:
        return {*self.refused, *self.missing, *self.broken}

    def problem(self, source: str, now: datetime) -> Problem | None:
        parts = []
        if self.refused:
            parts.append(
                f"refers to {', '.join(self.refused)}, a kind of file newsdrop does not "
                "publish: only images, audio, video, PDF, CSV, ZIP and EPUB files are (a page, "
                "script or XML file could run code in readers' browsers); convert it or link "
                "to it elsewhere"
            )
        if self.missing:
            parts.append(
                f"refers to {', '.join(self.missing)}, not in seeds/ beside it; add the file "
                "or fix the link"
            )
        parts += self.broken.values()
        if not parts:
            return None
        return Problem(
            source, f"{source}: {'; '.join(parts)} (the entry is published without it)", now
        )


def media_changed(
    standing: Problem, store: Store, settings: Settings, limits: sandbox.Limits
) -> bool:
    """Whether the files an entry's document refers to are not as its standing problem says
    (a missing image was added, say): then the document is read again."""
    references = store.entry_media(standing.source)
    found = check_media(standing.source, references, settings.seeds_dir, limits=limits)
    problem = found.problem(standing.source, standing.seen)
    return problem is None or problem.reason != standing.reason


def check_media(
    source: str,
    references: tuple[str, ...],
    seeds_dir: Path,
    *,
    limits: sandbox.Limits | None = None,
) -> MediaCheck:
    """Check the files a document refers to (given limits, also that each SVG can be drawn)."""
    root = seeds_dir.resolve()
    found = MediaCheck()
    for written in references:
        reference = media.resolve(source, written)
        target = (seeds_dir / reference.source_path).resolve()
        if reference.published is None:
            found.refused.append(written)
        elif not target.is_relative_to(root) or not target.is_file():
            found.missing.append(written)
        elif limits is not None and reference.drawn:
            try:
                if target.stat().st_size > media.MAX_DRAWN:
                    raise SourceError(f"{written}: over {media.MAX_DRAWN:,} bytes; use a PNG")
                sandbox.svg_to_png(target.read_bytes(), written, limits=limits)
            except SourceError as exc:
                found.broken[written] = str(exc)
            except OSError as exc:
                found.broken[written] = f"{written}: cannot be read ({exc.strerror})"
    return found
