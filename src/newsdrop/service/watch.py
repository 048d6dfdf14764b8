"""The watcher: changes under seeds/ wake the service's ingest (watchfiles).

Which files changed hardly matters: an ingest rescans the folder, comparing
size and mtime, in a fraction of a second. What the events do tell is when a
file was finished by a rename from a temporary name (``NAME.part`` or
``.NAME.xyz`` to ``NAME``, in one batch): such a file is complete and need not
wait out the settle time. watchfiles yields after 50 ms of quiet.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from newsdrop.ingest.scan import PARTIAL_SUFFIXES

log = logging.getLogger(__name__)

Changes = set[tuple[Change, str]]


def temporary(name: str) -> bool:
    """A name that ingest never reads: partial downloads, editor swap files, dotfiles."""
    return name.startswith(".") or name.endswith("~") or name.lower().endswith(PARTIAL_SUFFIXES)


def finished_by_rename(changes: Changes, seeds: Path) -> set[str]:
    """Sources (relative to seeds/) that appeared as a temporary file of theirs vanished:
    written under another name, then renamed into place, so complete.

    Linear in the batch (a flood renames thousands of files at once): the deleted
    temporaries are indexed by folder, sorted, and each new file looks its prefix up by
    bisection, where comparing every new file with every deleted one took 23 s for 4,000."""
    dotted: dict[Path, list[str]] = {}  # `.NAME...`: the name after its dot, as written
    suffixed: dict[Path, list[str]] = {}  # `NAME.xyz`: lowercased, as matched
    added: list[Path] = []
    for change, path in changes:
        target = Path(path)
        if change == Change.added and not temporary(target.name):
            added.append(target)
        elif change == Change.deleted and temporary(target.name):
            suffixed.setdefault(target.parent, []).append(target.name.lower())
            if target.name.startswith("."):
                dotted.setdefault(target.parent, []).append(target.name[1:])
    for names in (*dotted.values(), *suffixed.values()):
        names.sort()
    finished = set()
    for target in added:
        if _has_prefix(suffixed.get(target.parent), target.name.lower() + ".") or _has_prefix(
            dotted.get(target.parent), target.name
        ):
            with contextlib.suppress(ValueError):  # outside seeds/: not ours
                finished.add(target.relative_to(seeds).as_posix())
    return finished


def _has_prefix(ordered: list[str] | None, prefix: str) -> bool:
    """Whether a name in the sorted list starts with ``prefix``: names that do sort together,
    from the first one not below it."""
    if not ordered:
        return False
    at = bisect.bisect_left(ordered, prefix)
    return at < len(ordered) and ordered[at].startswith(prefix)


async def watch_seeds(
    seeds: Path, on_change: Callable[[Changes], None], stop: asyncio.Event
) -> None:
    """Call ``on_change`` with each batch of changes until ``stop`` is set. A watch that
    fails (the folder vanished, too many inotify watches) is retried; the periodic
    rescan covers the gap."""
    while not stop.is_set():
        try:
            async for changes in awatch(
                seeds, stop_event=stop, debounce=1_600, step=50, ignore_permission_denied=True
            ):
                on_change(changes)
        except (OSError, RuntimeError) as exc:
            log.warning(
                "watching %s failed (%s); retrying in 5 s", seeds, exc, extra={"path": str(seeds)}
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=5)
            except TimeoutError:
                continue
