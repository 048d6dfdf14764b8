"""What a document's text says of itself, pure: its title, summary, first sentence, trailing
boilerplate and language."""

from __future__ import annotations

import functools
import re
from pathlib import PurePosixPath

from newsdrop.ingest.markup import Block
from newsdrop.ingest.text import clean_text
from newsdrop.model import paragraph_hash

TITLE_MAX = 90


SUMMARY_MAX = 300


_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’')\]]))\s+(?=[\"“‘'(\[]?[A-Z0-9À-ÖØ-Þ])")


_ABBREVIATIONS = frozenset(  # words whose full stop does not end a sentence
    "mr mrs ms dr prof st jr sr gen col lt sgt capt rep sen gov rev hon no vs etc inc ltd co "  # noqa: SIM905
    "corp mt ft jan feb mar apr jun jul aug sep sept oct nov dec fig approx dept univ".split()
)


_HEADLINE_END = re.compile(r"[.:;,]$")


_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)


DATELINE = re.compile(
    r"^(?:(?:Published|Posted|Date|Dated|Updated)[:\s]\s*|[A-Z][A-Za-z .'-]{1,40},\s+)?"
    r"(?P<date>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    rf"|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}})\b"
)


def strip_boilerplate(
    blocks: list[Block],
    markers: tuple[str, ...],
    learned: frozenset[str] = frozenset(),
    *,
    web_page: bool = False,
) -> list[Block]:
    """Drop trailing appeals from a body: from the first paragraph after the first one that
    starts with a marker to the end; then, from a web page, closing prompts; then trailing
    paragraphs learned as boilerplate."""
    lowered, longest = _lowered_markers(markers)
    if lowered:
        for index in range(1, len(blocks)):
            if blocks[index].text[:longest].lower().startswith(lowered):
                blocks = blocks[:index]
                break
    while web_page and len(blocks) > 1 and is_closing_prompt(blocks[-1]):
        blocks = blocks[:-1]
    while learned and blocks and paragraph_hash(blocks[-1].text) in learned:
        blocks = blocks[:-1]
    return blocks


CLOSING_PROMPT_WORDS = 30


_READER = re.compile(r"\b(?:you|your)\b", re.IGNORECASE)


def is_closing_prompt(block: Block) -> bool:
    """A short last paragraph that speaks to the reader and links somewhere: the sign-up,
    log-in, app or feedback prompt that closes many news sites' and campaigns' pages ("Do you
    want to be informed of our actions? Sign up here"). Only for web pages: a publisher's
    own closing line in Markdown is theirs to keep. English only, like the markers."""
    return (
        len(block.text.split()) <= CLOSING_PROMPT_WORDS
        and "<a " in block.html
        and _READER.search(block.text) is not None
    )


@functools.lru_cache(maxsize=8)
def _lowered_markers(markers: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    lowered = tuple(m.lower() for m in markers if m.strip())
    return lowered, max((len(m) for m in lowered), default=0)


def derive_title(blocks: list[Block], name: str) -> tuple[str, list[Block]]:
    """A headline line if the document opens with one (removed from the body), else the
    first sentence cut to TITLE_MAX characters, else the file name made readable."""
    if len(blocks) > 1 and is_headline(blocks[0].text):
        return blocks[0].text, blocks[1:]
    lead = next((b.text for b in blocks if b.text and not is_dateline(b.text)), "")
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
    if is_dateline(line):
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


def is_dateline(line: str) -> bool:
    match = DATELINE.match(line)
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


DETECT_CHARS = 300  # CLD2 is as right on a text's first 300 characters as on 2,000, at a
# sixth of the cost (measured on tests/data/world/languages.json and the BBC corpus)

_CLD2_CODES = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv"}  # its older codes, as BCP 47


def detect_language(text: str) -> str:
    """The language tag of a text ("uk", "zh-Hant"), "" when CLD2 is unsure (a text too
    short to judge keeps the document's or the site's language)."""
    if len(text) < 20:
        return ""
    import pycld2  # loaded on first use

    try:
        reliable, _bytes, details = pycld2.detect(text[:DETECT_CHARS])
    except pycld2.error:
        return ""
    code = str(details[0][1])
    return _CLD2_CODES.get(code, code) if reliable and code not in ("un", "xxx") else ""


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-–—") + "…"


def same_words(a: str, b: str) -> bool:
    return a.split() == b.split()
