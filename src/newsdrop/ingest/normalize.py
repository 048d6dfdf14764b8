"""Pure: (bytes, file name, hints) -> Entry. No I/O, no clock, no globals.

The steps, in order: decode (BOM, UTF-8, then a detector for legacy 8-bit
encodings), clean the text (NFC, line endings, spaces, characters XML 1.0
forbids), cut it into paragraphs, strip trailing boilerplate, then derive the
title, summary, dates, identity and language. A document that cannot become an
entry raises a ``SourceError`` whose message says why and what to do.
"""

from __future__ import annotations

import hashlib
import html
import os
from dataclasses import replace
from datetime import date
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

from newsdrop.errors import EmptyDocumentError, SourceError, TooLargeError
from newsdrop.ingest import markup
from newsdrop.ingest.dates import (
    as_utc,
    check_front_matter,
    dateline_date,
    front_matter_meta,
    parse_date,
    read_date,
)
from newsdrop.ingest.derive import (
    SUMMARY_MAX,
    derive_title,
    detect_language,
    same_words,
    strip_boilerplate,
    summarize,
)
from newsdrop.ingest.markup import Block, PageMeta
from newsdrop.ingest.text import (
    URI,
    clean_characters,
    clean_text,
    collapse_spaces,
    decode,
    split_paragraphs,
)
from newsdrop.model import Entry, Hints, distinct_tags, slugify

TEXT_SUFFIXES = frozenset({".txt", ".text"})


MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})


HTML_SUFFIXES = frozenset({".html", ".htm"})


WORDS_PER_MINUTE = 230


