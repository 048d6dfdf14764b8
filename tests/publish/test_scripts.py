"""Documents in eight scripts through ingest, feeds, pages and mail (issue #17, first part):
slugs and tag feeds named in the script itself, each entry's language and direction.

The sentences are written for these tests (no licence needed beyond the project's)."""

from __future__ import annotations

import json
import mailbox
import re
import shutil
import socket
import subprocess
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import feedparser
import httpx
import pytest
from lxml import html as lxml_html

from chrome import (
    CHROMEDRIVER,
    CHROMIUM,
    axe_violations,
    each_view,
    needs_axe,
    needs_browser,
    shot,
)
from newsdrop.ingest.normalize import normalize
from newsdrop.model import Hints, slugify, tag_names
from newsdrop.wrapping import columns_of

from conftest import CliRun
from live import RunningService, until

if CHROMIUM and CHROMEDRIVER:
    from selenium import webdriver

# (file, lang, title, tags, direction)
DOCUMENTS = [
    ("latin.md", "fr", "Café naïve à Montréal", ["Québec", "québec"], "ltr"),
    ("cyrillic.md", "uk", "Україна: новини з Києва", ["україна", "Київ"], "ltr"),
    ("greek.md", "el", "Νέα από την Αθήνα", ["Αθήνα"], "ltr"),
    ("arabic.md", "ar", "لبنان اليوم: أخبار بيروت", ["لبنان"], "rtl"),
    ("hebrew.md", "he", "חדשות מירושלים", ["ירושלים"], "rtl"),
    ("devanagari.md", "hi", "हिन्दी समाचार आज", ["भारत"], "ltr"),
    ("chinese.md", "zh", "北京今日新闻", ["北京"], "ltr"),
    ("japanese.md", "ja", "東京の天気予報", ["東京"], "ltr"),
]

BODY = {
    "fr": "Le marché ouvre à l'aube. Les étals débordent de fruits.",
    "uk": "Сьогодні в Києві відкрилася нова бібліотека. Читачі прийшли зранку.",
    "el": "Η νέα βιβλιοθήκη άνοιξε σήμερα στην Αθήνα. Οι αναγνώστες ήρθαν νωρίς.",
    "ar": "افتتحت مكتبة جديدة في بيروت اليوم. جاء القراء في الصباح الباكر.",
    "he": "ספרייה חדשה נפתחה היום בירושלים. הקוראים הגיעו מוקדם בבוקר.",
    "hi": "आज दिल्ली में एक नया पुस्तकालय खुला। पाठक सुबह जल्दी आए।",
    "zh": "今天北京开放了一座新图书馆。读者们一早就来了。",
    "ja": "今日、東京に新しい図書館が開館しました。読者は朝早くから来ました。",
}


def _write_documents(seeds: Path) -> None:
    for name, lang, title, tags, _ in DOCUMENTS:
        front = f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\nlang: {lang}\n"
        front += f"tags: {json.dumps(tags, ensure_ascii=False)}\n---\n"
        (seeds / name).write_text(front + BODY[lang] + "\n", encoding="utf-8")


@pytest.fixture
def published(home: Path, run: CliRun) -> Path:
    _write_documents(home / "seeds")
    assert run("ingest").exit_code == 0
    assert run("build").exit_code == 0
    return home / "feeds"


def test_slugs_keep_their_script_and_latin_loses_only_its_accents() -> None:
    assert slugify("Україна: війна триває") == "україна-війна-триває"
    assert slugify("لبنان اليوم") == "لبنان-اليوم"
    assert slugify("हिन्दी समाचार") == "हिन्दी-समाचार"  # vowel signs stay in their word
    assert slugify("Café naïve — Straße") == "cafe-naive-straße"
    assert slugify("Hello, World!") == "hello-world"  # as slugs always were
    assert slugify("a/b\\c?d#e%f:g") == "a-b-c-d-e-f-g"  # nothing a path or URL cannot take
    assert slugify("می\u200cخواهم") == "میخواهم"  # a zero-width non-joiner does not split


