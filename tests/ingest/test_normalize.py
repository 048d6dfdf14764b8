"""normalize: the pure core, one behaviour per test."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from newsdrop.errors import SourceError, TooLargeError, UndecodableError
from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.text import clean_text, split_paragraphs
from newsdrop.model import Hints

from conftest import NOW, ROOT

SAMPLE = (ROOT / "seeds" / "bakhmut-counterattacks.txt").read_bytes()
SAMPLE_PARAGRAPHS = SAMPLE.decode().split("\n")[:9]


def test_sample_title_is_derived_from_its_first_sentence(hints: Hints) -> None:
    entry = normalize(SAMPLE, "bakhmut-counterattacks.txt", hints)
    first_sentence = SAMPLE_PARAGRAPHS[0]
    assert entry.title.endswith("…")
    assert len(entry.title) <= 90
    assert first_sentence.startswith(entry.title.removesuffix("…"))
    assert entry.title.removesuffix("…").endswith("dropped back")  # cut at a word boundary


def test_sample_keeps_nine_paragraphs_word_for_word_and_drops_the_appeal(hints: Hints) -> None:
    entry = normalize(SAMPLE, "bakhmut-counterattacks.txt", hints)
    assert entry.paragraphs == SAMPLE_PARAGRAPHS
    for gone in ("A Message from The Moscow Times", "Dear readers", "Remind me later", "$2"):
        assert gone not in entry.content_text
        assert gone not in entry.content_html
    assert entry.content_html.count("<p>") == 9


def test_sample_summary_is_whole_sentences_from_the_lead(hints: Hints) -> None:
    entry = normalize(SAMPLE, "bakhmut-counterattacks.txt", hints)
    assert entry.summary == SAMPLE_PARAGRAPHS[0]
    assert len(entry.summary) <= 300


def test_stripping_can_be_switched_off(hints: Hints) -> None:
    entry = normalize(SAMPLE, "a.txt", replace(hints, strip_boilerplate=False))
    assert "Remind me later." in entry.content_text
    assert len(entry.paragraphs) == 17


def test_markers_are_configurable(hints: Hints) -> None:
    text = b"Headline here\n\nFirst paragraph of news.\n\nSecond one.\n\nBuy our mugs today!\n"
    assert "mugs" in normalize(text, "a.txt", hints).content_text
    custom = replace(hints, boilerplate_markers=("Buy our mugs",))
    assert "mugs" not in normalize(text, "a.txt", custom).content_text


def test_headline_line_becomes_the_title_and_leaves_the_body(hints: Hints) -> None:
    entry = normalize(b"Markets rally on rate hopes\n\nShares rose on Monday.\n", "a.txt", hints)
    assert entry.title == "Markets rally on rate hopes"
    assert entry.paragraphs == ["Shares rose on Monday."]


def test_short_sentence_title_loses_only_its_full_stop(hints: Hints) -> None:
    entry = normalize(b"Shares rose on Monday. Then they fell.\n", "a.txt", hints)
    assert entry.title == "Shares rose on Monday"


def test_without_words_the_title_comes_from_the_file_name(hints: Hints) -> None:
    entry = normalize(b"...", "notes/my_first-post.txt", hints)
    assert entry.title == "My first post"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"", "a.txt"),
        (b"  \n\n ", "b.md"),
        (b"---\ntags: [x]\n---\n", "c.md"),
        (b"\x00" * 100, "d.txt"),
    ],
)
def test_empty_document_is_a_problem_not_an_entry(hints: Hints, data: bytes, name: str) -> None:
    with pytest.raises(SourceError, match=name):
        normalize(data, name, hints)


def test_bad_front_matter_is_a_problem_naming_the_line(hints: Hints) -> None:
    with pytest.raises(SourceError, match="front matter is not valid YAML at line 3"):
        normalize(b"---\ntitle: [unclosed\n---\nBody.\n", "a.md", hints)
    with pytest.raises(SourceError, match=r"a\.md: front matter"):
        normalize(b"---\ndate: 2024-02-30\n---\nBody.\n", "a.md", hints)


def test_markdown_keeps_code_indentation_and_nesting(hints: Hints) -> None:
    source = b"# Code\n\n```\ndef f():\n    return 1\n```\n\n- a\n    - nested\n\nline  \nbreak\n"
    html = normalize(source, "c.md", hints).content_html
    assert "def f():\n    return 1" in html
    assert html.count("<ul>") == 2
    assert "<br>" in html


def test_abbreviations_do_not_end_a_sentence(hints: Hints) -> None:
    entry = normalize(
        b"Dr. Smith and the U.S. team met Mr. J. Doe today. Then they left.", "a.txt", hints
    )
    assert entry.title == "Dr. Smith and the U.S. team met Mr. J. Doe today"
    assert entry.summary == "Dr. Smith and the U.S. team met Mr. J. Doe today. Then they left."


def test_a_dateline_line_is_not_a_headline(hints: Hints) -> None:
    entry = normalize(
        b"London, 5 May 2020\n\nThe city reopened its parks on Tuesday.\n", "a.txt", hints
    )
    assert entry.title == "The city reopened its parks on Tuesday"
    assert entry.paragraphs[0] == "London, 5 May 2020"  # kept in the body
    assert entry.published == datetime(2020, 5, 5, tzinfo=UTC)


def test_marker_right_after_the_headline_does_not_empty_the_article(hints: Hints) -> None:
    entry = normalize(
        b"Marathon news\n\nSign up for our newsletter opens today.\n\nMore.\n", "a.txt", hints
    )
    assert entry.paragraphs[0].startswith("Sign up")


def test_summary_skips_a_leading_subheading(hints: Hints) -> None:
    entry = normalize(
        b"---\ntitle: T\n---\n## Background\n\nThe real lead sentence.\n", "a.md", hints
    )
    assert entry.summary == "The real lead sentence."


def test_front_matter_id_is_used_only_when_it_is_a_uri_and_never_replaces_a_minted_one(
    hints: Hints,
) -> None:
    doc = b"---\nid: urn:uuid:1234\n---\nBody.\n"
    assert normalize(doc, "a.md", hints).id == "urn:uuid:1234"
    assert normalize(doc, "a.md", replace(hints, entry_id="tag:x,2026:a")).id == "tag:x,2026:a"


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("id: story-1", "front matter id 'story-1' is not a URI"),
        ("date: not a date at all", "front matter date 'not a date at all' is not a date"),
        ("updated: soon", "front matter updated 'soon' is not a date"),
        ("lang: english please", "front matter lang 'english please' is not a language tag"),
    ],
)
def test_front_matter_that_means_nothing_is_a_problem_not_ignored(
    hints: Hints, front: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        normalize(f"---\n{front}\n---\nBody.\n".encode(), "a.md", hints)


def test_xhtml_page_with_an_xml_declaration(hints: Hints) -> None:
    page = (
        b"<?xml version='1.0' encoding='utf-8'?>\n<html xmlns='http://www.w3.org/1999/xhtml'>"
        b"<head><title>XHTML story</title></head><body><p>A short but real paragraph.</p></body></html>"
    )
    entry = normalize(page, "x.xhtml.html", hints)
    assert entry.title == "XHTML story"
    assert entry.content_text == "A short but real paragraph."


def test_hard_wrapped_lines_are_joined(hints: Hints) -> None:
    text = "The quick brown fox jumps over\nthe lazy dog and keeps on\nrunning far away.\n\nNext."
    assert split_paragraphs(text) == [
        "The quick brown fox jumps over the lazy dog and keeps on running far away.",
        "Next.",
    ]


def test_cleanup_normalises_unicode_spaces_and_line_endings() -> None:
    text = "Cafe\u0301  \u201cquoted\u201d\t text\r\nnext\x00line\x1b\r\r\n\n\nend"
    assert clean_text(text) == "Café “quoted” text\nnextline\n\nend"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Grüße aus Köln".encode(), "Grüße aus Köln"),
        ("\ufeffGrüße aus Köln".encode(), "Grüße aus Köln"),
        ("\ufeffGrüße aus Köln".encode("utf-16-le"), "Grüße aus Köln"),
        ("\ufeffGrüße aus Köln".encode("utf-16-be"), "Grüße aus Köln"),
        (
            "Les élèves ont réussi l'épreuve. Très bien, à la prochaine fois, très chère.".encode(
                "cp1252"
            ),
            "Les élèves ont réussi l'épreuve.",
        ),
    ],
)
def test_encodings_are_decoded(hints: Hints, data: bytes, expected: str) -> None:
    entry = normalize(data, "a.txt", hints)
    assert expected in entry.title + entry.content_text


def test_binary_file_is_a_problem_with_a_reason(hints: Hints) -> None:
    with pytest.raises(UndecodableError, match="binary"):
        normalize(bytes(range(256)) * 4, "image.txt", hints)


def test_too_large_is_a_problem_naming_the_limit(hints: Hints) -> None:
    with pytest.raises(TooLargeError, match="max_bytes"):
        normalize(b"x" * 101, "big.txt", replace(hints, max_bytes=100))


def test_unsupported_suffix_is_refused(hints: Hints) -> None:
    with pytest.raises(SourceError, match=r"not a \.txt"):
        normalize(b"x", "photo.jpg", hints)


def test_identity_is_a_tag_uri_from_authority_first_seen_and_slug(hints: Hints) -> None:
    entry = normalize(b"Markets rally on rate hopes\n\nShares rose.\n", "a.txt", hints)
    assert entry.slug == "markets-rally-on-rate-hopes"
    assert entry.id == "tag:news.example.org,2026-03-01:markets-rally-on-rate-hopes"
    kept = normalize(
        b"A new headline\n\nShares rose.\n", "a.txt", replace(hints, entry_id=entry.id, slug="x")
    )
    assert (kept.id, kept.slug) == (entry.id, "x")


def test_taken_slugs_get_a_suffix(hints: Hints) -> None:
    taken = frozenset({"markets-rally", "markets-rally-2"})
    entry = normalize(
        b"Markets rally\n\nShares rose.\n", "a.txt", replace(hints, taken_slugs=taken)
    )
    assert entry.slug == "markets-rally-3"
    assert entry.id.endswith(":markets-rally-3")


def test_markdown_front_matter_sets_metadata(hints: Hints) -> None:
    source = (
        "---\ntitle: Launch day\ndate: 2026-02-03T09:30:00+02:00\nupdated: 2026-02-04\n"
        "tags: [news, Launch]\nauthor: Ada\nsummary: We launched.\nlang: de\n---\n"
        "# Ignored heading?\n\nSome *text* with [a link](https://example.org) and "
        "![pic](img/pic.png).\n"
    )
    entry = normalize(source.encode(), "post.md", hints)
    assert entry.title == "Launch day"
    assert entry.published == datetime(2026, 2, 3, 7, 30, tzinfo=UTC)
    assert entry.updated == datetime(2026, 2, 4, 0, 0, tzinfo=UTC)
    assert entry.tags == ("news", "Launch")
    assert (entry.author, entry.summary, entry.lang) == ("Ada", "We launched.", "de")
    assert "<em>text</em>" in entry.content_html
    assert entry.media == ("img/pic.png",)


def test_markdown_draft_is_flagged(hints: Hints) -> None:
    entry = normalize(b"---\ndraft: true\n---\nHello.\n", "d.md", hints)
    assert entry.draft


def test_markdown_raw_html_is_sanitised(hints: Hints) -> None:
    source = (
        b'Hello <script>alert(1)</script><b onclick="x()">bold</b> '
        b'<a href="javascript:alert(1)">bad</a> <style>p{}</style>\n'
    )
    entry = normalize(source, "x.md", hints)
    html = entry.content_html
    assert "<script" not in html and "alert" not in html and "onclick" not in html
    assert "javascript:" not in html and "<style" not in html
    assert "<b>bold</b>" in html


# The second review, finding 6.
def test_6_an_image_alone_in_a_markdown_paragraph_stays(hints: Hints) -> None:
    entry = normalize(b"# Pictures\n\nText first.\n\n![pic](pic.png)\n", "p.md", hints)
    assert '<img src="pic.png"' in entry.content_html and entry.media == ("pic.png",)


def test_html_page_yields_title_dates_and_article_without_chrome(hints: Hints) -> None:
    page = (ROOT / "tests" / "data" / "article.html").read_bytes()
    entry = normalize(page, "article.html", hints)
    assert entry.title == "Town opens a new library"
    assert entry.published == datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    assert entry.updated == datetime(2026, 1, 13, 10, 0, tzinfo=UTC)
    assert entry.summary == "The long-awaited library opened its doors on Monday."
    assert entry.lang == "en"
    assert "shelves hold 40,000 books" in entry.content_text
    for chrome in ("Home | News | Sport", "Sign up for our newsletter", "We use cookies", "alert("):
        assert chrome not in entry.content_text
        assert chrome not in entry.content_html
    assert "onerror" not in entry.content_html


def test_dateline_gives_the_published_date(hints: Hints) -> None:
    entry = normalize(b"Big news\n\nLONDON, March 3, 2025 - Something happened.\n", "a.txt", hints)
    assert entry.published == datetime(2025, 3, 3, tzinfo=UTC)


def test_without_a_date_published_is_first_seen(hints: Hints) -> None:
    entry = normalize(b"Big news\n\nSomething happened.\n", "a.txt", hints)
    assert entry.published == NOW == entry.updated


def test_naive_dates_are_in_the_site_time_zone(hints: Hints) -> None:
    kyiv = replace(hints, timezone="Europe/Kyiv")
    entry = normalize(b"---\ndate: 2026-07-01 10:00\n---\nText.\n", "a.md", kyiv)
    assert entry.published == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_word_count_and_reading_time(hints: Hints) -> None:
    body = " ".join(["word"] * 460) + "."
    entry = normalize(f"Title line\n\n{body}\n".encode(), "a.txt", hints)
    assert (entry.word_count, entry.reading_minutes) == (460, 2)


def test_learned_boilerplate_is_dropped_from_the_end(hints: Hints) -> None:
    from newsdrop.model import paragraph_hash

    tail = "Follow us on every network for more."
    doc = f"Title\n\nBody text here.\n\n{tail}\n".encode()
    assert tail in normalize(doc, "a.txt", hints).content_text
    learned = replace(hints, learned_boilerplate=frozenset({paragraph_hash(tail)}))
    assert tail not in normalize(doc, "a.txt", learned).content_text


def test_language_is_detected_unless_turned_off(hints: Hints) -> None:
    text = "Die Regierung hat am Montag neue Regeln für den Verkehr in der Stadt beschlossen."
    data = f"Titel der Nachricht\n\n{text}\n".encode()
    assert normalize(data, "a.txt", hints).lang == "de"  # on by default
    assert normalize(data, "a.txt", replace(hints, detect_language=False)).lang == "en"


def test_the_issues_arabic_text_file_is_published_as_arabic(hints: Hints) -> None:
    text = "افتتحت مكتبة جديدة في بيروت اليوم، وجاء القراء في الصباح الباكر لاستعارة الكتب الأولى."
    assert normalize(f"خبر\n\n{text}\n".encode(), "a.txt", hints).lang == "ar"


def test_a_text_too_short_to_judge_keeps_the_site_language(hints: Hints) -> None:
    assert (
        normalize("Ciao\n\nSì.\n".encode(), "a.txt", replace(hints, default_lang="uk")).lang == "uk"
    )


def test_the_documents_own_language_wins_over_detection(hints: Hints) -> None:
    text = "---\nlang: fr-CA\n---\nThe text is English, but the front matter says otherwise.\n"
    assert normalize(text.encode(), "a.md", hints).lang == "fr-CA"


def test_output_is_xml_safe(hints: Hints) -> None:
    entry = normalize("Ti\x01tle\ufffe\n\nBo\x0bdy\x1b text.\x7f".encode(), "a.txt", hints)
    forbidden = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
    for text in (entry.title, entry.summary, entry.content_text, entry.content_html):
        assert not forbidden.search(text)


def test_html_title_prefers_the_h1_over_a_title_with_the_site_name(hints: Hints) -> None:
    page = (
        b"<html><head><title>Rates held steady | Daily Example</title></head><body>"
        b"<h1>Rates held steady</h1><p>The central bank kept rates where they were on Tuesday, "
        b"citing slowing inflation and a cooling labour market across the region.</p></body></html>"
    )
    assert normalize(page, "p.html", hints).title == "Rates held steady"
    no_h1 = page.replace(b"<h1>Rates held steady</h1>", b"")
    assert normalize(no_h1, "p.html", hints).title == "Rates held steady"
    logo = page.replace(b"<h1>Rates held steady</h1>", b"<h1>Daily Example</h1>")
    assert normalize(logo, "p.html", hints).title == "Rates held steady"
