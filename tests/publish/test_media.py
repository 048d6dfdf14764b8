"""Active media: nothing a document refers to is published in a form that can run code.

An SVG with a script and an onload handler is published as a PNG of its picture; an XHTML
page is not published at all (a problem of its document). Chromium, opening media/ from a
plain static server as cron mode serves it, runs no script; `newsdrop run` serves media with
Content-Disposition and a CSP that lets nothing run.
"""

from __future__ import annotations

import functools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chrome import CHROMEDRIVER, CHROMIUM
from newsdrop.config import load_settings
from newsdrop.files import write_atomic
from newsdrop.ingest.run import IngestReport
from newsdrop.publish.build import BuildReport, build
from newsdrop.store import Store

from conftest import NOW
from live import RunningService

SVG = b"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"
     onload="location.replace('/ran-onload')">
  <script>location.replace('/ran-script')</script>
  <rect width="40" height="20" fill="#c00"/>
</svg>
"""
XHTML = b"""<?xml version="1.0"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head>
<body><script>location.replace('/ran-xhtml')</script></body></html>
"""
STORY = "# Chart day\n\nThe chart: ![chart](chart.svg)\n\nThe [page](page.xhtml) too.\n"


@pytest.fixture
def published(
    home: Path, do_ingest: Callable[..., IngestReport], do_build: Callable[..., BuildReport]
) -> IngestReport:
    seeds = home / "seeds"
    (seeds / "chart.svg").write_bytes(SVG)
    (seeds / "page.xhtml").write_bytes(XHTML)
    (seeds / "story.md").write_text(STORY)
    report = do_ingest()
    do_build()
    return report


def test_svg_is_published_as_png_and_xhtml_not_at_all(home: Path, published: IngestReport) -> None:
    assert published.added == ["story.md"]  # the entry is published without the page
    (problem,) = published.problems
    assert "page.xhtml, a kind of file newsdrop does not publish" in problem.reason
    assert "chart.svg" not in problem.reason
    media = home / "feeds" / "media"
    assert sorted(p.name for p in media.iterdir()) == ["chart.svg.png"]
    assert (media / "chart.svg.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = next((home / "feeds" / "entries").glob("*.html")).read_text()
    assert "media/chart.svg.png" in page and "media/page.xhtml" not in page


def test_an_svg_that_cannot_be_drawn_is_a_problem(
    home: Path, do_ingest: Callable[..., IngestReport]
) -> None:
    (home / "seeds" / "broken.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><rect")
    (home / "seeds" / "story.md").write_text("# Story\n\n![x](broken.svg)\n")
    report = do_ingest()
    assert report.added == ["story.md"]
    assert "broken.svg: is not an SVG image newsdrop can draw" in report.problems[0].reason


def test_newsdrop_run_serves_media_with_disposition_and_a_strict_csp(
    home: Path, published: IngestReport
) -> None:
    service = RunningService(home).start()
    try:
        answer = service.http.get("/media/chart.svg.png")
    finally:
        service.close()
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.headers["content-disposition"] == 'inline; filename="chart.svg.png"'
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "sandbox" in csp


class Recorder(SimpleHTTPRequestHandler):
    seen: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        self.seen.append(self.path)


@pytest.fixture
def static(home: Path) -> Iterator[tuple[str, list[str]]]:
    """feeds/ from a plain static web server (the stdlib's), recording every path asked."""
    seen: list[str] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(home / "feeds"))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    server.shutdown()
    server.server_close()


def test_chromium_runs_nothing_from_media_on_a_static_server(
    home: Path, published: IngestReport, static: tuple[str, list[str]], request: Any
) -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (see test_browser.py)")
    driver = request.getfixturevalue("browser")
    base, seen = static
    # The control: the same SVG as it was copied before runs its script in this browser.
    (home / "feeds" / "raw").mkdir()
    (home / "feeds" / "raw" / "chart.svg").write_bytes(SVG)
    driver.get(base + "raw/chart.svg")
    _settle(seen, "/ran-")
    assert any(p.startswith("/ran-") for p in seen), "the control SVG ran nothing: test broken"

    seen.clear()
    for name in ("media/chart.svg.png", "media/page.xhtml", "media/chart.svg"):
        driver.get(base + name)
        _settle(seen, "/ran-")
    assert not [p for p in seen if p.startswith("/ran-")]
    assert "/media/chart.svg.png" in seen


def _settle(seen: list[str], prefix: str) -> None:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not any(p.startswith(prefix) for p in seen):
        time.sleep(0.1)


