"""The text part's wrapping in every script: columns as a terminal shows them (East Asian
wide characters two), never inside a grapheme cluster, closing punctuation never first."""

from __future__ import annotations

import regex
from hypothesis import given
from hypothesis import strategies as st

from newsdrop.wrapping import columns_of, wrap

JAPANESE = "今日、東京に新しい図書館が開館しました。読者は朝早くから来ました。"


def test_wide_text_without_spaces_is_wrapped_by_columns() -> None:
    lines = wrap(JAPANESE * 5, 72, "  ").split("\n")
    assert len(lines) > 1
    assert all(columns_of(line) <= 72 for line in lines)
    assert "".join(line.removeprefix("  ") for line in lines) == JAPANESE * 5
    assert not any(line.removeprefix("  ")[0] in "、。" for line in lines)


def test_latin_text_wraps_at_spaces_and_a_long_url_stays_whole() -> None:
    url = "https://example.org/" + "x" * 90
    text = wrap(f"Read the whole story at {url} today, with the photographs.", 72, "  ", "* ")
    lines = text.split("\n")
    assert lines[0] == "* Read the whole story at" and lines[1] == f"  {url}"
    assert all(columns_of(line) <= 72 for line in lines if url not in line)


def test_no_line_ends_inside_a_grapheme_cluster() -> None:
    family, flag, conjunct = "👩\u200d👩\u200d👧", "🇺🇦", "क्षि"
    text = (family + flag + conjunct) * 30
    lines = wrap(text, 20).split("\n")
    clusters = regex.findall(r"\X", text)
    assert [c for line in lines for c in regex.findall(r"\X", line)] == clusters


@given(st.text(alphabet=st.sampled_from("ab 東京。、क्ष👩\u200d👧"), max_size=300))
def test_wrapping_keeps_every_cluster_in_order(text: str) -> None:
    wrapped = wrap(text, 24)
    assert "".join(wrapped.split()) == "".join(text.split())
    for line in wrapped.split("\n"):
        assert columns_of(line) <= 24 or " " not in line.strip()  # only a lone long word
