"""A subscriber's digests as their own Atom feed (/me/<feed token>/digests.atom): one entry
per digest sent to them, holding its stories, linked to its web view. Pure: values in,
bytes out, through feedgen as the site's feeds are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from feedgen.feed import FeedGenerator

from newsdrop.publish.feeds import EPOCH, GENERATOR, FeedItem

FEED_DIGESTS = 50  # the latest digests a private feed holds


@dataclass(frozen=True, slots=True)
class SentDigest:
    """One digest as the feed shows it."""

    id: int
    label: str  # its period, as the mail said it ("Monday 7 December 2026")
    sent: datetime
    view_url: str  # its web view (signed)
    items: tuple[FeedItem, ...]


def digest_feed(
    *, title: str, self_url: str, home_url: str, language: str, digests: Sequence[SentDigest]
) -> bytes:
    """The Atom document: newest digest first; its id is the feed's own (unguessable) URL."""
    feed = FeedGenerator()
    feed.id(self_url)
    feed.title(title)
    feed.link(href=self_url, rel="self")
    feed.link(href=home_url, rel="alternate")
    feed.language(language)
    feed.generator(GENERATOR)
    feed.updated(max((d.sent for d in digests), default=EPOCH))
    for digest in reversed(digests):  # feedgen puts the last added first
        entry = feed.add_entry()
        entry.id(f"{self_url}#digest-{digest.id}")
        count = len(digest.items)
        entry.title(f"{digest.label}: {count} {'story' if count == 1 else 'stories'}")
        entry.link(href=digest.view_url, rel="alternate")
        entry.published(digest.sent)
        entry.updated(digest.sent)
        entry.content(_contents(digest.items), type="html")
    data: bytes = feed.atom_str(pretty=True)
    return data


def _contents(items: Sequence[FeedItem]) -> str:
    parts = []
    for item in items:
        summary = f"<p>{escape(item.summary)}</p>" if item.summary else ""
        parts.append(f'<h2><a href="{escape(item.url)}">{escape(item.title)}</a></h2>{summary}')
    return "\n".join(parts)
