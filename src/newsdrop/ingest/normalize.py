"""Pure: (bytes, file name, hints) -> Entry. No I/O, no clock, no globals.

The steps, in order: decode (BOM, UTF-8, then a detector for legacy 8-bit
encodings), clean the text (NFC, line endings, spaces, characters XML 1.0
forbids), cut it into paragraphs, strip trailing boilerplate, then derive the
title, summary, dates, identity and language. A document that cannot become an
entry raises a ``SourceError`` whose message says why and what to do.
"""

from __future__ import annotations

import functools
import hashlib
import html
import os
import re
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

import charset_normalizer
from dateutil import parser as date_parser

from newsdrop.errors import EmptyDocumentError, SourceError, TooLargeError, UndecodableError
from newsdrop.ingest import markup
from newsdrop.ingest.markup import Block, PageMeta
from newsdrop.model import Entry, Hints, paragraph_hash, slugify

TEXT_SUFFIXES = frozenset({".txt", ".text"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})

TITLE_MAX = 90
SUMMARY_MAX = 300
WORDS_PER_MINUTE = 230

# Characters XML 1.0 forbids (C0 controls but tab/newline, surrogates, U+FFFE/U+FFFF), and
# the C1 controls it discourages: feed readers turn those into windows-1252 characters.
_XML_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028]")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’')\]]))\s+(?=[\"“‘'(\[]?[A-Z0-9À-ÖØ-Þ])")
_ABBREVIATIONS = frozenset(  # words whose full stop does not end a sentence
    "mr mrs ms dr prof st jr sr gen col lt sgt capt rep sen gov rev hon no vs etc inc ltd co "  # noqa: SIM905
    "corp mt ft jan feb mar apr jun jul aug sep sept oct nov dec fig approx dept univ".split()
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_HEADLINE_END = re.compile(r"[.:;,]$")
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATELINE = re.compile(
    r"^(?:(?:Published|Posted|Date|Dated|Updated)[:\s]\s*|[A-Z][A-Za-z .'-]{1,40},\s+)?"
    r"(?P<date>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    rf"|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}})\b"
)


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
    text = clean_characters(decode(data, name))
    meta = PageMeta()
    front: dict[str, Any] = {}
    if kind == "text":
        blocks = [
            Block(p, f"<p>{html.escape(p, quote=False)}</p>")
            for p in split_paragraphs(_collapse_spaces(text))
        ]
    elif kind == "markdown":  # Markdown keeps its spaces: indentation and breaks are syntax
        try:
            front, body = markup.split_front_matter(text)
        except ValueError as exc:
            raise SourceError(
                f"{name}: {exc}; fix the front matter between the --- lines"
            ) from None
        meta = _front_matter_meta(front)
        _check_front_matter(front, meta, name, ZoneInfo(hints.timezone))
        blocks = markup.markdown_blocks(body)
    else:
        root = markup.parse_page(text)
        meta = markup.page_meta(root) if root is not None else PageMeta()
        blocks = markup.extract_article(text) or markup.page_body_blocks(root)
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
    elif blocks and _same_words(blocks[0].text, title):
        blocks = blocks[1:]  # the page repeats its title as the first heading
    if hints.strip_boilerplate:
        blocks = strip_boilerplate(blocks, hints.boilerplate_markers, hints.learned_boilerplate)
    paragraphs = [b.text for b in blocks if b.text]
    content_text = "\n\n".join(paragraphs)
    lead = [b.text for b in blocks if b.text and not b.html.startswith("<h")] or paragraphs
    summary = clean_text(meta.description).replace("\n", " ") or summarize(lead)
    if len(summary) > SUMMARY_MAX:
        summary = summarize([summary])

    zone = ZoneInfo(hints.timezone)
    published = (
        _parse_date(meta.published, zone)
        or _dateline(paragraphs[:3], zone)
        or _as_utc(hints.first_seen)
    )
    updated = _parse_date(meta.updated, zone) or hints.updated or published
    slug = hints.slug or slugify(title) or slugify(PurePosixPath(name).stem) or "entry"
    front_id = str(front.get("id") or "").strip()
    entry_id = (  # once minted, an id never changes, whatever the front matter says later
        hints.entry_id
        or (front_id if _URI.fullmatch(front_id) else "")
        or mint_id(hints.tag_authority, hints.first_seen.date(), slug)
    )
    words = len(content_text.split())
    lang = meta.lang or (detect_language(content_text) if hints.detect_language else "")
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
        tags=tuple(dict.fromkeys(t for t in (clean_text(x) for x in meta.tags) if t)),
        word_count=words,
        reading_minutes=max(1, round(words / WORDS_PER_MINUTE)),
        content_hash=hashlib.sha256(f"{title}\n{content_text}".encode()).hexdigest(),
        last_paragraph=paragraphs[-1] if paragraphs else "",
        draft=front.get("draft") is True,
        media=markup.references(blocks),
    )


