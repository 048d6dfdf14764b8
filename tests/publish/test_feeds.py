"""Feeds and pages built from a real store, read back by feedparser and lxml."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import jsonfeed
import pytest
from lxml import etree
from lxml import html as lxml_html

from newsdrop import files as files_module
from newsdrop.config import load_settings
from newsdrop.errors import BuildError
from newsdrop.ingest.run import IngestReport
from newsdrop.publish import build as build_module
from newsdrop.publish.build import BuildReport
from newsdrop.store import Store

from conftest import NOW, ROOT, corpus_path

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
Ingest = Callable[..., IngestReport]
Build = Callable[..., BuildReport]


@pytest.fixture
def small_pages(home: Path) -> None:
    """Three entries per feed page, so that archives appear with a handful of documents."""
    config = home / "config" / "newsdrop.toml"
    config.write_text(
        config.read_text()
        .replace('# base_url = "http://127.0.0.1:8080/"', 'base_url = "https://news.example.org/"')
        .replace("# max_entries = 50", "max_entries = 3")
    )


def add(home: Path, name: str, title: str, body: str = "A body paragraph.", **front: str) -> None:
    meta = "".join(f"{key}: {value}\n" for key, value in front.items())
    (home / "seeds" / name).write_text(f"---\ntitle: {json.dumps(title)}\n{meta}---\n{body}\n")


def parse(path: Path) -> feedparser.FeedParserDict:
    """Atom and RSS as feedparser, a real client, reads them; it must find nothing wrong."""
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
    return parsed


def parse_json(path: Path) -> jsonfeed.Feed:
    """JSON Feed as jsonfeed-util reads it (feedparser 6.0 has no JSON Feed parser)."""
    return jsonfeed.Feed.parse_string(path.read_text(encoding="utf-8"))


def titles(path: Path) -> list[str]:
    if path.suffix == ".json":
        return [item.title for item in parse_json(path).items]
    return [entry.title for entry in parse(path).entries]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_sample_round_trips_through_feedparser_in_all_formats(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    (home / "seeds" / "sample.txt").write_bytes(
        (ROOT / "seeds" / "bakhmut-counterattacks.txt").read_bytes()
    )
    do_ingest()
    do_build()
    feeds = home / "feeds"
    settings = load_settings(home)
    store = Store.open(settings.store_url)
    entry = store.entries()[0].entry
    store.close()
    for name in ("atom.xml", "rss.xml"):
        parsed = parse(feeds / name)
        assert len(parsed.entries) == 1, name
        item = parsed.entries[0]
        assert item.title == entry.title
        assert item.id == entry.id
        assert item.link == f"{settings.site.base_url}entries/{entry.slug}.html"
        assert datetime(*item.published_parsed[:6], tzinfo=UTC) == entry.published.replace(
            microsecond=0
        )
        if name != "rss.xml":  # RSS items have only pubDate
            updated = datetime(*item.updated_parsed[:6], tzinfo=UTC)
            assert updated == entry.updated.replace(microsecond=0)
        content = item.content[0].value if "content" in item else item.description
        assert "Bakhmut, which had a pre-war population" in content
        assert "Remind me later" not in content
    items = parse_json(feeds / "feed.json").items
    assert len(items) == 1
    assert (items[0].id, items[0].title, items[0].url) == (entry.id, entry.title, item.link)
    assert datetime.fromisoformat(items[0].date_published) == entry.published.replace(microsecond=0)
    assert datetime.fromisoformat(items[0].date_modified) == entry.updated.replace(microsecond=0)
    assert "Bakhmut, which had a pre-war population" in items[0].content_html
    rss = etree.parse(str(feeds / "rss.xml"))
    guid = rss.find(".//item/guid")
    assert guid is not None and guid.get("isPermaLink") == "false" and guid.text == entry.id


def test_atom_follows_the_validator_rules(
    home: Path, do_ingest: Ingest, do_build: Build, small_pages: None
) -> None:
    for number in range(7):
        add(home, f"{number}.md", f"Story {number} & <friends>", tags="[News, Tag Two]",
            body=f'Body {number} with <a href="../rel/{number}">a link</a>.')  # fmt: skip
    do_ingest()
    do_build()
    for path in sorted((home / "feeds").rglob("*.xml")):
        tree = etree.parse(str(path))  # well-formed
        root = tree.getroot()
        if root.tag == f"{ATOM}feed":
            self_links = root.findall(f"{ATOM}link[@rel='self']")
            assert len(self_links) == 1 and self_links[0].get("href").startswith("https://")
            ids = [e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry")]
            assert len(ids) == len(set(ids)) and all(i.startswith("tag:") for i in ids)
            for stamp in root.iter(f"{ATOM}updated", f"{ATOM}published"):
                assert re.fullmatch(
                    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", stamp.text
                )
            for content in root.iter(f"{ATOM}content"):
                assert content.get("type") == "html"
                fragment = lxml_html.fragment_fromstring(content.text, create_parent="div")
                for link in fragment.xpath("//@href | //@src"):
                    assert link.startswith("https://news.example.org/"), (path, link)
            for title in root.iter(f"{ATOM}title"):
                assert "&amp;" not in title.text  # escaped once, never twice


def test_json_feed_follows_version_1_1(home: Path, do_ingest: Ingest, do_build: Build) -> None:
    add(home, "a.md", "Hello <world>", tags="[one]")
    do_ingest()
    do_build()
    document = json.loads((home / "feeds" / "feed.json").read_text())
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(document["title"], str) and document["feed_url"].endswith("/feed.json")
    assert document["home_page_url"].startswith("http")
    for item in document["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert "content_html" in item or "content_text" in item
        assert item["title"] == "Hello <world>"
        for key in ("date_published", "date_modified"):
            datetime.fromisoformat(item[key].replace("Z", "+00:00"))
            assert item[key].endswith("Z")
        assert item["authors"] and item["tags"] == ["one"]
    assert "author" not in document  # 1.0's singular form is deprecated in 1.1


def test_build_is_deterministic_and_quiet(
    home: Path, do_ingest: Ingest, do_build: Build, small_pages: None
) -> None:
    for number in range(8):
        add(home, f"{number}.md", f"Story {number}", tags="[a]")
    do_ingest()
    do_build()
    first = snapshot(home / "feeds")
    assert do_build(NOW + timedelta(hours=1)).changed == []
    report = do_build(NOW + timedelta(hours=2), full=True)
    assert report.written == [] and report.unchanged > 0
    assert snapshot(home / "feeds") == first  # same bytes, same modification times


def test_interrupted_build_leaves_every_feed_parseable(
    home: Path,
    do_ingest: Ingest,
    do_build: Build,
    monkeypatch: pytest.MonkeyPatch,
    small_pages: None,
) -> None:
    for number in range(6):
        add(home, f"{number}.md", f"Story {number}")
    do_ingest()
    do_build()
    for number in range(6, 12):
        add(home, f"{number}.md", f"Story {number}")
    do_ingest(NOW + timedelta(minutes=1))
    real = files_module.write_temporary
    calls = []

    def crash_after_two(path: Path, data: bytes, **kwargs: bool) -> Path:
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between two files
        calls.append(path)
        return real(path, data, **kwargs)

    monkeypatch.setattr(files_module, "write_temporary", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        do_build(NOW + timedelta(minutes=1))
    monkeypatch.undo()
    for path in (home / "feeds").rglob("*"):
        assert not path.name.endswith(".tmp"), path
        if path.suffix == ".xml":
            parse(path)
    do_build(NOW + timedelta(minutes=2))  # the next build completes the job
    assert len(parse(home / "feeds" / "atom.xml").entries) >= 3


def test_disk_full_is_a_clear_error_and_the_old_feed_stays(
    home: Path, do_ingest: Ingest, do_build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(home, "a.md", "First")
    do_ingest()
    do_build()
    before = (home / "feeds" / "atom.xml").read_bytes()
    add(home, "b.md", "Second")
    do_ingest(NOW + timedelta(minutes=1))

    def no_space(path: Path, data: bytes, **kwargs: bool) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module, "write_temporary", no_space)
    with pytest.raises(
        BuildError, match=r"No space left on device.*previous files? (is|are) intact"
    ):
        do_build(NOW + timedelta(minutes=1))
    assert (home / "feeds" / "atom.xml").read_bytes() == before
    monkeypatch.undo()
    do_build(NOW + timedelta(minutes=2))
    for name in ("atom.xml", "rss.xml", "feed.json"):
        assert titles(home / "feeds" / name) == ["Second", "First"]


def test_archives_walk_reaches_every_entry_once(
    home: Path, do_ingest: Ingest, do_build: Build, small_pages: None
) -> None:
    titles = {}
    for number in range(14):
        add(home, f"{number:02d}.md", f"Story {number}")
        do_ingest(NOW + timedelta(minutes=number))  # one at a time: publication order is known
        do_build(NOW + timedelta(minutes=number))
    store = Store.open(load_settings(home).store_url)
    titles = {s.entry.id: s.entry.title for s in store.entries()}
    store.close()
    head = etree.parse(str(home / "feeds" / "atom.xml")).getroot()
    assert 3 <= len(head.findall(f"{ATOM}entry")) <= 5
    seen: dict[str, str] = {}
    document, pages = head, 0
    while True:
        for entry in document.findall(f"{ATOM}entry"):
            entry_id = entry.findtext(f"{ATOM}id")
            assert entry_id not in seen
            seen[entry_id] = entry.findtext(f"{ATOM}title")
        previous = document.find(f"{ATOM}link[@rel='prev-archive']")
        if previous is None:
            break
        path = home / "feeds" / previous.get("href").removeprefix("https://news.example.org/")
        document = etree.parse(str(path)).getroot()
        pages += 1
        assert document.find(f"{FH}archive") is not None
        assert len(document.findall(f"{ATOM}entry")) == 3
        assert document.find(f"{ATOM}link[@rel='current']").get("href").endswith("/atom.xml")
    assert pages == 3 and seen == titles
    oldest = etree.parse(str(home / "feeds" / "archive" / "0001.atom.xml")).getroot()
    assert [e.findtext(f"{ATOM}title") for e in oldest.findall(f"{ATOM}entry")] == [
        "Story 2", "Story 1", "Story 0"
    ]  # fmt: skip


def test_one_new_entry_rewrites_only_what_shows_it(
    home: Path, do_ingest: Ingest, do_build: Build, small_pages: None
) -> None:
    for number in range(7):
        add(home, f"{number}.md", f"Story {number}", tags="[old]")
    do_ingest()
    do_build()
    archive = snapshot(home / "feeds" / "archive")
    add(home, "new.md", "Fresh story", tags="[fresh]")
    do_ingest(NOW + timedelta(minutes=1))
    report = do_build(NOW + timedelta(minutes=1))
    assert sorted(report.written) == sorted(
        ["atom.xml", "rss.xml", "feed.json", "index.html", "entries/fresh-story.html",
         "tags/fresh.atom.xml", "tags/fresh.rss.xml", "tags/fresh.json",
         f"digests/{NOW.date().isoformat()}.html"]
    )  # fmt: skip
    assert snapshot(home / "feeds" / "archive") == archive


def test_edit_rewrites_its_archive_page_only(
    home: Path, do_ingest: Ingest, do_build: Build, small_pages: None
) -> None:
    for number in range(9):
        add(home, f"{number}.md", f"Story {number}", date=f"2026-01-0{number + 1}T00:00:00Z")
    do_ingest()
    do_build()
    page_two = (home / "feeds" / "archive" / "0002.atom.xml").read_bytes()
    add(home, "0.md", "Story zero, corrected", date="2026-01-01T00:00:00Z")
    do_ingest(NOW + timedelta(minutes=1))
    report = do_build(NOW + timedelta(minutes=1))
    assert "archive/0001.atom.xml" in report.written
    assert "archive/0002.atom.xml" not in report.written
    assert (home / "feeds" / "archive" / "0002.atom.xml").read_bytes() == page_two
    titles = [e.title for e in parse(home / "feeds" / "archive" / "0001.atom.xml").entries]
    assert "Story zero, corrected" in titles


def test_withdrawn_entry_and_emptied_tag_disappear(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    add(home, "a.md", "Keep me", tags="[stay]")
    add(home, "b.md", "Remove me", tags="[gone]")
    (home / "feeds" / "keep-this.txt").parent.mkdir(exist_ok=True)
    (home / "feeds" / "keep-this.txt").write_text("not ours")
    do_ingest()
    do_build()
    assert (home / "feeds" / "entries" / "remove-me.html").exists()
    (home / "seeds" / "b.md").unlink()
    do_ingest(NOW + timedelta(minutes=1))
    report = do_build(NOW + timedelta(minutes=1))
    assert "entries/remove-me.html" in report.removed
    assert not list((home / "feeds" / "tags").glob("gone.*"))
    assert (home / "feeds" / "tags" / "stay.atom.xml").exists()
    assert (home / "feeds" / "keep-this.txt").read_text() == "not ours"
    assert [e.title for e in parse(home / "feeds" / "atom.xml").entries] == ["Keep me"]


def test_future_entry_is_published_when_its_time_comes(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    add(home, "later.md", "Tomorrow's news", date=(NOW + timedelta(days=1)).isoformat())
    do_ingest()
    do_build()
    assert parse(home / "feeds" / "atom.xml").entries == []
    report = do_build(NOW + timedelta(days=1, minutes=1))
    assert report.published == 1
    assert [e.title for e in parse(home / "feeds" / "atom.xml").entries] == ["Tomorrow's news"]


def test_media_beside_a_document_is_published_with_absolute_urls(
    home: Path, do_ingest: Ingest, do_build: Build, small_pages: None
) -> None:
    (home / "seeds" / "posts" / "img").mkdir(parents=True)
    (home / "seeds" / "posts" / "img" / "chart.png").write_bytes(b"\x89PNG fake")
    (home / "seeds" / "posts" / "post.md").write_text(
        "# Charts\n\nSee ![the chart](img/chart.png) and ![gone](img/missing.png).\n"
    )
    report = do_ingest()
    assert [p.source for p in report.problems] == ["posts/post.md"]
    assert "img/missing.png" in report.problems[0].reason
    do_build()
    assert (
        home / "feeds" / "media" / "posts" / "img" / "chart.png"
    ).read_bytes() == b"\x89PNG fake"
    url = "https://news.example.org/media/posts/img/chart.png"
    assert url in parse(home / "feeds" / "atom.xml").entries[0].content[0].value
    assert url in parse(home / "feeds" / "rss.xml").entries[0].content[0].value
    assert url in json.loads((home / "feeds" / "feed.json").read_text())["items"][0]["content_html"]
    assert url in (home / "feeds" / "entries" / "charts.html").read_text()


def test_index_page_has_autodiscovery_and_the_latest_entries(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    add(home, "a.md", "An <odd> & title", summary="Short summary.")
    do_ingest()
    do_build()
    page = lxml_html.parse(str(home / "feeds" / "index.html")).getroot()
    types = {link.get("type") for link in page.xpath("//link[@rel='alternate']")}
    assert types == {"application/atom+xml", "application/rss+xml", "application/feed+json"}
    assert page.xpath("//article/h2/a")[0].text_content() == "An <odd> & title"
    assert "Short summary." in page.text_content()
    days = lxml_html.parse(str(home / "feeds" / "digests" / "index.html")).getroot()
    assert days.xpath("//ul/li/a")[0].get("href").endswith(f"digests/{NOW.date().isoformat()}.html")


def test_index_template_is_overridable_from_the_instance(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    (home / "digest" / "index.html.j2").write_text(
        "<html><body>{% for item in items %}<p class=custom>{{ item.title }}</p>{% endfor %}</body></html>\n"
    )
    add(home, "a.md", "Custom <page>")
    do_ingest()
    do_build()
    assert "<p class=custom>Custom &lt;page&gt;</p>" in (home / "feeds" / "index.html").read_text()


def test_news_corpus_round_trips_with_exact_titles(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    news = corpus_path("news")
    files = sorted(news.rglob("*.txt"))[:400]
    for path in files:
        (home / "seeds" / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    do_ingest()
    do_build()
    headlines = {p.read_text(encoding="utf-8").split("\n", 1)[0] for p in files}
    found: set[str] = set()
    for path in [home / "feeds" / "atom.xml", *sorted((home / "feeds" / "archive").glob("*.xml"))]:
        found |= {e.title for e in parse(path).entries}
    assert len(found) >= 0.99 * len(headlines) and found <= headlines | found
    assert len(headlines - found) <= 0.01 * len(headlines)
    for name in ("rss.xml", "feed.json"):
        assert len(titles(home / "feeds" / name)) >= 50


def test_naughty_strings_arrive_escaped_and_intact(
    home: Path, do_ingest: Ingest, do_build: Build
) -> None:
    strings = [
        line for line in (corpus_path("naughty") / "blns.txt").read_text("utf-8").split("\n")
        if line.strip() and not line.startswith("#")
    ][:200]  # fmt: skip
    for number, text in enumerate(strings):
        (home / "seeds" / f"{number:03d}.md").write_text(
            f"---\ntitle: {json.dumps(text)}\ntags: [{json.dumps(text)}]\n---\n{text}\n\nSecond paragraph.\n"
        )
    do_ingest()
    report = do_build()
    assert report.written
    store = Store.open(load_settings(home).store_url)
    expected = {s.entry.id: s.entry.title for s in store.entries()}
    store.close()
    found: dict[str, str] = {}
    for path in [home / "feeds" / "atom.xml", *sorted((home / "feeds" / "archive").glob("*.xml"))]:
        found |= {e.id: e.title for e in parse(path).entries}
    assert found == expected
    json_titles = {i.id: i.title for i in parse_json(home / "feeds" / "feed.json").items}
    assert all(expected[key] == title for key, title in json_titles.items())
    for path in (home / "feeds").rglob("*.xml"):
        root = etree.parse(str(path)).getroot()
        assert not root.findall(".//{*}script")  # never markup


def test_full_build_in_worker_processes_gives_the_same_files(
    home: Path,
    do_ingest: Ingest,
    do_build: Build,
    small_pages: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for number in range(11):
        add(home, f"{number:02d}.md", f"Story {number}", tags="[a, b]",
            date=f"2026-01-{number + 1:02d}T00:00:00Z")  # fmt: skip
    do_ingest()
    do_build()
    inline = {k: v[0] for k, v in snapshot(home / "feeds").items()}
    monkeypatch.setattr(build_module, "PARALLEL_FROM", 1)
    for path in (home / "feeds").rglob("*"):
        if path.is_file():
            path.unlink()
    report = do_build(NOW + timedelta(minutes=1), full=True)
    assert len(report.written) == len(inline)
    assert {k: v[0] for k, v in snapshot(home / "feeds").items()} == inline
