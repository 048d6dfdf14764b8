"""Markdown and HTML documents -> blocks of text and safe HTML. Pure functions.

Markdown is rendered by markdown-it-py, main text is extracted from web pages
by trafilatura, and every piece of HTML that leaves this module has passed
through nh3 (ammonia), so scripts, styles, event attributes and
``javascript:`` URLs never reach a feed or an email.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import unquote

import nh3
import trafilatura
import yaml
from lxml import etree
from lxml import html as lxml_html
from markdown_it import MarkdownIt
from trafilatura.htmlprocessing import convert_to_html

# trafilatura logs every page without a main text (as warnings and errors);
# newsdrop reports that outcome itself, as an entry with no body.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

_SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "dl", "dt", "em",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "small", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_SAFE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
}
_BLOCK_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "figcaption", "tr", "dt"}
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_TITLE_SEPARATORS = re.compile(r"\s+[|–—·:-]\s+")
_PAGE_SUFFIX = re.compile(r"(\.(html?|md|markdown|txt|php|aspx?)|/|^[^.]*)$", re.IGNORECASE)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_MARKDOWN = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(
    ["table", "strikethrough"]
)


@dataclass(frozen=True, slots=True)
class Block:
    """One paragraph-like piece of a document: its plain text and its HTML.

    ``html`` is always safe: it is either escaped text or a piece of a fragment
    that went through ``sanitize``, so joining blocks needs no second pass.
    """

    text: str
    html: str


@dataclass(frozen=True, slots=True)
class PageMeta:
    """What a document says about itself, before any fallback is applied."""

    title: str = ""
    description: str = ""
    author: str = ""
    published: str = ""
    updated: str = ""
    lang: str = ""
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def sanitize(html: str) -> str:
    """Keep structure, links and images; drop anything that could run or restyle."""
    return nh3.clean(
        html,
        tags=_SAFE_TAGS,
        attributes=_SAFE_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """YAML front matter between ``---`` lines, and the rest; ValueError for bad YAML."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        data = yaml.safe_load(match.group(1) or "") or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 2}" if mark else ""
        raise ValueError(f"front matter is not valid YAML{where} ({exc.problem})") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"front matter is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("front matter must be key: value lines")
    return {str(key).lower(): value for key, value in data.items()}, text[match.end() :]


def markdown_blocks(source: str) -> list[Block]:
    """Render Markdown and cut the result into top-level blocks."""
    return html_fragment_blocks(_MARKDOWN.render(source))


def html_fragment_blocks(fragment: str) -> list[Block]:
    """Safe blocks from an HTML fragment: each top-level element (or run of text) is one."""
    clean = sanitize(fragment)
    if not clean.strip():
        return []
    root = lxml_html.fragment_fromstring(clean, create_parent="div")
    for br in root.iter("br"):  # a line break separates words in the text too
        br.tail = " " + (br.tail or "")
    blocks = []
    if root.text and root.text.strip():
        blocks.append(Block(_text_of(root.text), f"<p>{_escape(root.text.strip())}</p>"))
    for child in root:
        text = _element_text(child)
        tail = child.tail
        child.tail = None
        if (
            text
            or child.tag in ("img", "figure", "hr", "table")
            or child.find(".//img") is not None
        ):
            blocks.append(Block(text, lxml_html.tostring(child, encoding="unicode").strip()))
        if tail and tail.strip():
            blocks.append(Block(_text_of(tail), f"<p>{_escape(tail.strip())}</p>"))
    return blocks


def page_meta(root: lxml_html.HtmlElement) -> PageMeta:
    """Title, description, author, dates, language and keywords from a page's head."""

    def meta(*names: str) -> str:
        for name in names:
            for attr in ("property", "name", "itemprop"):
                found = root.xpath(f"//meta[@{attr}=$n]/@content", n=name)
                if found and str(found[0]).strip():
                    return str(found[0]).strip()
        return ""

    titles = root.xpath("//title")
    headings = root.xpath("//h1")
    title = _text_of(titles[0].text_content()) if titles else ""
    heading = _text_of(headings[0].text_content()) if headings else ""
    if heading and (not title or title.startswith(heading)):
        title = heading  # "Headline | Site name": the page's own h1 is the headline
    elif _TITLE_SEPARATORS.search(title):
        title = max(_TITLE_SEPARATORS.split(title), key=len)  # drop the site's name
    keywords = meta("keywords", "article:tag", "news_keywords")
    time_nodes = root.xpath("//time[@datetime]/@datetime")
    return PageMeta(
        title=meta("og:title", "twitter:title") or title,
        description=meta("description", "og:description"),
        author=meta("author", "article:author", "byl"),
        published=meta(
            "article:published_time",
            "datePublished",
            "date",
            "dc.date",
            "DC.date.issued",
            "pubdate",
            "publishdate",
            "og:published_time",
        )
        or (str(time_nodes[0]) if time_nodes else ""),
        updated=meta("article:modified_time", "dateModified", "og:updated_time", "last-modified"),
        lang=str((root.xpath("/html/@lang") or [""])[0]).strip(),
        tags=tuple(t.strip() for t in keywords.split(",") if t.strip()),
    )


# A CMS's default user is not a byline (WordPress: "admin"); trafilatura compares lower-cased.
_NOT_AUTHORS = frozenset({"admin", "administrator", "editor", "webmaster", "staff"})


