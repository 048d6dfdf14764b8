"""Typed, immutable values that cross module lines."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
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
    detect_language: bool = True
    favor: str = "balanced"  # trafilatura's leaning on web pages: "precision", "recall"
    encodings: tuple[tuple[str, str], ...] = ()  # (folder, encoding): [normalize] encoding
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
    notes: tuple[str, ...] = field(default=())  # what was guessed (a date's zone): for status

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
    language: str = ""  # of their mails, a tag such as "uk"; "": the site's

    def mail_language(self, site_language: str) -> str:
        return self.language or site_language

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


SLUG_MAX_BYTES = 200  # with "-99" and ".atom.xml", within any file system's 255 bytes a name


def slugify(text: str, *, max_length: int = 60) -> str:
    """Words of any script, lower case, joined by hyphens, cut at a word boundary: entry and
    tag slugs, each a file name and a URL path segment on any system.

    Latin letters lose their accents (café -> cafe), as slugs always have; every other
    letter, digit and mark stays as it is (NFC), so a Ukrainian or Arabic title keeps its
    words. Anything else separates words, but invisible format characters (a Persian
    zero-width non-joiner) are left out without splitting the word."""
    words = [_fold(word) for word in _slug_words(unicodedata.normalize("NFC", text).lower())]
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length or len(candidate.encode()) > SLUG_MAX_BYTES:
            break
        slug = candidate
    if slug or not words:
        return slug
    first = words[0][:max_length]
    while len(first.encode()) > SLUG_MAX_BYTES:
        first = first[:-1]
    return first


def distinct_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """An entry's tags as first written, once each: two that differ only by case or Unicode
    normalisation ("Київ", "київ") are one. (Tags whose slugs meet, such as "C++" and "C",
    stay two here and share one feed: tag_names.)"""
    seen: dict[str, str] = {}
    for tag in tags:
        if tag:
            seen.setdefault(unicodedata.normalize("NFC", tag).lower(), tag)
    return tuple(seen.values())


def tag_names(tags: Iterable[str]) -> dict[str, str]:
    """Tag slug -> the tag as first written: two tags that differ only by case or Unicode
    normalisation ("Київ", "київ") are one tag, its feeds named by the slug."""
    names: dict[str, str] = {}
    for tag in tags:
        slug = slugify(tag)
        if slug:
            names.setdefault(slug, tag)
    return names


def _slug_words(text: str) -> list[str]:
    words, word = [], []
    for char in text:
        kind = unicodedata.category(char)
        if kind[0] in "LNM":
            word.append(char)
        elif kind != "Cf":
            if word:
                words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return words


def _fold(word: str) -> str:
    """A letter or digit that is an ASCII one under its accents becomes it; marks that
    followed it go with its accents; every other character stays."""
    out: list[str] = []
    folded_last = False
    for char in word:
        if unicodedata.category(char)[0] == "M":
            if not folded_last:
                out.append(char)
            continue
        bare = "".join(
            c for c in unicodedata.normalize("NFKD", char) if unicodedata.category(c)[0] != "M"
        )
        folded_last = bare.isascii() and bare.isalnum()
        out.append(bare.lower() if folded_last else char)
    return "".join(out)


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
