"""A change of settings or templates reaches every file at the next build, by itself.

A build is incremental (only what changed entries appear in); one whose settings or templates
differ from the last build's is a full one (build.output_fingerprint), and so is one that
finds a head file of feeds/ missing. Unchanged, a build still writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path

import feedparser
import pytest

from newsdrop.config import load_settings
from newsdrop.ingest.run import IngestReport, ingest
from newsdrop.publish.build import BuildReport, build
from newsdrop.store import Store

from conftest import NOW, CliRun

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

Ingest = Callable[..., IngestReport]
Build = Callable[..., BuildReport]


@pytest.fixture
def published(home: Path, do_ingest: Ingest, do_build: Build) -> None:
    """Five entries on pages of two (so there are archive pages), built once."""
    configure(home, "# max_entries = 50", "max_entries = 2")
    for number in range(5):
        add(home, f"{number}.md", f"Story {number}", f"2026-02-0{number + 1}T09:00:00Z")
    do_ingest()
    do_build()
    assert do_build(NOW + timedelta(minutes=1)).changed == []


def add(home: Path, name: str, title: str, date: str) -> None:
    (home / "seeds" / name).write_text(
        f"---\ntitle: {json.dumps(title)}\ndate: {date}\ntags: [town]\n---\nA body paragraph.\n"
    )


def configure(home: Path, old: str, new: str) -> None:
    config = home / "config" / "newsdrop.toml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


def packaged(name: str) -> str:
    return resources.files("newsdrop").joinpath("templates", name).read_text("utf-8")


def feed_files(home: Path) -> list[Path]:
    feeds = home / "feeds"
    return [feeds / "atom.xml", *sorted((feeds / "archive").glob("*.xml")), feeds / "tags" / "town.atom.xml"]  # fmt: skip


def test_new_site_title_and_base_url_reach_every_feed_and_page(
    home: Path, published: None, run: CliRun
) -> None:
    """The reviewer's case, through the CLI: `build` used to say "nothing changed"."""
    configure(home, '# title = "newsdrop"', 'title = "Town Herald"')
    configure(
        home, '# base_url = "http://127.0.0.1:8080/"', 'base_url = "https://herald.example.org/"'
    )
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "nothing changed" not in result.output
    for path in feed_files(home):
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, path
        assert parsed.feed.title.startswith("Town Herald"), path
        assert parsed.entries and all(
            e.link.startswith("https://herald.example.org/entries/") for e in parsed.entries
        ), path
    rss = feedparser.parse((home / "feeds" / "rss.xml").read_bytes())
    assert rss.feed.title == "Town Herald"
    assert json.loads((home / "feeds" / "feed.json").read_text())["title"] == "Town Herald"
    pages = [*(home / "feeds" / "entries").glob("*.html"), *(home / "feeds" / "digests").glob("*")]
    assert len(pages) > 5
    for page in pages:
        text = page.read_text()
        assert "Town Herald" in text and "127.0.0.1" not in text, page
    assert run("build").output.strip() == "build: nothing changed"


# The second review, finding 5.
def test_5_changing_max_entries_rewrites_the_archive(home: Path, store: Store) -> None:
    for number in range(9):
        (home / "seeds" / f"{number}.md").write_text(f"---\ntitle: Story {number}\n---\nBody.\n")
        ingest(load_settings(home), store, now=NOW + timedelta(minutes=number))
    for size in ("3", "2", "3"):
        settings = load_settings(home, environ={"NEWSDROP_FEEDS__MAX_ENTRIES": size})
        build(settings, store, now=NOW + timedelta(hours=1))

    titles: list[str] = []
    for path in [home / "feeds" / "atom.xml", *sorted((home / "feeds" / "archive").glob("*.xml"))]:
        titles += [e.title for e in feedparser.parse(path.read_bytes()).entries]
    assert sorted(titles) == sorted(f"Story {n}" for n in range(9))
    assert not (home / "feeds" / "archive" / "0003.atom.xml").exists()  # 9 entries of 3: 2 pages


def test_a_template_override_in_digest_changes_the_entry_pages(
    home: Path, published: None, do_build: Build
) -> None:
    entries = sorted((home / "feeds" / "entries").glob("*.html"))
    assert len(entries) == 5
    entry = packaged("entry.html.j2")
    (home / "digest" / "entry.html.j2").write_text(
        entry.replace("<article", '{% include "banner.html.j2" %}\n<article', 1)
    )
    (home / "digest" / "banner.html.j2").write_text("<p class=banner>Special edition</p>\n")
    report = do_build(NOW + timedelta(minutes=2))
    assert all(f"entries/{p.name}" in report.written for p in entries)
    assert all("<p class=banner>Special edition</p>" in p.read_text() for p in entries)
    assert "atom.xml" not in report.written  # a full build still writes only what differs
    # A template that an override includes counts as much as the override itself.
    (home / "digest" / "banner.html.j2").write_text("<p class=banner>Late edition</p>\n")
    report = do_build(NOW + timedelta(minutes=3))
    assert sorted(report.written) == sorted(f"entries/{p.name}" for p in entries)
    assert all("<p class=banner>Late edition</p>" in p.read_text() for p in entries)
    # Without its override, the packaged template is back on every page.
    (home / "digest" / "entry.html.j2").unlink()
    do_build(NOW + timedelta(minutes=4))
    assert not any("banner" in p.read_text() for p in entries)


def test_unchanged_settings_and_templates_keep_the_fast_path(
    home: Path, published: None, do_build: Build
) -> None:
    """Only what shapes the pages counts: a settings change elsewhere, a config file rewritten
    as it was, or a digest e-mail template leaves a build with nothing to do. A change that
    counts makes one full build, after which the fast path is back."""
    configure(home, "# send_at = ", "send_at = '06:30'  # ")
    config = home / "config" / "newsdrop.toml"
    config.write_text(config.read_text())
    (home / "digest" / "digest.txt.j2").write_text(packaged("digest.txt.j2") + "Goodbye.\n")
    assert do_build(NOW + timedelta(minutes=2)).changed == []
    configure(home, '# description = ""', 'description = "News of the town"')
    assert "atom.xml" in do_build(NOW + timedelta(minutes=3)).written
    assert do_build(NOW + timedelta(minutes=4)).changed == []
    assert "News of the town" in (home / "feeds" / "atom.xml").read_text()


def test_an_upgrade_of_newsdrop_rebuilds_every_file(
    home: Path, published: None, do_build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new version may render pages differently: its first build is a full one."""
    from newsdrop.publish import fingerprint

    files = sum(1 for path in (home / "feeds").rglob("*") if path.is_file())
    assert do_build(NOW + timedelta(minutes=2)).unchanged < files / 2  # the fast path
    monkeypatch.setattr(fingerprint, "code_version", lambda: "99.0.0")
    full = do_build(NOW + timedelta(minutes=3))  # every file made again (the same bytes here)
    assert full.changed == [] and full.unchanged == files
    assert do_build(NOW + timedelta(minutes=4)).unchanged < files / 2


def test_a_deleted_head_file_is_put_back(home: Path, published: None, do_build: Build) -> None:
    for name in ("index.html", "digests/index.html"):
        before = (home / "feeds" / name).read_bytes()
        (home / "feeds" / name).unlink()
        report = do_build(NOW + timedelta(minutes=2))
        assert name in report.written
        assert (home / "feeds" / name).read_bytes() == before
