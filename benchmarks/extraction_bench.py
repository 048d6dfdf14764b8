"""HTML extraction (issue #18), cross-validated, beside trafilatura alone in the same run.

The shared pages of both public benchmarks (scrapinghub's article bodies, trafilatura's
must-keep and must-drop snippets) are cut in halves by site, five times; newsdrop's settings
([normalize] favor, boilerplate stripping) are chosen on one half and scored on the other,
both ways (benchmarks/crossval.py). Each row is the mean of the ten held-out halves with its
spread (standard deviation, and the lowest and highest half), beside trafilatura 2.x's
defaults on the same halves; the target is at least trafilatura's minus half a point.

Run alone: .venv/bin/python benchmarks/extraction_bench.py
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import trafilatura

from crossval import (
    DEFAULT,
    METRICS,
    TARGET_MARGIN,
    choose,
    cross_validate,
    extract_all,
    load_pages,
    newsdrop_candidates,
    trafilatura_extract,
)
from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS
from newsdrop.model import Hints

from report import Row, row


def rows(corpus: Path) -> list[Row]:
    pages = load_pages(corpus / "extraction")
    hints = Hints(first_seen=datetime.now(UTC), boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS)
    candidates = newsdrop_candidates(pages, hints)
    held = cross_validate(pages, candidates, extract_all(pages, trafilatura_extract))
    chosen = Counter(held.chosen)
    everywhere = choose(candidates, pages)
    folds = len(held.chosen)
    out = []
    for index, metric in enumerate(METRICS):
        ours, theirs = held.mean("ours", index), held.mean("theirs", index)
        low, high = held.span("ours", index)
        what = "scrapinghub-aeb F1" if index == 0 else f"trafilatura-eval {metric}"
        out.append(
            row(
                f"{what}, held out ({folds} halves of {len(pages)} pages, by site)",
                f"{_figure(index, ours)} ± {_figure(index, held.spread('ours', index))} "
                f"({_figure(index, low)}–{_figure(index, high)})",
                ">= trafilatura - 0.5 point",
                f"trafilatura {trafilatura.__version__} defaults: {_figure(index, theirs)} ± "
                f"{_figure(index, held.spread('theirs', index))}",
                f"{(ours - theirs) * 100:+.1f} points",
                ours >= theirs - TARGET_MARGIN,
            )
        )
    out.append(
        row(
            "extraction settings chosen on the training halves",
            ", ".join(f"{name} in {n} of {folds}" for name, n in chosen.most_common()),
            "the shipped default chosen on all pages",
            f"on all {len(pages)} pages: {everywhere}",
            "",
            everywhere == DEFAULT,
        )
    )
    return out


def _figure(index: int, value: float) -> str:
    return f"{value:.3f}" if index == 0 else f"{value:.1%}"


if __name__ == "__main__":
    here = Path(__file__).resolve()
    for line in rows(here.parents[2] / "shared" / "corpus"):
        print(" | ".join(line))