def document_kind(name: str) -> str | None:
    """'text', 'markdown' or 'html' by file suffix; None for files newsdrop does not publish."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in HTML_SUFFIXES:
        return "html"
    return None


def normalize(data: bytes, name: str, hints: Hints) -> Entry:
    """Turn one document into an Entry, or raise SourceError with a reason a person can act on."""
    return claim_slug(_normalize(data, name, hints), hints)


def claim_slug(entry: Entry, hints: Hints) -> Entry:
    """A new entry's slug made unique among ``hints.taken_slugs`` (and a minted id with it).

    Apart from the rest so that a worker process can normalise without the set of every
    slug, which the caller then applies (sandbox.py)."""
    if hints.slug or entry.slug not in hints.taken_slugs:
        return entry
    slug = unique_slug(entry.slug, hints.taken_slugs)
    minted = mint_id(hints.tag_authority, hints.first_seen.date(), entry.slug)
    entry_id = mint_id(hints.tag_authority, hints.first_seen.date(), slug)
    return replace(entry, slug=slug, id=entry_id if entry.id == minted else entry.id)


def _normalize(data: bytes, name: str, hints: Hints) -> Entry:
    kind = document_kind(name)
    if kind is None:
        raise SourceError(f"{name}: not a .txt, .md or .html document; newsdrop ignores it")
    if len(data) > hints.max_bytes:
        raise TooLargeError(
            f"{name}: {len(data):,} bytes is over [normalize] max_bytes = {hints.max_bytes:,}; "
            "split the document or raise the limit"
        )
    text = clean_characters(decode(data, name, kind, configured_encoding(name, hints.encodings)))
    meta = PageMeta()
    guessed_date = ""  # a web page's date read from its body, after any dateline in the text
    front: dict[str, Any] = {}
    if kind == "text":
        blocks = [
            Block(p, f"<p>{html.escape(p, quote=False)}</p>")
            for p in split_paragraphs(collapse_spaces(text))
        ]
    elif kind == "markdown":  # Markdown keeps its spaces: indentation and breaks are syntax
        try:
            front, body = markup.split_front_matter(text)
        except ValueError as exc:
            raise SourceError(
                f"{name}: {exc}; fix the front matter between the --- lines"
            ) from None
        meta = front_matter_meta(front)
        check_front_matter(front, meta, name, ZoneInfo(hints.timezone))
        blocks = markup.markdown_blocks(body)
    else:
        root = markup.parse_page(text)
        meta = markup.page_meta(root) if root is not None else PageMeta()
        if not (meta.published and meta.author):
            guessed_date, guessed_author = markup.guessed_meta(text, hints.first_seen.date())
            meta = replace(meta, author=meta.author or guessed_author)
        blocks = markup.extract_article(text, hints.favor) or markup.page_body_blocks(root)
    if kind != "text":
        blocks = [Block(clean_text(b.text), b.html) for b in blocks]
        blocks = [b for b in blocks if b.text or "<img" in b.html]

    title = clean_text(meta.title).replace("\n", " ")
    if not blocks and not title:
        raise EmptyDocumentError(
            f"{name}: has no text yet; it is published as soon as it has some "
            "(a file still being written is retried when it changes)"
        )
    if not title:
        title, blocks = derive_title(blocks, name)
    elif blocks and same_words(blocks[0].text, title):
        blocks = blocks[1:]  # the page repeats its title as the first heading
    if hints.strip_boilerplate:
        blocks = strip_boilerplate(
            blocks,
            hints.boilerplate_markers,
            hints.learned_boilerplate,
            web_page=kind == "html",
        )
    paragraphs = [b.text for b in blocks if b.text]
    content_text = "\n\n".join(paragraphs)
    lead = [b.text for b in blocks if b.text and not b.html.startswith("<h")] or paragraphs
    summary = clean_text(meta.description).replace("\n", " ") or summarize(lead)
    if len(summary) > SUMMARY_MAX:
        summary = summarize([summary])

    lang = meta.lang or (detect_language(content_text) if hints.detect_language else "")
    zone = ZoneInfo(hints.timezone)
    language = lang or hints.default_lang  # reads an ambiguous zone abbreviation
    stated, published_note = read_date(meta.published, zone, language)
    changed, updated_note = read_date(meta.updated, zone, language)
    published = (
        stated
        or dateline_date(paragraphs[:3], zone)
        or parse_date(guessed_date, zone)
        or as_utc(hints.first_seen)
    )
    updated = changed or hints.updated or published
    slug = hints.slug or slugify(title) or slugify(PurePosixPath(name).stem) or "entry"
    front_id = str(front.get("id") or "").strip()
    entry_id = (  # once minted, an id never changes, whatever the front matter says later
        hints.entry_id
        or (front_id if URI.fullmatch(front_id) else "")
        or mint_id(hints.tag_authority, hints.first_seen.date(), slug)
    )
    words = len(content_text.split())
    return Entry(
        id=entry_id,
        slug=slug,
        title=title,
        summary=summary,
        content_html="\n".join(b.html for b in blocks),
        content_text=content_text,
        published=published,
        updated=max(updated, published),
        author=clean_text(meta.author).replace("\n", " "),
        lang=(lang or hints.default_lang).strip(),
        tags=distinct_tags(clean_text(x) for x in meta.tags),
        word_count=words,
        reading_minutes=max(1, round(words / WORDS_PER_MINUTE)),
        content_hash=hashlib.sha256(f"{title}\n{content_text}".encode()).hexdigest(),
        last_paragraph=paragraphs[-1] if paragraphs else "",
        draft=front.get("draft") is True,
        media=markup.references(blocks),
        notes=tuple(note for note in (published_note, updated_note) if note),
    )


def configured_encoding(name: str, encodings: tuple[tuple[str, str], ...]) -> str:
    """The encoding ``[normalize] encoding`` gives the folder of ``name`` (the longest folder
    that holds it; "" is every folder), or "" for none."""
    folder = PurePosixPath(name).parent.as_posix()
    found = ""
    for prefix, encoding in sorted(encodings, key=lambda pair: len(pair[0])):
        if prefix in ("", ".") or folder == prefix or folder.startswith(prefix.rstrip("/") + "/"):
            found = encoding
    return found


def unique_slug(slug: str, taken: frozenset[str] | set[str]) -> str:
    """The slug, or the slug with the first free suffix -2, -3, ..."""
    candidate, number = slug, 1
    while candidate in taken:
        number += 1
        candidate = f"{slug}-{number}"
    return candidate


def mint_id(authority: str, day: date, slug: str) -> str:
    """A tag: URI (RFC 4151): permanent once minted."""
    return f"tag:{authority},{day.isoformat()}:{slug}"
