"""Typed, immutable values that cross module lines."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from newsdrop.config import Settings


@dataclass(frozen=True, slots=True)
class Hints:
    """What ``normalize`` may know besides the bytes and the name; passed in, never looked up.

    ``first_seen`` stands in for the clock: it is the published date of a
    document that names none, and the date in a newly minted id.
    """

    first_seen: datetime
    tag_authority: str = "localhost"
    default_lang: str = "en"
    timezone: str = "UTC"
    max_bytes: int = 5 * 1024 * 1024
    strip_boilerplate: bool = True
    boilerplate_markers: tuple[str, ...] = ()
    learned_boilerplate: frozenset[str] = frozenset()  # sha256 of paragraphs learned as boilerplate
    detect_language: bool = False
    favor: str = "balanced"  # trafilatura's leaning on web pages: "precision", "recall"
    entry_id: str | None = None  # the id minted on first sight, kept across edits and renames
    slug: str | None = None
    taken_slugs: frozenset[str] | set[str] = frozenset()  # a new entry's slug must differ
    updated: datetime | None = None  # set by ingest when the content changed


@dataclass(frozen=True, slots=True)
class Entry:
    """One normalised document: what feeds and digests publish."""

    id: str
    slug: str
    title: str
    summary: str
    content_html: str
    content_text: str
    published: datetime
    updated: datetime
    author: str
    lang: str
    tags: tuple[str, ...]
    word_count: int
    reading_minutes: int
    content_hash: str  # sha256 of the normalised text: what "changed" means
    last_paragraph: str = ""  # what boilerplate learning counts
    draft: bool = False
    media: tuple[str, ...] = field(default=())  # relative references to files beside the source

    @property
    def paragraphs(self) -> list[str]:
        return self.content_text.split("\n\n") if self.content_text else []


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as the store keeps it: the entry plus where it came from and its state."""

    entry: Entry
    source: str  # path relative to seeds/, POSIX separators
    first_seen: datetime
    withdrawn: bool
    seq: int | None = None  # place in publication order; None until first published
    first_published: datetime | None = None
    rev: int = 0


class SubscriberState(StrEnum):
    PENDING = "pending"  # awaiting double opt-in (the service's subscribe page)
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


Frequency = Literal["instant", "daily", "weekly", "monthly"]


FREQUENCIES: tuple[Frequency, ...] = ("instant", "daily", "weekly", "monthly")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A person who receives digests. ``activated`` starts their first period: no backlog."""

    id: int
    email: str  # normalised (domain lower-cased, IDNA-decoded), unique ignoring case
    name: str
    timezone: str  # IANA name
    frequency: Frequency
    tags: tuple[str, ...]  # only entries with one of these tags; empty: everything
    state: SubscriberState
    created: datetime
    changed: datetime
    activated: datetime | None
    period_end: datetime | None = None  # where their next digest starts (None: none yet)
    period_seq: int = 0  # the last seq their latest digest covered
    send_at: str | None = None  # "HH:MM" in their zone; None: [digest] send_at
    weekday: str | None = None  # a weekly digest's day ("monday"...); None: [digest] weekday
    paused_until: datetime | None = None  # no mail before; once past, no backlog from before
    token_version: int = 0  # their manage and feed links carry it: a new one kills the old
    soft_score: float = 0.0  # temporary failures, as of soft_at (halving with time)
    soft_at: datetime | None = None

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True, slots=True)
class Problem:
    """A document that could not become an entry, with a reason a person can act on."""

    source: str
    reason: str
    seen: datetime


def paragraph_hash(text: str) -> str:
    """The key under which a paragraph is counted and learned as boilerplate."""
    return hashlib.sha256(text.encode()).hexdigest()


def slugify(text: str, *, max_length: int = 60) -> str:
    """ASCII, lower case, words joined by hyphens, cut at a word boundary (entry and tag slugs)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length:
            break
        slug = candidate
    return slug or (words[0][:max_length] if words else "")


@dataclass(frozen=True, slots=True)
class Site:
    """What every page and feed needs to know about the instance."""

    title: str
    description: str
    base_url: str
    language: str
    author: str
    email: str
    hub: str
    timezone: str
    max_entries: int
    subscribe_form: bool = False  # only `newsdrop run` answers the form's POST

    @classmethod
    def from_settings(cls, settings: Settings) -> Site:
        s = settings.site
        return cls(
            title=s.title,
            description=s.description,
            base_url=s.base_url,
            language=s.language,
            author=s.author or s.title,
            email=s.email,
            hub=settings.feeds.websub_hub,
            timezone=s.timezone,
            max_entries=settings.feeds.max_entries,
            subscribe_form=settings.server.subscribe_form,
        )

    @property
    def feed_urls(self) -> dict[str, str]:
        return {
            "atom": f"{self.base_url}atom.xml",
            "rss": f"{self.base_url}rss.xml",
            "json": f"{self.base_url}feed.json",
        }
