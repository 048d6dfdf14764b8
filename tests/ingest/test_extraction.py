"""HTML extraction on pages its settings were not chosen on (benchmarks/crossval.py).

The shared pages of both public benchmarks are cut in halves by site; newsdrop's settings are
chosen on one half and scored on the other, both ways, five cuts; trafilatura alone is scored
on the same halves in the same run, so the comparison holds on any machine. The issue's bar
is each held-out figure at least trafilatura's minus half a point; the tests allow the spread
of newsdrop's figure over the folds on top, as the issue asks.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from crossval import (
    DEFAULT,
    METRICS,
    TARGET_MARGIN,
    HeldOut,
    Page,
    choose,
    cross_validate,
    extract_all,
    folds,
    load_pages,
    newsdrop_candidates,
    newsdrop_extract,
    score,
    trafilatura_extract,
)
from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS
from newsdrop.ingest.markup import Block, place_images
from newsdrop.ingest.normalize import normalize
from newsdrop.model import Hints

from conftest import NOW, corpus_path


@pytest.fixture(scope="module")
def pages() -> list[Page]:
    return load_pages(corpus_path("extraction"))


@pytest.fixture(scope="module")
def candidates(pages: list[Page]) -> dict[str, dict[str, str]]:
    hints = Hints(first_seen=NOW, boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS)
    return newsdrop_candidates(pages, hints)


@pytest.fixture(scope="module")
def held_out(pages: list[Page], candidates: dict[str, dict[str, str]]) -> HeldOut:
    return cross_validate(pages, candidates, extract_all(pages, trafilatura_extract))


@pytest.mark.parametrize("metric", range(len(METRICS)), ids=METRICS)
def test_held_out_pages_score_at_least_trafilatura_alone(held_out: HeldOut, metric: int) -> None:
    ours, theirs = held_out.mean("ours", metric), held_out.mean("theirs", metric)
    tolerance = held_out.spread("ours", metric)
    print(f"{METRICS[metric]}: newsdrop {ours:.4f} ± {tolerance:.4f}, trafilatura {theirs:.4f}")
    assert ours >= theirs - TARGET_MARGIN - tolerance


def test_the_shipped_settings_are_the_ones_the_shared_pages_choose(
    pages: list[Page], candidates: dict[str, dict[str, str]]
) -> None:
    assert next(iter(candidates)) == DEFAULT
    assert choose(candidates, pages) == DEFAULT


def test_folds_keep_each_site_on_one_side_and_halves_even(pages: list[Page]) -> None:
    for train, test in folds(pages):
        assert not {p.site for p in train} & {p.site for p in test}
        assert abs(len(train) - len(test)) <= 4
        assert len(train) + len(test) == len(pages)


def test_boilerplate_stripping_is_what_adds_the_drops(
    pages: list[Page], candidates: dict[str, dict[str, str]]
) -> None:
    stripped = score(pages, candidates[DEFAULT])
    plain = score(pages, candidates["balanced, not stripped"])
    assert stripped[2] > plain[2] + 0.03
    assert stripped[1] == plain[1]  # and nothing that must stay goes with them


def _image(name: str) -> Block:
    return Block("", f'<img src="{name}.jpg">')


def _text(words: str) -> Block:
    return Block(words, f"<p>{words}</p>")


def test_images_join_the_text_after_the_paragraph_they_follow_and_captions_stay_out() -> None:
    with_images = [
        _image("lead"),
        _text("One."),
        _image("middle"),
        _text("Photo: Agency"),  # a credit only the extraction with images keeps
        _text("Two."),
        _image("related"),
        _text("Read more"),
    ]
    text = [_text("One."), _text("Two."), _text("Three.")]
    placed = place_images(with_images, text)
    assert [b.html for b in placed] == [
        '<img src="lead.jpg">',
        "<p>One.</p>",
        '<img src="middle.jpg">',
        "<p>Two.</p>",
        "<p>Three.</p>",
    ]


def _html_page(last_paragraph: str) -> bytes:
    body = "".join(f"<p>{'Paragraph of the article with enough words. ' * 8}</p>" for _ in range(6))
    return (
        f"<html><head><title>Closing</title></head><body><article><h1>Closing</h1>{body}"
        f"<p>{last_paragraph}</p></article></body></html>"
    ).encode()


@pytest.mark.parametrize("name", ["page.html", "note.md"])
def test_a_closing_prompt_is_dropped_from_web_pages_only(hints: Hints, name: str) -> None:
    prompt = 'Do you want to hear from us? <a href="https://example.org/join">Sign up here</a>'
    if name.endswith(".md"):
        source = f"# Closing\n\nThe article itself.\n\n{prompt}\n".encode()
    else:
        source = _html_page(prompt)
    text = normalize(source, name, replace(hints, strip_boilerplate=True)).content_text
    assert ("Sign up here" in text) is name.endswith(".md")


def test_newsdrop_extract_reads_a_page(hints: Hints) -> None:
    text = newsdrop_extract(hints)(_html_page("The end.").decode())
    assert "Paragraph of the article" in text and text.endswith("The end.")


def _bylined_page(author: str) -> bytes:
    return f"""<html><head><title>Harbour reopens</title>
<link rel="canonical" href="https://news.example.org/2021/03/03/harbour-reopens"></head>
<body><article><h1>Harbour reopens</h1><p class="byline">By <span class="author">{author}</span></p>
<p>The harbour reopened on Tuesday after repairs that took two years and cost more than
anyone involved had expected when the work began.</p></article></body></html>""".encode()


def test_a_page_without_meta_tags_gets_trafilaturas_date_and_byline(hints: Hints) -> None:
    entry = normalize(_bylined_page("Jane Doe"), "harbour.html", hints)
    assert (entry.author, entry.published.date().isoformat()) == ("Jane Doe", "2021-03-03")


def test_a_cms_default_user_is_not_taken_for_a_byline(hints: Hints) -> None:
    assert normalize(_bylined_page("admin"), "harbour.html", hints).author == ""


def test_a_guessed_date_is_never_after_the_day_the_page_was_first_seen(hints: Hints) -> None:
    page = _bylined_page("Jane Doe").replace(b"2021/03/03", b"2999/03/03")
    assert normalize(page, "harbour.html", hints).published == hints.first_seen


def test_a_copyright_year_is_not_taken_for_a_date(hints: Hints) -> None:
    page = b"""<html><head><title>Harbour</title></head><body><article><h1>Harbour</h1>
<p>The harbour reopened on Tuesday after repairs that took two years and cost more than
anyone involved had expected when the work began.</p></article>
<footer>\xc2\xa9 2019 Example Corp.</footer></body></html>"""
    assert normalize(page, "harbour.html", hints).published == hints.first_seen
