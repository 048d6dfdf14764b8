"""Dates at the edges of the calendar: a problem with a reason, never a crash."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdrop.errors import SourceError
from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.run import IngestReport
from newsdrop.model import Hints

from conftest import NOW

OUT_OF_RANGE = ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00")


@pytest.mark.parametrize("key", ["date", "updated"])
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_front_matter_date_without_a_utc_form_is_a_problem(
    hints: Hints, key: str, value: str
) -> None:
    data = f"---\ntitle: Old news\n{key}: {value}\n---\nBody.\n".encode()
    with pytest.raises(SourceError, match=rf"front matter {key} .* is out of range"):
        normalize(data, "old.md", hints)


def test_a_naive_date_is_judged_in_the_site_time_zone(hints: Hints) -> None:
    data = b"---\ntitle: Old news\ndate: 0001-01-01 00:30\n---\nBody.\n"
    with pytest.raises(SourceError, match="out of range"):  # Tokyo is hours ahead of UTC
        normalize(data, "old.md", replace(hints, timezone="Asia/Tokyo"))


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_an_html_meta_date_without_a_utc_form_is_ignored_like_a_bad_one(
    hints: Hints, value: str
) -> None:
    page = (
        f'<html><head><title>Old news</title><meta property="article:published_time" '
        f'content="{value}"><meta property="article:modified_time" content="{value}">'
        "</head><body><p>Body of the page.</p></body></html>"
    ).encode()
    entry = normalize(page, "old.html", hints)
    assert entry.published == NOW and entry.updated == NOW


def test_the_last_instant_in_range_is_a_date(hints: Hints) -> None:
    data = b"---\ntitle: Far\ndate: 9999-12-31T23:59:59+00:00\n---\nBody.\n"
    assert normalize(data, "far.md", hints).published == datetime(
        9999, 12, 31, 23, 59, 59, tzinfo=UTC
    )


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
edges = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 3)) | st.datetimes(
    min_value=datetime(9999, 12, 29), max_value=datetime(9999, 12, 31, 23, 59, 59)
)


@settings(max_examples=200, deadline=None)
@given(moment=edges, zone=offsets | st.none(), key=st.sampled_from(["date", "updated"]))
def test_any_date_near_the_edges_is_an_entry_in_utc_or_a_problem(
    moment: datetime, zone: timezone | None, key: str
) -> None:
    hints = Hints(first_seen=NOW, timezone="Pacific/Kiritimati")  # UTC+14: naive dates move too
    stamp = moment.replace(tzinfo=zone).isoformat()
    for data, name in (
        (f"---\ntitle: T\n{key}: {stamp}\n---\nBody.\n".encode(), "a.md"),
        (f"---\ntitle: T\n{key}: '{stamp}'\n---\nBody.\n".encode(), "b.md"),
        (
            f'<html><head><meta name="date" content="{stamp}"></head>'
            f"<body><p>{stamp}</p><p>Body.</p></body></html>".encode(),
            "c.html",
        ),
    ):
        try:
            entry = normalize(data, name, hints)
        except SourceError as exc:
            assert "out of range" in str(exc)
            continue
        assert entry.published.tzinfo is UTC and entry.updated >= entry.published


def test_ingest_makes_it_a_problem_and_publishes_the_rest(
    home: Path, do_ingest: object, run: object
) -> None:
    seeds = home / "seeds"
    (seeds / "old.md").write_text("---\ntitle: Old\ndate: 0001-01-01T00:00:00+05:00\n---\nB.\n")
    (seeds / "far.md").write_text("---\ntitle: Far\nupdated: 9999-12-31T23:59:59-05:00\n---\nB.\n")
    (seeds / "fine.md").write_text("---\ntitle: Fine\n---\nBody.\n")
    report: IngestReport = do_ingest()  # type: ignore[operator]
    assert report.added == ["fine.md"]
    reasons = {p.source: p.reason for p in report.problems}
    assert sorted(reasons) == ["far.md", "old.md"]
    assert all("out of range" in r and "please report" not in r for r in reasons.values())
