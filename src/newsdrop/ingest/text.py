"""Text from bytes, pure: decoding (BOM, UTF-8, then a detector for legacy 8-bit encodings),
cleanup (NFC, line endings, spaces, characters XML 1.0 forbids) and paragraphs."""

from __future__ import annotations

import contextlib
import re
import unicodedata

import charset_normalizer

from newsdrop.errors import UndecodableError
from newsdrop.ingest.encodings import SHORT, declared_encoding, guess_short, web_encoding

# Characters XML 1.0 forbids (C0 controls but tab/newline, surrogates, U+FFFE/U+FFFF), and
# the C1 controls it discourages: feed readers turn those into windows-1252 characters.
_XML_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]"
)


_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028]")


URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def decode(data: bytes, name: str, kind: str = "text", configured: str = "") -> str:
    """Bytes -> str: BOMs first, then strict UTF-8, then the encoding the document declares
    (``kind``: front matter, meta charset), then the one ``configured`` for its folder, then
    a guess (by language too for a short text); undecidable is an error."""
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
    declared = declared_encoding(data, kind)
    if declared and kind == "html":  # a saved page's <meta charset> is often wrong: then guessed
        label = web_encoding(declared)  # as browsers read labels: iso-8859-1 is windows-1252
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            if label and not label.startswith("utf-16"):
                return data.decode(label)
    elif declared:
        return _decode_as(data, name, declared, declared)
    if configured:
        return _decode_as(data, name, configured, "")
    if len(data) <= SHORT and (guessed := guess_short(data)) is not None:
        return guessed
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


def _decode_as(data: bytes, name: str, encoding: str, declared: str) -> str:
    where = (
        f"its own declaration ({declared})"
        if declared
        else f"[normalize] encoding for its folder ({encoding})"
    )
    try:
        return data.decode(encoding)
    except LookupError:
        raise UndecodableError(
            f"{name}: {where} is not an encoding Python knows; write one such as "
            "windows-1251, koi8-r or shift_jis"
        ) from None
    except UnicodeDecodeError as exc:
        raise UndecodableError(
            f"{name}: is not valid {encoding} at byte {exc.start}, as {where} says it is; "
            "correct the encoding's name, or save the file again as UTF-8"
        ) from None


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
    return collapse_spaces(clean_characters(text))


def collapse_spaces(text: str) -> str:
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


def _one_paragraph_per_line(lines: list[str]) -> bool:
    ended = sum(_ends_sentence(line) for line in lines[:-1])
    return ended * 2 >= len(lines) - 1 or max(len(line) for line in lines) > 120


def _ends_sentence(line: str) -> bool:
    return bool(re.search(r"[.!?:…][\"”’')\]]*$", line))
