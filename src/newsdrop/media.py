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
    return posixpath.splitext(name.split("#")[0].split("?")[0])[1].lower()


def source_path(source: str, reference: str) -> str:
    """A referenced file's path under seeds/: beside its document."""
    folder = source.rpartition("/")[0]
    clean = reference.split("#")[0].split("?")[0]
    return posixpath.normpath(posixpath.join("/", folder, clean)).lstrip("/")


def published_path(source: str, reference: str) -> str | None:
    """Where a referenced file is published under media/; None for a kind never published."""
    kind = suffix(reference)
    path = source_path(source, reference)
    if kind in DRAWN:
        return f"{path}.png"
    return path if kind in PASSIVE else None


def is_drawn(reference: str) -> bool:
    return suffix(reference) in DRAWN


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
