"""The parts of a message as they travel: text in base64 lines, HTML as 7-bit with
character references in short lines, or base64 where that would change it. Pure."""

from __future__ import annotations

import base64


def base64_lines(data: bytes) -> str:
    """Base64 in lines of 76 characters, CRLF-separated (one C call, then slicing)."""
    encoded = base64.b64encode(data).decode("ascii")
    return "\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)])


HTML_LINE = 900  # octets; RFC 5322 allows 998, and a line is where a mail server spends


def html_body(html: str) -> tuple[str, str]:
    """The HTML part as it travels: (Content-Transfer-Encoding, body with CRLF line ends).

    Usually ``7bit``: other characters as character references, and the line breaks,
    which are white space to HTML, put back only every ``HTML_LINE`` octets or so, each
    in place of a space (after a tag where there is one). That is the same document,
    and smaller and far fewer lines than its base64. Base64 instead where that could
    change what the HTML shows or where it would not be smaller: text in which white
    space counts (``pre``, ``textarea``, ``white-space``), non-ASCII text in ``style``
    or ``script`` (no character references there), mostly non-Latin text, or a run
    of more than ``HTML_LINE`` octets without a space."""
    raw = html.encode()
    ascii_html = raw if raw.isascii() else html.encode("ascii", "xmlcharrefreplace")
    lowered = raw.lower()  # bytes: ASCII letters only, so offsets stay those of raw
    if (
        len(ascii_html) * 3 > len(raw) * 4  # base64 would be smaller
        or b"<pre" in lowered
        or b"<textarea" in lowered
        or b"white-space" in lowered
        or (ascii_html is not raw and not _raw_text_is_ascii(raw, lowered))
        or ascii_html.translate(None, _TEXT_OCTETS)  # control characters
    ):
        return "base64", base64_lines(raw)
    flat = ascii_html.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ")
    lines = []
    while len(flat) > HTML_LINE:
        cut = flat.rfind(b"> ", 0, HTML_LINE) + 1 or flat.rfind(b" ", 0, HTML_LINE)
        if cut <= 0:
            return "base64", base64_lines(raw)
        lines.append(flat[:cut])
        flat = flat[cut + 1 :]
    lines.append(flat)
    return "7bit", b"\r\n".join(lines).decode("ascii")


_TEXT_OCTETS = bytes([9, 10, 13, *range(32, 127)])  # what 7bit text may hold


def _raw_text_is_ascii(raw: bytes, lowered: bytes) -> bool:
    """Whether the insides of ``style`` and ``script`` elements are ASCII."""
    for tag in (b"<style", b"<script"):
        start = lowered.find(tag)
        while start != -1:
            end = lowered.find(b"</" + tag[1:], start)
            if not raw[start : end if end != -1 else len(raw)].isascii():
                return False
            start = -1 if end == -1 else lowered.find(tag, end)
    return True
