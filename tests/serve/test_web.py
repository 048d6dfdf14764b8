"""The web layer's pure parts: which files live in memory, path checks, validators."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from newsdrop.serve.files import FileCache, accepts_gzip, content_type, not_modified, safe_name


def make_feeds(root: Path) -> None:
    for name in ("atom.xml", "index.html", "tags/rivers.atom.xml", "entries/a.html",
                 "archive/0001.atom.xml"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"<x>{name}</x>" * 40)


def test_the_cache_holds_head_and_tag_feeds_but_not_the_archive(tmp_path: Path) -> None:
    make_feeds(tmp_path)
    (tmp_path / "leak.xml").symlink_to(tmp_path / "entries" / "a.html")
    cache = FileCache(tmp_path)
    assert sorted(cache.refresh()) == ["atom.xml", "index.html", "tags/rivers.atom.xml"]
    assert cache.refresh() == []  # nothing moved: nothing reread
    (tmp_path / "atom.xml").write_text("<feed/>" * 100)
    os.utime(tmp_path / "atom.xml", ns=(1, 1))
    assert cache.refresh() == ["atom.xml"]
    assert cache.files["atom.xml"].body == b"<feed/>" * 100
    (tmp_path / "index.html").unlink()
    assert cache.refresh(["index.html"]) == ["index.html"] and "index.html" not in cache.files


def test_safe_name_refuses_every_way_out(tmp_path: Path) -> None:
    make_feeds(tmp_path)
    assert safe_name(tmp_path, "/", None) == "index.html"
    assert safe_name(tmp_path, "/entries/a.html", b"/entries/a.html") == "entries/a.html"
    for path, raw in [
        ("/../x", None),
        ("/entries/../atom.xml", None),
        ("/entries/a.html", b"/entries%2Fa.html"),
        ("/.hidden", None),
        ("/a\x00", None),
        ("/a\\b", None),
        ("/missing.html", None),
    ]:
        assert safe_name(tmp_path, path, raw) is None, path


def test_validators_and_content_negotiation() -> None:
    from newsdrop.serve.files import Representation

    modified = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rep = Representation(b"x", b"gz", '"abc"', modified, "text/html", (0, 1))
    assert not_modified('"abc"', None, rep)
    assert not_modified('W/"abc-gz", "zzz"', None, rep)
    assert not not_modified('"zzz"', format_datetime(modified, usegmt=True), rep)  # ETag wins
    assert not_modified(None, format_datetime(modified, usegmt=True), rep)
    assert not not_modified(
        None, format_datetime(modified - timedelta(seconds=1), usegmt=True), rep
    )
    assert not not_modified(None, "yesterday", rep)
    assert accepts_gzip("gzip, deflate, br") and accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("br") and not accepts_gzip("")
    assert content_type("archive/0003.atom.xml") == "application/atom+xml; charset=utf-8"
    assert content_type("media/a/photo.jpg") == "image/jpeg"
