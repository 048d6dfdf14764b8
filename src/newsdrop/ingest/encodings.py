"""Which legacy encoding a document that is not UTF-8 is in, pure: the one it declares (front
matter ``encoding:``, an HTML page's ``<meta charset>``), else the one configured for its
folder, else a guess.

A long text gives charset_normalizer bytes enough to judge by. A short one (a line or two)
often decodes cleanly in several encodings, and only its language tells them apart: café in
windows-1252 is cafй in windows-1251. So each candidate's text is also judged by how its
letters follow one another in some language: character pairs counted in CLDR's names of
countries, languages, months and days in 35 languages (from Babel), next to
charset_normalizer's measure of how messy the text is.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

import charset_normalizer

SHORT = 1024  # bytes: up to this, a guess is judged by language too

# What a text that is not UTF-8 is most likely in: the legacy encodings of the web's
# languages (WHATWG's list, the single-byte ones with their ISO twins where they differ).
CANDIDATES = (
    "cp1252", "iso-8859-2", "cp1250", "cp1251", "koi8-r", "koi8-u", "cp1253", "cp1254",
    "cp1255", "cp1256", "cp1257", "shift_jis", "euc-jp", "gb18030", "big5", "euc-kr",
)  # fmt: skip

MAX_MESS = 0.2  # charset_normalizer's own bar for "this is text"

MESS_WEIGHT = 8  # a messy text is worse than an unlikely one (measured: 4 to 32 hold)

# The languages whose CLDR names make the letter-pair tables: every script the candidates
# encode, and the Latin ones each Latin candidate serves.
_LANGUAGES = (
    "en", "fr", "de", "es", "pt", "it", "nl", "sv", "da", "nb", "fi", "ca", "pl", "cs",
    "sk", "hu", "sl", "hr", "ro", "lt", "lv", "et", "tr", "ru", "uk", "bg", "sr", "be",
    "el", "he", "ar", "fa", "ja", "zh", "ko",
)  # fmt: skip

_FRONT_MATTER = re.compile(rb"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_ENCODING_KEY = re.compile(rb"^encoding[ \t]*:[ \t]*[\"']?([A-Za-z0-9_.:-]+)", re.M | re.I)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset[ \t]*=[ \t]*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def declared_encoding(data: bytes, kind: str) -> str:
    """The encoding a document names for itself (as written; "" for none): a Markdown
    file's front matter ``encoding:``, a web page's ``<meta charset>`` in its first 1,024
    bytes (as browsers look for it)."""
    if kind == "markdown" and (front := _FRONT_MATTER.match(data)):
        found = _ENCODING_KEY.search(front.group(1))
    elif kind == "html":
        found = _META_CHARSET.search(data[:1024])
    else:
        found = None
    return found.group(1).decode("ascii") if found else ""


def web_encoding(label: str) -> str:
    """The encoding a browser reads for a ``<meta charset>`` label (the WHATWG Encoding
    Standard, through webencodings): iso-8859-1 and ascii mean windows-1252; "" for none."""
    import webencodings

    found = webencodings.lookup(label)
    return found.codec_info.name if found is not None else ""


def guess_short(data: bytes) -> str | None:
    """The text of a short document in the candidate encoding that reads most like a
    language; None when no candidate decodes it into text."""
    best: tuple[float, str] | None = None
    for candidate in CANDIDATES:
        try:
            text = data.decode(candidate)
        except UnicodeDecodeError:
            continue
        match = charset_normalizer.from_bytes(data, cp_isolation=[candidate], threshold=1.0)
        found = match.best()
        mess = found.chaos if found is not None else 1.0
        if mess > MAX_MESS:
            continue  # no language reads like this: binary, or another encoding
        score = language_likeness(text) - MESS_WEIGHT * mess
        if best is None or score > best[0]:
            best = (score, text)
    return None if best is None else best[1]


def language_likeness(text: str) -> float:
    """How much ``text`` reads like the language it reads most like: the mean log
    probability of its letter pairs (a pair never seen falls back on its second letter
    alone), under each language's table."""
    pairs = _pairs(text)
    if not pairs:
        return 0.0
    return max(_log_likelihood(pairs, table) for table in _tables())


def _log_likelihood(pairs: list[str], table: _Table) -> float:
    pair_counts, letter_counts, letters = table
    total = 0.0
    for pair in pairs:
        alone = (letter_counts.get(pair[1], 0) + 0.01) / (letters + 1)
        after = pair_counts.get(pair, 0) / max(1, letter_counts.get(pair[0], 0))
        total += math.log(0.6 * after + 0.4 * alone + 1e-7)
    return total / len(pairs)


_Table = tuple[Counter[str], Counter[str], int]


def _pairs(text: str) -> list[str]:
    spaced = " " + " ".join(text.lower().split()) + " "
    return [spaced[i : i + 2] for i in range(len(spaced) - 1)]


@lru_cache(maxsize=1)
def _tables() -> tuple[_Table, ...]:
    """Letter pairs and letters of each language, from CLDR's names (Babel, imported here:
    only a short document that is not UTF-8 needs them)."""
    from babel import Locale

    tables = []
    for language in _LANGUAGES:
        locale = Locale.parse(language)
        names = [
            *locale.territories.values(),
            *locale.languages.values(),
            *locale.scripts.values(),
            *locale.currencies.values(),
        ]
        for context in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                names += [*locale.months[context][width].values()]
                names += [*locale.days[context][width].values()]
        text = " ".join(str(name) for name in names)
        pairs = _pairs(text)
        tables.append(
            (Counter(pairs), Counter(" " + " ".join(text.lower().split()) + " "), len(pairs) + 1)
        )
    return tuple(tables)
