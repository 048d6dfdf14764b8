"""Files written so that a reader or a crash never sees half of one: a temporary beside it, then a rename; unchanged bytes are not written again."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from newsdrop.errors import BuildError

if TYPE_CHECKING:  # render_ahead builds on this module
    pass

log = logging.getLogger(__name__)


def write_files(root: Path, files: list[tuple[str, bytes]]) -> tuple[list[str], int]:
    """Write files under ``root`` that change together or not at all, each only if its
    bytes changed: every temporary file first, then all are renamed. The names written,
    and how many were left as they were. Feeds are flushed to the disk (``write_atomic``)."""
    changed = [(name, data) for name, data in files if not _same(root / name, data)]
    ready: list[tuple[str, Path]] = []
    try:
        for name, data in changed:
            durable = name.endswith((".xml", ".json"))
            ready.append((name, write_temporary(root / name, data, durable=durable)))
    except BaseException as exc:
        for _, temporary in ready:
            temporary.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        path = root / changed[len(ready)][0]
        others = "s are" if len(files) > 1 else " is"
        raise BuildError(
            f"cannot write {path}: {exc.strerror}; the previous file{others} intact. "
            "Free some space or fix the folder's permissions, then build again"
        ) from exc
    for name, temporary in ready:
        os.replace(temporary, root / name)
        log.info("wrote %s", name)
    return [name for name, _ in ready], len(files) - len(changed)


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def write_each(root: Path, files: Iterable[tuple[str, bytes]]) -> tuple[list[str], int]:
    """Write files under ``root`` one by one (``write_files``): the names written, and how
    many were left as they were."""
    written: list[str] = []
    unchanged = 0
    for name, data in files:
        names, same = write_files(root, [(name, data)])
        written += names
        unchanged += same
    return written, unchanged


_TEMPORARIES = itertools.count()  # next() on it is atomic in CPython


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: a reader or a
    killed process never sees half a file. ``durable`` also flushes it to the disk first, so
    that a power cut cannot leave an empty feed; pages and media, which any full build can
    rewrite, skip that (it is most of the cost of a full rebuild)."""
    temporary = write_temporary(path, data, durable=durable)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_temporary(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """``data`` in a temporary file beside ``path`` (its folder made if missing), to be
    renamed over it; nothing is left behind when writing fails."""
    try:
        # Unique to this write, not only to this process: the build's writer threads
        # may write one path at once (two builds of a picture once collided here).
        temporary = path.with_name(f".{path.name}.{os.getpid()}-{next(_TEMPORARIES)}.tmp")
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
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
