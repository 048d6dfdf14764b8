"""Feed build benchmark: incremental build after one new entry at 1,000 and 50,000 entries,
a full rebuild at 50,000, and the floor: feedgen alone rendering a 50-entry Atom + RSS pair.

The store is filled directly (entries normalised once from the news corpus, then copied
with distinct ids, titles and dates, 100 first published per day) so that the figures
are about building, not ingesting.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedgen.feed import FeedGenerator

from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS, load_settings
from newsdrop.ingest.normalize import normalize
from newsdrop.model import Entry, Hints
from newsdrop.publish.build import build
from newsdrop.store import EntryWrite, Store

from report import Row, record, row

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PER_DAY = 100


def corpus_entries(corpus: Path) -> list[Entry]:
    hints = Hints(
        first_seen=T0,
        tag_authority="bench.example.org",
        boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS,
    )
    return [normalize(p.read_bytes(), p.name, hints) for p in sorted(corpus.rglob("*.txt"))]


def fill(store: Store, base: list[Entry], count: int, *, start: int = 0) -> None:
    """count entries, published PER_DAY a day, each day published at its own time."""
    batch: list[EntryWrite] = []
    for number in range(start, start + count):
        when = T0 + timedelta(days=number // PER_DAY, seconds=number % PER_DAY)
        source = base[number % len(base)]
        entry = replace(
            source,
            id=f"tag:bench.example.org,2025-01-01:e{number}",
            slug=f"e{number}",
            title=f"{source.title} ({number})",
            published=when,
            updated=when,
            tags=(f"topic{number % 5}",),
            content_hash=f"{number:064d}",
        )
        batch.append(EntryWrite(entry, f"bench/{number}.txt", 0, 0, f"{number:064x}", when))
        if len(batch) == 1000 or number == start + count - 1:
            store.write_entries(batch, now=when)
            store.publish_due(now=when)
            batch.clear()


def incremental_ms(home: Path, store: Store, base: list[Entry], existing: int, runs: int) -> float:
    settings = load_settings(home)
    times = []
    for run in range(runs):
        number = existing + run
        fill(store, base, 1, start=number)
        now = T0 + timedelta(days=number // PER_DAY, seconds=number % PER_DAY + 1)
        started = time.perf_counter()
        report = build(settings, store, now=now)
        times.append((time.perf_counter() - started) * 1000)
        assert f"entries/e{number}.html" in report.written, report.written
    return statistics.median(times)


def scenario(corpus: Path, count: int, runs: int) -> tuple[float, float]:
    """(median incremental ms, full rebuild s) for a store of ``count`` entries."""
    base = corpus_entries(corpus)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "news"
        subprocess.run(
            [sys.executable, "-m", "newsdrop", "init", str(home)], check=True, capture_output=True
        )
        settings = load_settings(home)
        store = Store.open(settings.store_url)
        fill(store, base, count)
        now = T0 + timedelta(days=count // PER_DAY + 1)
        started = time.perf_counter()
        build(settings, store, now=now, full=True)
        full_s = time.perf_counter() - started
        incremental = incremental_ms(home, store, base, count, runs)
        store.close()
        shutil.rmtree(home)
    return incremental, full_s


def feedgen_floor_ms(base: list[Entry], runs: int = 50) -> float:
    """feedgen alone: a 50-entry Atom and RSS pair from ready values."""
    items = base[:50]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fg = FeedGenerator()
        fg.id("https://bench.example.org/atom.xml")
        fg.title("Bench")
        fg.link(href="https://bench.example.org/", rel="alternate")
        fg.description("Bench")
        fg.updated(T0)
        for entry in items:
            fe = fg.add_entry(order="append")
            fe.id(entry.id)
            fe.title(entry.title)
            fe.link(href=f"https://bench.example.org/entries/{entry.slug}.html")
            fe.published(entry.published)
            fe.updated(entry.updated)
            fe.summary(entry.summary)
            fe.content(entry.content_html, type="html")
        fg.atom_str(pretty=True)
        fg.rss_str(pretty=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def rows(corpus: Path, *, large: int = 50_000, runs: int = 20) -> list[Row]:
    news = corpus / "news"
    by_size: dict[int, tuple[float, float]] = {}
    for size in sorted({1_000, 10_000, large}):
        by_size[size] = scenario(news, size, runs)
    record("build_by_size", by_size)
    small_ms = by_size[1_000][0]
    large_ms, full_s = by_size[large]
    floor = feedgen_floor_ms(corpus_entries(news)[:50])
    ratio = large_ms / small_ms
    return [
        row(
            f"incremental build after 1 new entry, {large:,} entries (median of {runs})",
            f"{large_ms:.0f} ms",
            "<= 100 ms",
            f"feedgen alone, 50-entry Atom + RSS: {floor:.1f} ms",
            f"{large_ms / floor:.0f}x feedgen alone",
            large_ms <= 100,
        ),
        row(
            f"incremental({large:,}) / incremental(1,000)",
            f"{ratio:.2f} ({small_ms:.0f} ms at 1,000)",
            "<= 1.5",
            "cost independent of history",
            f"{ratio:.2f}",
            ratio <= 1.5,
        ),
        row(
            f"full rebuild, {large:,} entries",
            f"{full_s:.1f} s",
            "<= 60 s",
            "Pelican 4.12 (quoted in the issue, not run here): 2.75 s for 1 new of 5,000",
            f"{full_s / large * 1000:.2f} ms an entry",
            full_s <= 60,
        ),
    ]


if __name__ == "__main__":
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    large = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    for row in rows(corpus, large=large):
        print(" | ".join(row))
