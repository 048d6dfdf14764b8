"""Entries -> Atom, RSS (feedgen) and JSON Feed 1.1 documents. Pure: values in, bytes out.

Everything a feed says comes from its arguments, never from the clock, so the
same entries always give byte-identical documents: feedgen would stamp the
current time on ``updated``/``lastBuildDate``, so both are set from the entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urljoin

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree
from lxml import html as lxml_html

from newsdrop import media
from newsdrop.model import StoredEntry

HISTORY_NS = "http://purl.org/syndication/history/1.0"
XML_NS = "http://www.w3.org/XML/1998/namespace"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GENERATOR = "newsdrop"


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry as feeds show it: every URL absolute."""

    id: str
    url: str
    title: str
    summary: str
    content_html: str
    published: datetime
    updated: datetime
    author: str
    tags: tuple[str, ...]
    lang: str


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """What a feed document says about itself."""

    title: str
    description: str
    self_url: str  # the URL of the Atom document (also its id)
    home_url: str
    language: str
    author: str
    email: str = ""
    hub: str = ""
    links: dict[str, str] = field(default_factory=dict)  # rel -> href (RFC 5005)
    archive: bool = False


def entry_url(base_url: str, slug: str) -> str:
    """An entry page's address: the slug as written (any script), percent-encoded as UTF-8."""
    return f"{base_url}entries/{quote(slug)}.html"


def tag_url(base_url: str, tag_slug: str, suffix: str = "atom.xml") -> str:
    return f"{base_url}tags/{quote(tag_slug)}.{suffix}"


def media_url(base_url: str, source: str, reference: str) -> str | None:
    """Where a file referenced by a document is published: media/<its path under seeds/>
    (an SVG as its PNG); None for a kind never published (media.py)."""
    published = media.resolve(source, reference).published
    return None if published is None else f"{base_url}media/{quote(published)}"


def feed_item(stored: StoredEntry, *, base_url: str, default_author: str) -> FeedItem:
    """An entry with its content's relative URLs made absolute (media files first)."""
    entry = stored.entry
    url = entry_url(base_url, entry.slug)
    published = {
        ref: link for ref in entry.media if (link := media_url(base_url, stored.source, ref))
    }
    return FeedItem(
        id=entry.id,
        url=url,
        title=entry.title,
        summary=entry.summary,
        content_html=absolute_links(entry.content_html, url, published),
        published=entry.published,
        updated=entry.updated,
        author=entry.author or default_author,
        tags=entry.tags,
        lang=entry.lang,
    )


def absolute_links(content: str, page_url: str, media: dict[str, str]) -> str:
    """Resolve every href/src against the entry's own URL; published media go to media/."""
    if "href=" not in content and "src=" not in content:
        return content
    root = lxml_html.fragment_fromstring(content, create_parent="div")
    root.rewrite_links(
        lambda link: media.get(unquote(link)) or urljoin(page_url, link), resolve_base_href=False
    )
    text = root.text or ""
    return text + "".join(
        etree.tostring(child, encoding="unicode", method="html") for child in root
    )


def feed_updated(items: Sequence[FeedItem]) -> datetime:
    """A feed changes when one of its entries does: never the time of the build."""
    return max((item.updated for item in items), default=EPOCH)


class _ArchiveExtension(BaseExtension):  # type: ignore[misc]
    """feedgen has no element for RFC 5005's <fh:archive/>; this adds it to Atom."""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: Any) -> Any:
        etree.SubElement(feed, f"{{{HISTORY_NS}}}archive")
        return feed


class _EntryLanguage(BaseEntryExtension):  # type: ignore[misc]
    """feedgen sets xml:lang on the feed only; each entry carries its own (RFC 4287 2), so
    that a reader shows a Ukrainian entry of an English feed as Ukrainian."""

    language = ""

    def extend_atom(self, entry: Any) -> Any:
        if self.language:
            entry.set(f"{{{XML_NS}}}lang", self.language)
        return entry