def test_a_slug_is_a_file_name_on_any_file_system() -> None:
    slug = slugify("𠀀" * 100)  # four bytes a character
    assert 0 < len(slug.encode()) <= 200


def test_tags_that_differ_by_case_or_normalisation_are_one_tag() -> None:
    decomposed = "Ки\u0438\u0306в"  # "Київ"-like, with a combining breve
    assert tag_names(["Київ", "київ", "КИЇВ"]) == {"київ": "Київ"}
    assert len(tag_names([decomposed, decomposed.lower()])) == 1
    assert tag_names(["Québec", "québec"]) == {"quebec": "Québec"}


def test_every_script_gets_its_slug_tag_feeds_and_language(published: Path) -> None:
    atom = feedparser.parse((published / "atom.xml").read_bytes())
    assert atom.bozo == 0, atom.bozo_exception
    by_title = {entry.title: entry for entry in atom.entries}
    items = {i["title"]: i for i in json.loads((published / "feed.json").read_bytes())["items"]}
    for _, lang, title, tags, _ in DOCUMENTS:
        entry = by_title[title]  # the title exactly as written
        assert entry.title_detail.language == lang, title  # xml:lang on the entry itself
        assert items[title]["language"] == lang
        assert entry.link.endswith(f"/entries/{quote(slugify(title))}.html")
        assert (published / "entries" / f"{slugify(title)}.html").exists()
        for slug in tag_names(tags):
            tag_feed = feedparser.parse((published / "tags" / f"{slug}.atom.xml").read_bytes())
            assert [e.title for e in tag_feed.entries] == [title]
    assert not (published / "tags" / "québec.atom.xml").exists()  # Québec and québec: one


@pytest.mark.parametrize(("name", "lang", "title", "tags", "direction"), DOCUMENTS)
def test_the_entry_page_sets_language_and_direction_and_links_its_tags(
    published: Path, name: str, lang: str, title: str, tags: list[str], direction: str
) -> None:
    page = lxml_html.fromstring((published / "entries" / f"{slugify(title)}.html").read_bytes())
    article = page.xpath("//article")[0]
    assert (article.get("lang"), article.get("dir")) == (lang, direction)
    links = {a.text_content(): a.get("href") for a in page.xpath("//p[contains(@class,'tags')]/a")}
    for slug, written in tag_names(tags).items():
        assert links[f"#{written}"].endswith(f"/tags/{quote(slug)}.atom.xml")


def test_tag_feeds_are_served_encoded_and_raw_by_newsdrop_run(published: Path, home: Path) -> None:
    service = RunningService(home).start()
    try:
        encoded = f"/tags/{quote('україна')}.atom.xml"
        response = service.http.get(encoded)
        assert response.status_code == 200
        assert feedparser.parse(response.content).entries[0].title == "Україна: новини з Києва"
        raw = _raw_get(service.base, "/tags/україна.atom.xml".encode())
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    finally:
        service.close()


