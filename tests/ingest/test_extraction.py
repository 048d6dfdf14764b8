"""HTML extraction against the two public benchmarks, scored as upstream scores them.

trafilatura alone is measured in the same run, so the comparison holds on any machine.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import trafilatura

from newsdrop.errors import SourceError
from newsdrop.ingest.normalize import normalize
from newsdrop.model import Hints

from conftest import corpus_path
from scoring import score_scrapinghub, score_trafilatura


def newsdrop_text(hints: Hints) -> object:
    def extract(html: str) -> str:
        try:
            return normalize(html.encode(), "page.html", hints).content_text
        except SourceError:
            return ""

    return extract


def trafilatura_text(html: str) -> str:
    return trafilatura.extract(html) or ""


def test_scrapinghub_f1_matches_trafilatura(hints: Hints) -> None:
    root = corpus_path("extraction", "scrapinghub-aeb")
    ours = score_scrapinghub(root, newsdrop_text(hints))  # type: ignore[arg-type]
    theirs = score_scrapinghub(root, trafilatura_text)
    print(f"scrapinghub F1: newsdrop {ours.f1:.3f}, trafilatura {theirs.f1:.3f}")
    assert ours.f1 >= theirs.f1 - 0.01


def test_trafilatura_set_keeps_article_and_drops_blurbs(hints: Hints) -> None:
    root = corpus_path("extraction", "trafilatura-eval")
    ours = score_trafilatura(root, newsdrop_text(hints))  # type: ignore[arg-type]
    print(f"trafilatura-eval: kept {ours.kept:.3f}, dropped {ours.dropped:.3f}")
    assert ours.kept >= 0.95
    assert ours.dropped >= 0.90


@pytest.mark.parametrize("strip", [True, False])
def test_boilerplate_stripping_is_what_adds_the_drops(hints: Hints, strip: bool) -> None:
    root = corpus_path("extraction", "trafilatura-eval")
    plain = score_trafilatura(root, newsdrop_text(replace(hints, strip_boilerplate=False)))  # type: ignore[arg-type]
    if strip:
        stripped = score_trafilatura(root, newsdrop_text(hints))  # type: ignore[arg-type]
        assert stripped.dropped > plain.dropped
    else:
        assert plain.dropped < 0.90  # without it, trafilatura's own level
