"""Plain text wrapped to a width in columns, as a terminal or a mail client shows it, pure.

Python's textwrap counts code points and breaks only at spaces: a Chinese or Japanese line
(no spaces, each character two columns wide) would run on for hundreds of columns, and a
long word could be cut inside a grapheme cluster (a Devanagari conjunct, a flag, an emoji
family). Here a cluster (``regex``'s ``\\X``) is never split, East Asian wide and
full-width characters count two columns, a line may break between two wide characters as
well as at a space, and closing punctuation (、。」) never starts a line.
"""

from __future__ import annotations

import unicodedata

import regex

_CLUSTER = regex.compile(r"\X")

# Never at the start of a line (Japanese kinsoku, Chinese usage): they close what precedes.
_CLOSING = frozenset(
    "、。，．・：；？！）」』】〕〉》〙〗｝］ー…‥々ゝゞヽヾっゃゅょァィゥェォッャュョ"
)


def columns(cluster: str) -> int:
    """How many columns a grapheme cluster takes: 2 when wide or full-width, 0 for a mark
    or an invisible character alone, else 1."""
    if any(unicodedata.east_asian_width(char) in "WF" for char in cluster):
        return 2
    if all(unicodedata.category(char)[0] in "MC" for char in cluster):
        return 0
    return 1


def wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    """``text`` (its runs of white space taken as one space) in lines of at most ``width``
    columns, indent included; a word wider than the line stays whole on a line of its own
    (a URL must stay whole to work). ``first`` is the first line's indent (default
    ``indent``)."""
    lines: list[str] = []
    line = first if first is not None else indent
    start, used, spaced = columns_of(line), 0, False
    for piece in _pieces(text):
        if piece == " ":
            spaced = used > 0
            continue
        size, gap = columns_of(piece), 1 if spaced else 0
        if used and start + used + gap + size > width:
            lines.append(line)
            line, start, used, gap = indent, columns_of(indent), 0, 0
        line += " " * gap + piece
        used += gap + size
        spaced = False
    lines.append(line)
    return "\n".join(lines)


def columns_of(text: str) -> int:
    return sum(columns(cluster) for cluster in _CLUSTER.findall(text))


def _pieces(text: str) -> list[str]:
    """What a line may not split, in order: a run of narrow clusters (a word), one wide
    cluster with the closing punctuation after it, or a space (" ")."""
    pieces: list[str] = []
    word = ""
    for cluster in _CLUSTER.findall(text):
        if cluster.isspace():
            pieces += [word, " "] if word else [" "]
            word = ""
        elif cluster in _CLOSING and not word and pieces and pieces[-1] != " ":
            pieces[-1] += cluster  # after a wide character: goes with it
        elif columns(cluster) == 2 and cluster not in _CLOSING:
            pieces += [word, cluster] if word else [cluster]
            word = ""
        else:
            word += cluster
    return [*pieces, word] if word else pieces
