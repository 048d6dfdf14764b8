"""The watcher: changes under seeds/ wake the service's ingest (watchfiles).

Which files changed does not matter: an ingest rescans the folder, comparing
size and mtime, in a fraction of a second. watchfiles yields after 50 ms of
quiet (a move arrives as a deletion and an addition, in one batch); a file
still being written is held by ingest's settle time, not here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, awatch

from newsdrop.ingest import PARTIAL_SUFFIXES

log = logging.getLogger(__name__)


def interesting(change: Change, path: str) -> bool:
    """Partial downloads, editor swap files and dotfiles never wake anything."""
    name = Path(path).name
    return not (
        name.startswith(".") or name.endswith("~") or name.lower().endswith(PARTIAL_SUFFIXES)
    )


async def watch_seeds(seeds: Path, on_change: Callable[[], None], stop: asyncio.Event) -> None:
    """Call ``on_change`` after each batch of changes until ``stop`` is set. A watch that
    fails (the folder vanished, too many inotify watches) is retried; the periodic
    rescan covers the gap."""
    while not stop.is_set():
        try:
            async for _changes in awatch(
                seeds,
                watch_filter=interesting,
                stop_event=stop,
                debounce=1_600,
                step=50,
                ignore_permission_denied=True,
            ):
                on_change()
        except (OSError, RuntimeError) as exc:
            log.warning(
                "watching %s failed (%s); retrying in 5 s", seeds, exc, extra={"path": str(seeds)}
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=5)
            except TimeoutError:
                continue
