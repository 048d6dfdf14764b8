"""Dates at the edges of the calendar: a problem with a reason, never a crash."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdrop.errors import SourceError
from newsdrop.ingest.dates import read_date
from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.run import IngestReport
from newsdrop.ingest.zones import ABBREVIATIONS
from newsdrop.model import Hints

from conftest import NOW, CliRun

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


@pytest.mark.parametrize(
    ("written", "language", "utc", "guessed"),
    [
        ("November 19, 2019, 07:47 PM EST", "en", "2019-11-20T00:47", False),
        ("2019-11-19 19:47 PDT", "en", "2019-11-20T02:47", False),
        ("2019-11-19 19:47 CEST", "de", "2019-11-19T17:47", False),
        ("2019-11-19 19:47 MSK", "ru", "2019-11-19T16:47", False),
        ("2019-11-19 19:47 JST", "ja", "2019-11-19T10:47", False),
        ("2019-11-19 19:47 AEST", "en-AU", "2019-11-19T09:47", False),
        ("2019-11-19 19:47 IST", "en", "2019-11-19T14:17", True),  # India, the default
        ("2019-11-19 19:47 IST", "he", "2019-11-19T17:47", True),  # Israel, by the language
        ("2019-11-19 19:47 IST", "en-IE", "2019-11-19T18:47", True),  # Ireland, by the country
        ("2019-11-19 19:47 CST", "zh", "2019-11-19T11:47", True),  # China
        ("2019-11-19 19:47 CST", "en-US", "2019-11-20T01:47", True),  # North America
    ],
)
def test_zone_abbreviations_are_read_and_ambiguous_ones_noted(
    written: str, language: str, utc: str, guessed: bool
) -> None:
    moment, note = read_date(written, ZoneInfo("UTC"), language)
    assert moment is not None and moment.strftime("%Y-%m-%dT%H:%M") == utc
    assert bool(note) is guessed
    if guessed:
        assert written.split()[-1] in note and "read as" in note


def test_an_unknown_zone_is_noted_never_dropped_in_silence() -> None:
    moment, note = read_date("2019-11-19 19:47 QQT", ZoneInfo("Europe/Kyiv"), "uk")
    assert moment is not None and moment.hour == 17  # read in the site's zone, and said so
    assert "'QQT'" in note and "Europe/Kyiv" in note


def test_every_abbreviation_in_the_table_is_read_by_dateutil() -> None:
    for abbreviation, readings in ABBREVIATIONS.items():
        moment, _ = read_date(f"2020-01-01 12:00 {abbreviation}", ZoneInfo("UTC"), "")
        expected = 12 * 60 - readings[0].minutes
        assert moment is not None, abbreviation
        assert moment.hour * 60 + moment.minute == expected % (24 * 60), abbreviation


def test_a_guessed_zone_is_in_status(home: Path, run: CliRun) -> None:
    page = (
        '<html lang="en"><head><title>Storm</title>'
        '<meta property="article:published_time" content="2019-11-19 19:47 IST"></head>'
        "<body><article><h1>Storm</h1><p>The storm reached the coast at night.</p>"
        "</article></body></html>"
    )
    (home / "seeds" / "storm.html").write_text(page, encoding="utf-8")
    assert run("ingest").exit_code == 0
    text = run("status").output
    assert "notes: 1 published entries with a guess" in text
    assert "storm.html" in text and "IST read as India Standard Time" in text
    listed = json.loads(run("status", "--json").output)["notes"]
    assert listed[0]["path"] == "storm.html"


def test_a_written_offset_wins_over_the_abbreviation_beside_it() -> None:
    moment, note = read_date("Tue, 15 Jan 2030 10:00:00 +0200 (IST)", ZoneInfo("UTC"), "en")
    assert moment is not None and moment.hour == 8 and note == ""
