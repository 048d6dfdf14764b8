"""Property tests of the pure core (hypothesis): no crash, XML-safe, deterministic."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS
from newsdrop.errors import SourceError
from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.text import clean_text
from newsdrop.model import Hints

HINTS = Hints(
    first_seen=datetime(2026, 1, 1, tzinfo=UTC), boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS
)
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
names = st.sampled_from(["a.txt", "b.md", "c.html", "d.markdown", "e.htm"]) | st.text(
    min_size=1, max_size=40
).map(lambda s: s + ".txt")
documents = st.binary(max_size=3000) | st.text(max_size=3000).map(
    lambda s: s.encode("utf-8", "surrogatepass")
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=documents, name=names)
def test_normalize_only_ever_returns_an_entry_or_a_source_error(data: bytes, name: str) -> None:
    try:
        entry = normalize(data, name, HINTS)
    except SourceError as exc:
        assert str(exc)  # a reason a person can act on
        return
    for text in (entry.title, entry.summary, entry.content_text, entry.content_html, entry.author):
        assert not XML_FORBIDDEN.search(text)
    assert entry.title and len(entry.summary) <= 300
    assert entry.id.startswith("tag:") and entry.slug == entry.slug.lower()
    # letters, digits and marks of any script, and hyphens: a file name and a URL segment
    assert all(unicodedata.category(c)[0] in "LNM" or c == "-" for c in entry.slug)
    assert normalize(data, name, HINTS) == entry  # deterministic


@given(st.text(max_size=500))
def test_clean_text_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once
    assert not XML_FORBIDDEN.search(once)
