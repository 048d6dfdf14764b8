"""Which files that documents refer to are published under media/, by what name, and how
they are served. Pure.

Only passive kinds are published, by an allow-list of suffixes: images, audio, video, PDF
and a few plain downloads, which a browser shows, plays or saves and never runs. A page,
script, XML or XHTML file would run its scripts when opened from media/ on a plain static
server (cron mode, where no CSP of ours applies), so a reference to one is a problem of its
document. SVG can carry scripts and event handlers too, and no well-kept sanitiser for it
exists on PyPI; so an SVG is drawn as a PNG (cairosvg, offline, in a worker process with the
[normalize] limits) and published as ``<name>.svg.png``: nothing in the file survives but
its picture.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree
from lxml import html as lxml_html

PASSIVE = frozenset(
    {
        # images
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".bmp", ".ico",
        # audio
        ".mp3", ".m4a", ".aac", ".oga", ".ogg", ".opus", ".wav", ".flac",
        # video
        ".mp4", ".m4v", ".webm", ".ogv", ".mov",
        # documents and downloads, always served as attachments
        ".pdf", ".csv", ".zip", ".epub",
    }
)  # fmt: skip
DRAWN = frozenset({".svg"})  # published as a PNG of the picture
MAX_DRAWN = 5 * 1024 * 1024  # a larger SVG is not drawn: a problem of its document
INLINE = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".bmp", ".ico")  # and audio, video
_INLINE_MEDIA = frozenset({*INLINE, ".mp3", ".m4a", ".aac", ".oga", ".ogg", ".opus", ".wav",
                           ".flac", ".mp4", ".m4v", ".webm", ".ogv", ".mov"})  # fmt: skip

# What media are served with by `newsdrop run`: nothing in them may run, fetch or frame.
CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


def suffix(name: str) -> str:
    return posixpath.splitext(_file_part(name))[1].lower()


@dataclass(frozen=True, slots=True)
class Reference:
    """A file a document refers to, resolved once for ingest, the build and the feeds."""

    written: str  # as the document has it, a query or fragment included
    source_path: str  # the file under seeds/, beside its document
    published: str | None  # its path under media/; None for a kind never published
    drawn: bool  # an SVG: published as a PNG of its picture


def resolve(source: str, reference: str) -> Reference:
    """Where the file ``reference`` (in the document ``source``) is under seeds/ and where it
    is published. The query and fragment are not part of the file's name (``pic.png?v=2``
    is pic.png)."""
    folder = source.rpartition("/")[0]
    path = posixpath.normpath(posixpath.join("/", folder, _file_part(reference))).lstrip("/")
    kind = suffix(reference)
    drawn = kind in DRAWN
    published = f"{path}.png" if drawn else path if kind in PASSIVE else None
    return Reference(reference, path, published, drawn)


def without(content_html: str, references: Collection[str]) -> str:
    """``content_html`` without what shows these references: an image goes, a link keeps its
    text. For the files a document refers to that are not published (missing, refused, or
    an SVG that cannot be drawn): its entry is published without them, not with a link
    that answers 404."""
    if not references:
        return content_html
    root = lxml_html.fragment_fromstring(content_html, create_parent="div")
    for element in root.xpath("//img[@src] | //a[@href]"):
        if unquote(element.get("src") or element.get("href") or "") in references:
            if element.tag == "img":
                element.drop_tree()
            else:
                element.drop_tag()
    text = root.text or ""
    return text + "".join(
        etree.tostring(child, encoding="unicode", method="html") for child in root
    )


def _file_part(reference: str) -> str:
    return reference.split("#")[0].split("?")[0]


def headers(name: str) -> dict[str, str]:
    """Content-Disposition and a CSP that lets nothing run, for a file under media/."""
    base = name.rsplit("/", 1)[-1]
    disposition = "inline" if suffix(base) in _INLINE_MEDIA else "attachment"
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in base
    )
    return {
        "content-disposition": f'{disposition}; filename="{ascii_name}"',
        "content-security-policy": CSP,
    }