def decode(data: bytes, name: str) -> str:
    """Bytes -> str: BOMs first, then strict UTF-8, then a detector; undecidable is an error."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                raise UndecodableError(
                    f"{name}: starts with a {codec} byte-order mark but is not valid {codec}; "
                    "save it again as UTF-8"
                ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        raise UndecodableError(f"{name}: looks like a binary file, not text; remove it from seeds/")
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is not None:
        # Ties (cp1250 and cp1252 often read a French text equally well) go to
        # windows-1252, the web's default legacy encoding.
        tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
        best = next((m for m in tied if m.encoding == "cp1252"), best)
    if best is None or best.encoding is None or best.chaos > 0.2:
        raise UndecodableError(
            f"{name}: the text encoding cannot be decided (not UTF-8, and no legacy encoding fits); "
            "save it again as UTF-8"
        )
    return str(best)


def clean_characters(text: str) -> str:
    """NFC, LF line endings, no XML-forbidden characters. Spaces are left as they are."""
    if not text:
        return text
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text).replace("\u2029", "\n\n")
    return _XML_FORBIDDEN.sub("", text)


def clean_text(text: str) -> str:
    """clean_characters, then single spaces and at most one blank line; quotes kept as written."""
    return _collapse_spaces(clean_characters(text))


def _collapse_spaces(text: str) -> str:
    lines: list[str] = []
    for line in text.split("\n"):
        line = " ".join(line.split())  # every run of spaces, tabs and odd blanks -> one space
        if line or (lines and lines[-1]):  # at most one blank line in a row
            lines.append(line)
    return "\n".join(lines).strip()


def split_paragraphs(text: str) -> list[str]:
    """Blank lines separate paragraphs. Inside a block, lines are paragraphs of their own
    when the text is written one paragraph per line (long lines, or most lines end a
    sentence); otherwise the block is hard-wrapped prose and its lines are joined."""
    paragraphs: list[str] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        if not lines:
            continue
        if len(lines) > 1 and _one_paragraph_per_line(lines):
            paragraphs.extend(lines)
        else:
            paragraphs.append(" ".join(lines))
    return paragraphs


def strip_boilerplate(
    blocks: list[Block], markers: tuple[str, ...], learned: frozenset[str] = frozenset()
) -> list[Block]:
    """Drop trailing appeals from a body: from the first paragraph after the first one that
    starts with a marker to the end; then trailing paragraphs learned as boilerplate."""
    lowered, longest = _lowered_markers(markers)
    if lowered:
        for index in range(1, len(blocks)):
            if blocks[index].text[:longest].lower().startswith(lowered):
                blocks = blocks[:index]
                break
    while learned and blocks and paragraph_hash(blocks[-1].text) in learned:
        blocks = blocks[:-1]
    return blocks


@functools.lru_cache(maxsize=8)
def _lowered_markers(markers: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    lowered = tuple(m.lower() for m in markers if m.strip())
    return lowered, max((len(m) for m in lowered), default=0)


def derive_title(blocks: list[Block], name: str) -> tuple[str, list[Block]]:
    """A headline line if the document opens with one (removed from the body), else the
    first sentence cut to TITLE_MAX characters, else the file name made readable."""
    if len(blocks) > 1 and is_headline(blocks[0].text):
        return blocks[0].text, blocks[1:]
    lead = next((b.text for b in blocks if b.text and not _is_dateline(b.text)), "")
    if lead:
        title = headline_from_sentence(first_sentence(lead))
        if title.strip(" .…"):
            return title, blocks
    stem = PurePosixPath(name).stem
    readable = " ".join(clean_text(re.sub(r"[-_.]+", " ", stem)).split())
    return (readable[:1].upper() + readable[1:]) or "Untitled", blocks


def is_headline(line: str) -> bool:
    """Short (at most TITLE_MAX characters), one line, no sentence-final punctuation."""
    words = line.split()
    if _is_dateline(line):
        return False  # "London, 5 May 2020" dates the story; it does not name it
    return (
        "\n" not in line
        and 0 < len(words) <= 20
        and len(line) <= TITLE_MAX
        and not _HEADLINE_END.search(line)
    )


def split_sentences(text: str) -> list[str]:
    """Sentences, not fooled by "Dr. Smith", "U.S. officials" or initials such as "J. Doe"."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text.replace("\n", " ")):
        if sentences and _ends_with_abbreviation(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [s.strip() for s in sentences if s.strip()]


def _ends_with_abbreviation(sentence: str) -> bool:
    last = sentence.rsplit(" ", 1)[-1].rstrip(".").lower()
    return last in _ABBREVIATIONS or len(last) == 1 or bool(re.fullmatch(r"(\w\.)+\w", last))


def _is_dateline(line: str) -> bool:
    match = _DATELINE.match(line)
    return bool(match) and len(line) - match.end() < 3  # type: ignore[union-attr]


def first_sentence(text: str) -> str:
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""


def headline_from_sentence(sentence: str) -> str:
    """The sentence without its final full stop, cut at a word boundary with an ellipsis."""
    sentence = sentence.rstrip()
    if sentence.endswith(".") and not sentence.endswith(".."):
        sentence = sentence[:-1]
    return _shorten(sentence, TITLE_MAX)


def summarize(paragraphs: list[str]) -> str:
    """Whole sentences from the lead, at most SUMMARY_MAX characters."""
    if not paragraphs:
        return ""
    sentences = split_sentences(paragraphs[0]) or [""]
    summary = ""
    for sentence in sentences:
        candidate = f"{summary} {sentence}".strip()
        if len(candidate) > SUMMARY_MAX:
            break
        summary = candidate
    return summary or _shorten(sentences[0], SUMMARY_MAX)


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


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, "" when unsure (CLD2: several per millisecond)."""
    if len(text) < 20:
        return ""
    import pycld2  # loaded on first use: only instances that turn detection on pay for it

    try:
        reliable, _bytes, details = pycld2.detect(text[:2000])
    except pycld2.error:
        return ""
    code = str(details[0][1])
    return code if reliable and code not in ("un", "xxx") else ""


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–—") + "…"


def _one_paragraph_per_line(lines: list[str]) -> bool:
    ended = sum(_ends_sentence(line) for line in lines[:-1])
    return ended * 2 >= len(lines) - 1 or max(len(line) for line in lines) > 120


def _ends_sentence(line: str) -> bool:
    return bool(re.search(r"[.!?:…][\"”’')\]]*$", line))


def _same_words(a: str, b: str) -> bool:
    return a.split() == b.split()


def _front_matter_meta(front: dict[str, Any]) -> PageMeta:
    tags = front.get("tags") or front.get("categories") or ()
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    return PageMeta(
        title=_scalar(front.get("title")),
        description=_scalar(front.get("summary") or front.get("description")),
        author=_scalar(front.get("author")),
        published=_scalar(front.get("date") or front.get("published")),
        updated=_scalar(front.get("updated") or front.get("modified")),
        lang=_scalar(front.get("lang") or front.get("language")),
        tags=tuple(_scalar(t) for t in tags if _scalar(t)) if isinstance(tags, list) else (),
    )


def _check_front_matter(front: dict[str, Any], meta: PageMeta, name: str, zone: ZoneInfo) -> None:
    """What the publisher wrote must mean what they meant: a date that is not one, an id
    that is not a URI or a language that is not a tag would otherwise be dropped in
    silence (published now, with a minted id, or in the feeds as written)."""
    for key, value in (("date", meta.published), ("updated", meta.updated)):
        try:
            parsed = _utc_date(value, zone)
        except _OutOfRangeError:
            raise SourceError(
                f"{name}: front matter {key} {value!r} is out of range: in UTC it falls "
                "before the year 1 or after 9999; write the date the document was published, "
                "such as 2026-11-25T08:00:00+02:00"
            ) from None
        if value.strip() and parsed is None:
            raise SourceError(
                f"{name}: front matter {key} {value!r} is not a date; write it as "
                "2026-11-25 or 2026-11-25T08:00:00+02:00"
            )
    front_id = str(front.get("id") or "").strip()
    if front_id and not _URI.fullmatch(front_id):
        raise SourceError(
            f"{name}: front matter id {front_id!r} is not a URI; use one such as "
            "tag:example.org,2026:my-story, or remove it and newsdrop mints one"
        )
    if meta.lang and not _LANGUAGE_TAG.fullmatch(meta.lang.strip()):
        raise SourceError(
            f"{name}: front matter lang {meta.lang!r} is not a language tag such as en or en-GB"
        )


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def _scalar(value: object) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class _OutOfRangeError(ValueError):
    """A date that Python can write but not move to UTC (year 1 east of Greenwich, 9999-12-31
    west of it): a mistake or a placeholder, never a publication date."""


def _parse_date(text: str, zone: ZoneInfo) -> datetime | None:
    """A date in any common notation, in UTC; None when there is none (or it is out of
    range: a page's meta tags and datelines are hints, and the next one is tried)."""
    try:
        return _utc_date(text, zone)
    except _OutOfRangeError:
        return None


def _utc_date(text: str, zone: ZoneInfo) -> datetime | None:
    """A date in any common notation; naive dates are in the site's time zone."""
    if not text.strip():
        return None
    try:
        parsed = date_parser.parse(text.strip())
    except (ValueError, OverflowError, date_parser.ParserError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return _as_utc(parsed)
    except (OverflowError, ValueError):
        raise _OutOfRangeError(text) from None


def _dateline(paragraphs: list[str], zone: ZoneInfo) -> datetime | None:
    for paragraph in paragraphs:
        match = _DATELINE.match(paragraph)
        if match:
            return _parse_date(match.group("date"), zone)
    return None


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = datetime.combine(moment.date(), moment.time(), UTC)
    return moment.astimezone(UTC)
