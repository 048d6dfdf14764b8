"""The watcher: changes under seeds/ wake the service's ingest (watchfiles).

Which files changed hardly matters: an ingest rescans the folder, comparing
size and mtime, in a fraction of a second. What the events do tell is when a
file was finished by a rename from a temporary name (``NAME.part`` or
``.NAME.xyz`` to ``NAME``, in one batch): such a file is complete and need not
wait out the settle time. watchfiles yields after 50 ms of quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from newsdrop.ingest import PARTIAL_SUFFIXES

log = logging.getLogger(__name__)

Changes = set[tuple[Change, str]]


def temporary(name: str) -> bool:
    """A name that ingest never reads: partial downloads, editor swap files, dotfiles."""
    return name.startswith(".") or name.endswith("~") or name.lower().endswith(PARTIAL_SUFFIXES)


def finished_by_rename(changes: Changes, seeds: Path) -> set[str]:
    """Sources (relative to seeds/) that appeared as a temporary file of theirs vanished:
    written under another name, then renamed into place, so complete."""
    gone = {Path(path) for change, path in changes if change == Change.deleted}
    finished = set()
    for change, path in changes:
        target = Path(path)
        if change != Change.added or temporary(target.name):
            continue
        for old in gone:
            if (
                old.parent == target.parent
                and temporary(old.name)
                and (
                    old.name.lower().startswith(target.name.lower() + ".")
                    or old.name.startswith("." + target.name)
                )
            ):
                with contextlib.suppress(ValueError):  # outside seeds/: not ours
                    finished.add(target.relative_to(seeds).as_posix())
                break
    return finished


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