class _RssHubExtension(BaseExtension):  # type: ignore[misc]
    """feedgen writes only the self link into RSS; WebSub subscribers also need the hub."""

    hub = ""

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]
        link = etree.Element("{http://www.w3.org/2005/Atom}link", href=self.hub, rel="hub")
        channel.insert(3, link)
        return feed


def _generator(
    info: FeedInfo, items: Sequence[FeedItem], *, self_url: str, self_type: str
) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(info.self_url)
    fg.title(info.title)
    fg.subtitle(info.description or info.title)
    fg.description(info.description or info.title)
    fg.author({"name": info.author, **({"email": info.email} if info.email else {})})
    fg.language(info.language)
    fg.generator(GENERATOR)
    fg.updated(feed_updated(items))
    fg.link(href=self_url, rel="self", type=self_type)
    if info.hub:
        fg.link(href=info.hub, rel="hub")
        fg.register_extension("websub", _RssHubExtension, None, atom=False, rss=True)
        fg.websub.hub = info.hub
    for rel, href in sorted(info.links.items()):
        fg.link(href=href, rel=rel, type="application/atom+xml")
    fg.link(href=info.home_url, rel="alternate", type="text/html")  # RSS takes the last link
    if info.archive:
        fg.register_extension("history", _ArchiveExtension, None, atom=True, rss=False)
    fg.load_extension("dc", atom=False, rss=True)
    fg.register_extension("entrylang", BaseExtension, _EntryLanguage, atom=True, rss=False)
    for item in items:  # newest first, as given
        fe = fg.add_entry(order="append")
        fe.id(item.id)
        fe.guid(item.id, permalink=False)
        fe.title(item.title)
        fe.link(href=item.url, rel="alternate", type="text/html")
        fe.published(item.published)
        fe.updated(item.updated)
        fe.author({"name": item.author})
        fe.dc.dc_creator(item.author)
        fe.entrylang.language = item.lang
        if item.summary:
            fe.summary(item.summary, type="text")
            fe.description(item.summary)
        fe.content(item.content_html or f"<p>{_escape(item.title)}</p>", type="html")
        for tag in item.tags:
            fe.category(term=tag, label=tag)
    return fg


def render_atom(info: FeedInfo, items: Sequence[FeedItem]) -> bytes:
    """Atom 1.0 (RFC 4287), with RFC 5005 links and <fh:archive/> for archive pages."""
    fg = _generator(info, items, self_url=info.self_url, self_type="application/atom+xml")
    return bytes(fg.atom_str(pretty=True, encoding="UTF-8"))


def render_rss(info: FeedInfo, items: Sequence[FeedItem], *, self_url: str) -> bytes:
    """RSS 2.0 with an atom:link to itself; guids are the entries' tag: ids."""
    fg = _generator(info, items, self_url=self_url, self_type="application/rss+xml")
    return bytes(fg.rss_str(pretty=True, encoding="UTF-8"))


def render_json(info: FeedInfo, items: Sequence[FeedItem], *, self_url: str) -> bytes:
    """JSON Feed 1.1, keys in a fixed order, dates in RFC 3339 UTC."""
    document: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": info.title,
        "home_page_url": info.home_url,
        "feed_url": self_url,
    }
    if info.description:
        document["description"] = info.description
    document["language"] = info.language
    document["authors"] = [{"name": info.author}]
    if info.hub:
        document["hubs"] = [{"type": "WebSub", "url": info.hub}]
    document["items"] = [_json_item(item) for item in items]
    # Compact: json's C encoder is only used without indent, and feeds are read by programs.
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _json_item(item: FeedItem) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "content_html": item.content_html,
    }
    if item.summary:
        record["summary"] = item.summary
    record["date_published"] = rfc3339(item.published)
    record["date_modified"] = rfc3339(item.updated)
    record["authors"] = [{"name": item.author}]
    if item.tags:
        record["tags"] = list(item.tags)
    record["language"] = item.lang
    return record


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
