"""What seeds/ holds: the scan (os.scandir; dotfiles, editor and partial files, symbolic links
out of seeds/ and other kinds of file skipped, each with its reason) and the reading of one
document, bounded in size. newsdrop reads files, never changes them."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from newsdrop.errors import TooLargeError, UnreadableError
from newsdrop.ingest.normalize import document_kind

log = logging.getLogger(__name__)


PARTIAL_SUFFIXES = (".swp", ".swo", ".swx", ".part", ".tmp", ".crdownload", ".partial", ".download")


@dataclass(frozen=True, slots=True)
class SeedFile:
    """A file found in seeds/ by a scan."""

    source: str  # relative to seeds/, POSIX separators
    path: Path
    size: int
    mtime_ns: int


def scan(root: Path, *, ignored: list[tuple[str, str]] | None = None) -> dict[str, SeedFile]:
    """Every publishable regular file under root, by its path relative to root.

    os.scandir keeps this to one stat per file: a rescan of 10,000 unchanged
    files is mostly this listing.
    """
    found: dict[str, SeedFile] = {}
    if not root.is_dir():
        return found
    real_root = root.resolve()
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                items = sorted(listing, key=lambda item: item.name)
        except OSError as exc:
            if ignored is not None:
                ignored.append(
                    (prefix.rstrip("/") or ".", f"folder cannot be listed ({exc.strerror})")
                )
            continue
        for item in items:
            source = prefix + item.name
            if item.name.startswith("."):
                continue
            if item.is_dir(follow_symlinks=False):
                pending.append((source + "/", item.path))
                continue
            reason = _skip_reason(item, real_root)
            if reason is None:
                try:
                    info = item.stat()
                except OSError:
                    continue  # vanished since the listing: nothing to publish
                if stat.S_ISREG(info.st_mode):
                    found[source] = SeedFile(
                        source, Path(item.path), info.st_size, info.st_mtime_ns
                    )
                    continue
                reason = "not a regular file (a FIFO, socket or device)"
            if reason and ignored is not None:
                log.info("ignored %s: %s", source, reason)
                ignored.append((source, reason))
    return found


def _skip_reason(item: os.DirEntry[str], real_root: Path) -> str | None:
    """Why a file is not a document; '' for files skipped silently (partials, backups)."""
    name = item.name
    if name.endswith("~") or (name.startswith("#") and name.endswith("#")):
        return ""
    if name.lower().endswith(PARTIAL_SUFFIXES):
        return ""
    if item.is_symlink():
        try:
            target = Path(item.path).resolve(strict=True)
        except (OSError, RuntimeError):
            return "a broken symbolic link"
        if not target.is_relative_to(real_root):
            return "a symbolic link to a file outside seeds/; newsdrop does not follow it"
    if document_kind(name) is None:
        return "not a .txt, .md or .html document"
    return None


def read_document(seed: SeedFile, *, max_bytes: int) -> bytes:
    """The file's bytes, read once, never more than max_bytes + 1."""
    if seed.size > max_bytes:
        raise TooLargeError(
            f"{seed.source}: {seed.size:,} bytes is over [normalize] max_bytes = {max_bytes:,}; "
            "split the document or raise the limit"
        )
    try:
        fd = os.open(seed.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UnreadableError(
            f"{seed.source}: vanished while being read; it is retried when it comes back"
        ) from None
    except OSError as exc:
        raise UnreadableError(
            f"{seed.source}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableError(f"{seed.source}: is no longer a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableError(f"{seed.source}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise TooLargeError(
            f"{seed.source}: more than [normalize] max_bytes = {max_bytes:,} bytes; "
            "split the document or raise the limit"
        )
    return data
