"""Extraction scored on pages the settings were not chosen on: two-fold cross-validation.

The shared pages of both benchmarks are cut in two halves, by site (two pages of one site are
always on one side, as the corpus's held-back pages are), several times with different seeds.
For each cut, newsdrop's extraction settings are chosen on one half and scored on the other,
both ways round; trafilatura alone is scored on the same held-out halves. What is reported is
the mean of the held-out figures, with their spread over the folds.

Shared by tests/ingest/test_extraction.py (the assertions) and benchmarks/run.py (the report).
"""

from __future__ import annotations

import json
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trafilatura

from newsdrop.errors import SourceError
from newsdrop.ingest.normalize import normalize
from newsdrop.model import Hints

from scoring import shingle_scores, snippet_scores

_HARD = re.compile(r"^hard::([\w-]+?\.[a-z]{2,3})\b.*$")

SEEDS = 5  # five cuts, so ten held-out halves

METRICS = ("F1", "must-keep kept", "must-drop dropped")

TARGET_MARGIN = 0.005  # the bar: each held-out figure at least trafilatura's - 0.5 point


@dataclass(frozen=True)
class Page:
    key: str  # "aeb/<id>" (scrapinghub) or "tev/<name>" (trafilatura-eval)
    site: str
    html: str
    truth: str = ""  # scrapinghub: the article body
    keep: tuple[str, ...] = ()  # trafilatura-eval: snippets that must be there...
    drop: tuple[str, ...] = ()  # ...and that must not


def load_pages(extraction: Path) -> list[Page]:
    pages = []
    aeb = extraction / "scrapinghub-aeb"
    for page_id, item in sorted(_json(aeb / "ground-truth.json").items()):
        html = _read(aeb / "html" / f"{page_id}.html")
        pages.append(Page(f"aeb/{page_id}", _site(item["url"]), html, truth=item["articleBody"]))
    tev = extraction / "trafilatura-eval"
    for name, item in sorted(_json(tev / "ground-truth.json").items()):
        url = _HARD.sub(r"http://\1", name)  # "hard::site.com-topic.html": a file, no URL
        pages.append(
            Page(
                f"tev/{name}",
                _site(url),
                _read(tev / "html" / item["file"]),
                keep=tuple(item.get("with", [])),
                drop=tuple(item.get("without", [])),
            )
        )
    return pages


def score(pages: Iterable[Page], texts: dict[str, str]) -> tuple[float, float, float]:
    """(scrapinghub F1, trafilatura-eval must-keep kept, must-drop dropped) over ``pages``."""
    pages = list(pages)
    shingles = shingle_scores([(texts[p.key], p.truth) for p in pages if p.key.startswith("aeb/")])
    snippets = snippet_scores(
        [(texts[p.key], list(p.keep), list(p.drop)) for p in pages if p.key.startswith("tev/")]
    )
    return shingles.f1, snippets.kept, snippets.dropped


def folds(pages: list[Page], seeds: int = SEEDS) -> list[tuple[list[Page], list[Page]]]:
    """(train, test) pairs: each seed's two halves, both ways round."""
    out = []
    for seed in range(seeds):
        halves: tuple[list[Page], list[Page]] = ([], [])
        side: dict[str, int] = {}  # a site on both benchmarks stays on one side
        for dataset in ("aeb/", "tev/"):
            mine = [p for p in pages if p.key.startswith(dataset)]
            count = Counter(p.site for p in mine)
            load = [sum(n for s, n in count.items() if side.get(s) == i) for i in (0, 1)]
            sites = sorted(s for s in count if s not in side)
            random.Random(f"{seed}:{dataset}").shuffle(sites)
            for site in sites:  # the next site to the lighter half: halves of equal size
                side[site] = 0 if load[0] <= load[1] else 1
                load[side[site]] += count[site]
            for page in mine:
                halves[side[page.site]].append(page)
        out += [(halves[0], halves[1]), (halves[1], halves[0])]
    return out


@dataclass(frozen=True)
class HeldOut:
    """Held-out figures per fold, for newsdrop (settings chosen on the other half) and for
    trafilatura alone, and which settings each fold chose."""

    ours: list[tuple[float, float, float]]
    theirs: list[tuple[float, float, float]]
    chosen: list[str]

    def mean(self, who: str, metric: int) -> float:
        return statistics.mean(row[metric] for row in getattr(self, who))

    def spread(self, who: str, metric: int) -> float:
        """Standard deviation over the folds."""
        return statistics.pstdev(row[metric] for row in getattr(self, who))

    def span(self, who: str, metric: int) -> tuple[float, float]:
        values = [row[metric] for row in getattr(self, who)]
        return min(values), max(values)


def objective(figures: tuple[float, float, float]) -> float:
    """What a choice is judged by on the training half: the three figures, equally."""
    return sum(figures) / len(figures)


def choose(candidates: dict[str, dict[str, str]], train: list[Page]) -> str:
    """The settings that score best on ``train`` (ties: the first, the default, listed)."""
    return max(candidates, key=lambda name: objective(score(train, candidates[name])))


def cross_validate(
    pages: list[Page], candidates: dict[str, dict[str, str]], theirs: dict[str, str]
) -> HeldOut:
    """``candidates``: each setting's extracted text of every page (the default first)."""
    ours, alone, chosen = [], [], []
    for train, test in folds(pages):
        name = choose(candidates, train)
        chosen.append(name)
        ours.append(score(test, candidates[name]))
        alone.append(score(test, theirs))
    return HeldOut(ours, alone, chosen)


def extract_all(pages: list[Page], extract: Callable[[str], str]) -> dict[str, str]:
    return {page.key: extract(page.html) for page in pages}


DEFAULT = "balanced, stripped"


def newsdrop_candidates(pages: list[Page], hints: Hints) -> dict[str, dict[str, str]]:
    """The settings a fold chooses among: trafilatura's leaning ([normalize] favor) and
    boilerplate stripping on or off, the shipped default first."""
    candidates = {}
    for favor in ("balanced", "precision", "recall"):
        for strip in (True, False):
            name = f"{favor}, {'stripped' if strip else 'not stripped'}"
            chosen = replace(hints, favor=favor, strip_boilerplate=strip)
            candidates[name] = extract_all(pages, newsdrop_extract(chosen))
    return candidates


def newsdrop_extract(hints: Hints) -> Callable[[str], str]:
    def extract(html: str) -> str:
        try:
            return normalize(html.encode(), "page.html", hints).content_text
        except SourceError:
            return ""

    return extract


def trafilatura_extract(html: str) -> str:
    return trafilatura.extract(html) or ""


def _site(url: str) -> str:
    """The registrable part of a host, roughly: pages of one site stay on one side."""
    host = (urlsplit(url).hostname or url).removeprefix("www.")
    parts = host.split(".")
    keep = 3 if len(parts) > 2 and len(parts[-2]) <= 3 and len(parts[-1]) == 2 else 2
    return ".".join(parts[-keep:])


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")
