"""Room on a folder's file system, and the words for a folder that has none.

state/ holds the store (SQLite), the Maildir outbox and the status file on one disk by
default: a message written into the outbox whose sent mark cannot then be committed
would be written again by the next run. So the outbox takes a message only while
``RESERVE_BYTES`` stay free, room for the ledger to record what was written.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

RESERVE_BYTES = 4 * 1024 * 1024  # a sent mark is a few KB of WAL; this is a thousand of them


def free_bytes(path: Path) -> int | None:
    """Bytes free to this process on the file system of ``path`` (or of its nearest
    existing parent); None when that cannot be told."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def is_full(path: Path, *, reserve: int = RESERVE_BYTES) -> bool:
    free = free_bytes(path)
    return free is not None and free < reserve


def shown(path: Path, home: Path) -> str:
    """A folder as health pages show it: relative to the instance's home (``state/``),
    never an absolute path."""
    try:
        relative = path.resolve().relative_to(home.resolve())
    except ValueError:
        return f"the folder {path.name}/" if path.name else "a folder"
    text = str(relative)
    return f"{text}/" if text != "." else "the instance's folder"


def full_folder(path: Path) -> str:
    """The sentence for a folder whose disk is full: which, and what to do."""
    return (
        f"the disk holding {path} is full; free space there (or move it to a larger disk): "
        "nothing is lost, what was not written or recorded is done on the next run"
    )


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OSError is a full disk (or a full quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