def guessed_meta(text: str, latest: date) -> tuple[str, str]:
    """(date, author) that trafilatura reads in a page's body where its head says nothing:
    htmldate's original publication date (no later than ``latest``, the day it was first
    seen) and a byline. Either may be empty."""
    try:
        found = trafilatura.extract_metadata(
            _XML_DECLARATION.sub("", text, count=1),
            date_config={
                "original_date": True,
                "extensive_search": True,
                "max_date": latest.isoformat(),
            },
            author_blacklist=set(_NOT_AUTHORS),
        )
    except (ValueError, TypeError, etree.LxmlError):
        return "", ""
    day = found.date or ""
    if day.endswith("-01-01"):  # a year alone, read from "© 2019" in a footer, dates nothing
        day = ""
    return day, found.author or ""


def parse_page(text: str) -> lxml_html.HtmlElement | None:
    """Parse a whole page leniently; None when there is no document at all."""
    text = _XML_DECLARATION.sub("", text, count=1)  # lxml refuses a str that declares an encoding
    try:
        return lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def page_body_blocks(root: lxml_html.HtmlElement | None) -> list[Block]:
    """The whole body, sanitised: for short pages and fragments that have no "main text"."""
    if root is None:
        return []
    body = root.find("body")
    source = body if body is not None else root
    inner = (source.text or "") + "".join(
        lxml_html.tostring(child, encoding="unicode") for child in source
    )
    return html_fragment_blocks(inner)


def extract_article(text: str, favor: str = "balanced") -> list[Block]:
    """The main article of a web page as blocks, without menus, footers and comments.

    trafilatura is asked twice when the page has images: with images, whose extraction also
    keeps captions, credits and share buttons around them ("Getty Images", "Share on
    Pinterest"), and without, whose text is the article's. The text comes from the second,
    the images from the first (see ``place_images``). ``favor`` is trafilatura's choice
    between "precision", "recall" and "balanced"."""
    source = _XML_DECLARATION.sub("", text, count=1)
    with_images = _extract(source, favor, images=True)
    if not any(_is_image(block) for block in with_images):
        return with_images
    return place_images(with_images, _extract(source, favor, images=False)) or with_images


def _extract(source: str, favor: str, *, images: bool) -> list[Block]:
    try:
        document = trafilatura.bare_extraction(
            source,
            include_comments=False,
            include_tables=True,
            include_images=images,
            include_links=True,
            include_formatting=True,
            with_metadata=False,
            favor_precision=favor == "precision",
            favor_recall=favor == "recall",
        )
    except (ValueError, TypeError, etree.LxmlError):
        return []
    body = getattr(document, "body", None)
    if body is None:
        return []
    tree = convert_to_html(copy.deepcopy(body))
    return html_fragment_blocks(
        "".join(etree.tostring(child, encoding="unicode") for child in tree[0])
    )


def place_images(with_images: list[Block], text: list[Block]) -> list[Block]:
    """``text``'s blocks, each in ``with_images``'s version where it has one (an image inside
    a paragraph stays), and every image block of ``with_images`` after the text block it
    follows there. Images before the first shared block lead the body; images after the last
    one are left out: on news pages and blogs they are the thumbnails of related articles."""
    unmatched: dict[str, list[int]] = {}
    for index, block in enumerate(text):
        unmatched.setdefault(block.text, []).append(index)
    chosen = list(text)
    images_after: dict[int, list[Block]] = {}
    anchor: int | None = None
    waiting: list[Block] = []
    for block in with_images:
        if _is_image(block):
            waiting.append(block)
            continue
        indices = unmatched.get(block.text)
        if not indices:
            continue  # a caption or credit that only the extraction with images keeps
        index = indices.pop(0)
        chosen[index] = block
        images_after.setdefault(-1 if anchor is None else anchor, []).extend(waiting)
        anchor, waiting = index, []
    placed = list(images_after.get(-1, []))
    for index, block in enumerate(chosen):
        placed.append(block)
        placed.extend(images_after.get(index, []))
    return placed


def _is_image(block: Block) -> bool:
    return not block.text and "<img" in block.html


def references(blocks: list[Block]) -> tuple[str, ...]:
    """Files a document uses by a relative path: images, and links to files that are not
    pages (a PDF, say). They are published under media/ beside the entry."""
    found: list[str] = []
    for block in blocks:
        if "src=" not in block.html and "href=" not in block.html:
            continue
        root = lxml_html.fragment_fromstring(block.html, create_parent="div")
        candidates = [str(v) for v in root.xpath("//img/@src")]
        candidates += [
            str(v)
            for v in root.xpath("//a/@href")
            if _PAGE_SUFFIX.search(str(v).split("#")[0].split("?")[0]) is None
        ]
        for ref in (unquote(c) for c in candidates):  # a file name, not a URL
            if ref and not re.match(r"^([a-z][a-z0-9+.-]*:|/|#|\?)", ref, re.IGNORECASE):
                found.append(ref)
    return tuple(dict.fromkeys(found))


def _element_text(element: lxml_html.HtmlElement) -> str:
    if element.tag in ("ul", "ol", "table", "dl"):
        items = [_text_of(node.text_content()) for node in element if isinstance(node.tag, str)]
        return "\n".join(item for item in items if item)
    return _text_of(element.text_content())


def _text_of(text: str) -> str:
    return " ".join(text.split())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