# --- one resolver for a document's files (issue #14's bugs) ------------------------------------

# A 1x1 PNG, written for these tests.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415478da63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


def test_two_documents_that_show_one_picture_build_every_time(
    home: Path, do_ingest: Callable[..., IngestReport], do_build: Callable[..., BuildReport]
) -> None:
    """Fresh builds failed 3 times in 8 ("cannot write .../media/pic.png: No such file"):
    the build's writer threads both wrote the picture, through one temporary name."""
    seeds = home / "seeds"
    (seeds / "pic.png").write_bytes(PNG)
    for number in range(24):
        (seeds / f"story-{number}.md").write_text(f"# Story {number}\n\n![p](pic.png)\n")
    assert do_ingest().problems == []
    for _ in range(8):
        shutil.rmtree(home / "feeds")
        report = do_build(full=True)
        assert report.written.count("media/pic.png") == 1
        assert (home / "feeds" / "media" / "pic.png").read_bytes() == PNG


def test_one_file_written_by_many_threads_at_once_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "feeds" / "media" / "pic.png"
    with ThreadPoolExecutor(max_workers=8) as pool:
        for done in [pool.submit(write_atomic, path, PNG, durable=False) for _ in range(200)]:
            done.result()
    assert path.read_bytes() == PNG
    assert [p.name for p in path.parent.iterdir()] == ["pic.png"]  # no temporary left


def test_a_reference_with_a_query_is_the_file_without_it(
    home: Path, do_ingest: Callable[..., IngestReport], do_build: Callable[..., BuildReport]
) -> None:
    (home / "seeds" / "pic.png").write_bytes(PNG)
    (home / "seeds" / "story.md").write_text("# Versioned\n\n![p](pic.png?v=2)\n")
    assert do_ingest().problems == []
    do_build()
    assert (home / "feeds" / "media" / "pic.png").read_bytes() == PNG
    page = (home / "feeds" / "entries" / "versioned.html").read_text()
    assert 'src="http://127.0.0.1:8080/media/pic.png"' in page and "%3F" not in page


def test_a_missing_picture_is_left_out_until_it_is_added(
    home: Path, do_ingest: Callable[..., IngestReport], do_build: Callable[..., BuildReport]
) -> None:
    """Reported as "published without it", the page kept an <img> that answered 404."""
    seeds, feeds = home / "seeds", home / "feeds"
    (seeds / "story.md").write_text("# Gone\n\nThe [plan](plan.pdf) and ![m](gone.png) here.\n")
    (problem,) = do_ingest().problems
    assert "gone.png, plan.pdf, not in seeds/" in problem.reason
    do_build()
    for name in ("entries/gone.html", "atom.xml", "feed.json"):
        text = (feeds / name).read_text()
        assert "gone.png" not in text and "plan.pdf" not in text, name
        assert "The plan and" in text.replace("\\n", " "), name  # the link's words stay
    (seeds / "gone.png").write_bytes(PNG)
    (seeds / "plan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    report = do_ingest()
    assert report.problems == [] and report.updated == ["story.md"]
    do_build()
    page = (feeds / "entries" / "gone.html").read_text()
    assert 'src="http://127.0.0.1:8080/media/gone.png"' in page and "media/plan.pdf" in page
    assert (feeds / "media" / "gone.png").read_bytes() == PNG


# The second review, findings 7 and 8.
def test_7_8_media_added_later_is_published_and_names_may_be_encoded(
    home: Path, store: Store, do_ingest: Callable[..., IngestReport]
) -> None:
    (home / "seeds" / "b.md").write_text("# Photos\n\nSee ![a](<my pic.png>) and ![b](фото.png).\n")
    (home / "seeds" / "my pic.png").write_bytes(b"one")
    report = do_ingest()
    assert len(report.problems) == 1 and "фото.png" in report.problems[0].reason
    assert "my pic.png" not in report.problems[0].reason
    settings = load_settings(home)
    build(settings, store, now=NOW)
    assert (home / "feeds" / "media" / "my pic.png").read_bytes() == b"one"
    (home / "seeds" / "фото.png").write_bytes(b"two")
    assert do_ingest(NOW + timedelta(minutes=1)).problems == []
    assert store.problems() == []
    result: BuildReport = build(settings, store, now=NOW + timedelta(minutes=1))
    assert "media/фото.png" in result.written
    page = (home / "feeds" / "entries" / "photos.html").read_text()
    assert "media/%D1%84%D0%BE%D1%82%D0%BE.png" in page and "media/my%20pic.png" in page
