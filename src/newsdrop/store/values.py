"""Values the store takes and gives that are not the model's own."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from newsdrop.model import (
    Entry,
    Problem,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileState:
    """What the store knows of a file in seeds/: enough to skip it when unchanged."""

    entry_id: str | None  # None for a file that is a problem
    size: int
    mtime_ns: int
    file_hash: str
    withdrawn: bool
    judged: str = ""  # a problem's: what found it wanting ("": look again every run)


@dataclass(frozen=True, slots=True)
class ProblemWrite:
    """A problem as recorded: the file's stat and hash, and what judged it (see FileState)."""

    problem: Problem
    size: int
    mtime_ns: int
    file_hash: str = ""
    judged: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """The lasting facts of an entry that an edit of its file keeps."""

    id: str
    slug: str
    content_hash: str
    updated: datetime
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One entry to insert or update, with the file it came from."""

    entry: Entry
    source: str
    size: int
    mtime_ns: int
    file_hash: str
    first_seen: datetime


def new_claimant() -> str:
    """A name for one sending run's claims (it fits the ``claim`` column)."""
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Period:
    """A digest to record in the ledger: whose, which period, what window, what contents."""

    subscriber_id: int
    due: datetime
    window_start: datetime
    window_end: datetime
    seq_start: int
    seq_end: int
    entry_ids: tuple[str, ...]
    state: str  # "queued", or "skipped" for an empty digest with [digest] skip_empty


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    subscriber_id: int
    due: datetime
    window_start: datetime
    window_end: datetime
    state: str
    entry_ids: tuple[str, ...]
    attempts: int
    reply: str
    changed: datetime


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A subscriber's own mail (a confirmation or a welcome) claimed for sending: to whom,
    and whether it is still wanted."""

    subscriber_id: int
    email: str
    wanted: bool  # False: confirmed meanwhile (by an earlier link), left, or removed
    attempts: int
    kind: str = "confirm"  # "welcome", "account" (a link to their data) or "address"
    address: str | None = None  # where an "address" mail goes: the new address to confirm