def test_tag_feeds_are_served_by_a_plain_static_server(published: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # the standard library's static server, decoding as nginx does
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=published,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(lambda: _up(port), timeout=10, what="the static server")
        for tag, title in (("لبنان", "لبنان اليوم: أخبار بيروت"), ("東京", "東京の天気予報")):
            url = f"http://127.0.0.1:{port}/tags/{quote(slugify(tag))}.atom.xml"
            response = httpx.get(url)
            assert response.status_code == 200, url
            assert feedparser.parse(response.content).entries[0].title == title
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_each_digest_item_carries_its_language_and_direction(home: Path, run: CliRun) -> None:
    message = _scripts_digest(home, run)
    part = message.get_body(preferencelist=("html",))
    page = lxml_html.fromstring(part.get_content())  # type: ignore[union-attr]
    cells = {
        cell.xpath(".//a[contains(@class,'title')]")[0].text_content(): cell
        for cell in page.xpath("//td[contains(@class,'item')]")
    }
    for _, lang, title, _, direction in DOCUMENTS:
        assert (cells[title].get("lang"), cells[title].get("dir")) == (lang, direction)


def _raw_get(base: str, path: bytes) -> bytes:
    """A request whose path is raw UTF-8, as some clients send it (no percent-encoding)."""
    host, port = base.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    except httpx.TransportError:
        return False


@needs_browser
@needs_axe
def test_each_script_renders_in_its_direction_and_passes_axe(
    published: Path, home: Path, browser: webdriver.Chrome
) -> None:
    """Chromium's computed direction of each entry's article, a screenshot per script, and
    axe-core on the right-to-left and CJK pages at 390 and 1280 px, light and dark."""
    service = RunningService(home).start()
    browser.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})  # to inject axe-core
    try:
        for name, _, title, _, direction in DOCUMENTS:
            browser.get(f"{service.base}entries/{quote(slugify(title))}.html")
            computed = browser.execute_script(
                "return getComputedStyle(document.querySelector('article')).direction"
            )
            assert computed == direction, name
            shot(browser, f"script-{name.removesuffix('.md')}")
        problems = {}
        for device, scheme in each_view(browser):
            for name, _, title, _, _ in (DOCUMENTS[3], DOCUMENTS[7]):
                browser.get(f"{service.base}entries/{quote(slugify(title))}.html")
                shot(browser, f"axe-script-{name.removesuffix('.md')}-{device}-{scheme}")
                if found := axe_violations(browser):
                    problems[f"{name} {device} {scheme}"] = found
        assert not problems, problems
    finally:
        service.close()


def _scripts_digest(home: Path, run: CliRun) -> EmailMessage:
    assert run("subscribers", "add", "reader@example.org").exit_code == 0
    _write_documents(home / "seeds")  # after the subscriber joined: in the next digest
    assert run("ingest").exit_code == 0
    assert run("digest", "send", "--now").exit_code == 0
    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    (key,) = list(box.iterkeys())
    return message_from_bytes(box.get_bytes(key), policy=policy.default)  # type: ignore[return-value]


def test_the_text_part_in_every_script_wraps_at_72_columns(home: Path, run: CliRun) -> None:
    text = _scripts_digest(home, run).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for _, _, title, _, _ in DOCUMENTS:
        assert title in text.replace("\n  ", " ") or title in text
    assert all(columns_of(line) <= 72 for line in text.splitlines() if "http" not in line)


@pytest.mark.skipif(
    shutil.which("spamassassin") is None, reason="spamassassin is not installed (CI installs it)"
)
def test_spamassassin_scores_a_digest_in_eight_scripts_at_most_0(home: Path, run: CliRun) -> None:
    message = _scripts_digest(home, run)
    result = subprocess.run(
        ["spamassassin", "-L", "-t"], input=bytes(message), capture_output=True, timeout=120
    )
    report = result.stdout.decode(errors="replace")
    status = re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)[^\n]*(?:\n\s+[^\n]*)*", report)
    assert status, report[:2000]
    assert float(status.group(1)) <= 0, status.group(0)


@needs_browser
def test_the_digest_html_renders_each_entry_in_its_direction(
    home: Path, run: CliRun, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    html = _scripts_digest(home, run).get_body(("html",)).get_content()  # type: ignore[union-attr]
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    browser.get(page.as_uri())
    found = browser.execute_script(
        "return [...document.querySelectorAll('td.item')].map(td => "
        "[td.querySelector('a.title').textContent, getComputedStyle(td).direction])"
    )
    assert dict(found) == {title: direction for _, _, title, _, direction in DOCUMENTS}
    shot(browser, "script-digest")


def test_an_entry_keeps_every_tag_but_case_and_normalisation_variants(hints: Hints) -> None:
    text = "---\ntitle: Languages\ntags: [C++, C, c, 🎉, Київ, КИЇВ]\n---\nText.\n"
    entry = normalize(text.encode(), "a.md", hints)
    assert entry.tags == ("C++", "C", "🎉", "Київ")
    assert tag_names(entry.tags) == {"c": "C++", "київ": "Київ"}  # the feeds they share
