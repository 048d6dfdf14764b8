"""Golden files: the head feeds of a small fixed instance, byte for byte.

A difference fails with a diff. After an intended change of output, regenerate:
    NEWSDROP_REGENERATE_GOLDEN=1 make test
and review the change of tests/golden/ in the commit.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from newsdrop.config import load_settings
from newsdrop.ingest.run import IngestReport
from newsdrop.publish.build import build
from newsdrop.store import Store

from conftest import NOW

GOLDEN = Path(__file__).parent.parent / "golden"
DOCUMENTS = {
    "launch.md": (
        "---\ntitle: We launched & it works\ndate: 2026-02-01T09:00:00Z\ntags: [News, Launch]\n"
        "author: Ada Lovelace\n---\nFirst paragraph with a [link](https://example.org/) and "
        '<script>alert("x")</script> nothing else.\n\nSecond paragraph: "quotes", <em>em</em> & ]]>.\n'
    ),
    "notes.txt": "Quiet notes from the week\n\nShort notes. Nothing more.\n\nThe end.\n",
}


@pytest.mark.parametrize("name", ["atom.xml", "rss.xml", "feed.json", "index.html"])
def test_head_feeds_match_the_golden_files(
    home: Path, do_ingest: Callable[..., IngestReport], name: str
) -> None:
    config = home / "config" / "newsdrop.toml"
    config.write_text(
        config.read_text()
        .replace('# title = "newsdrop"', 'title = "Golden News"')
        .replace(
            '# base_url = "http://127.0.0.1:8080/"', 'base_url = "https://golden.example.org/"'
        )
        .replace('# description = ""', 'description = "A fixed instance for golden files."')
    )
    for filename, text in DOCUMENTS.items():
        (home / "seeds" / filename).write_text(text)
        os.utime(home / "seeds" / filename, (1_700_000_000, 1_700_000_000))
    do_ingest()
    settings = load_settings(home)
    store = Store.open(settings.store_url)
    build(settings, store, now=NOW + timedelta(minutes=1))
    store.close()
    produced = (home / "feeds" / name).read_text(encoding="utf-8")
    golden = GOLDEN / name
    if os.environ.get("NEWSDROP_REGENERATE_GOLDEN") == "1":
        golden.write_text(produced, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), produced.splitlines(True), "golden", "built"
        )
    )
    assert produced == expected, f"{name} differs from tests/golden/{name}:\n{diff}"
    assert datetime.now().year >= 2026  # the golden clock is NOW, not the wall clock
