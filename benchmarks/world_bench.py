"""Every language and script (issue #17), each figure beside its bar in the same run:

- language detection (on by default): the share of texts over 200 characters in 18
  languages detected right (tests/data/world/languages.json), and what a text under 60
  characters gets (right, the site's language kept, or wrong);
- its cost: normalising the 1,558 BBC texts with detection and without (best of three, in
  this process), the difference per document beside a cold ingest's time per document;
- short texts in legacy encodings (tests/data/world/short_texts.json): the share decoded
  exactly right, per encoding and overall.

Run alone: .venv/bin/python benchmarks/world_bench.py
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from newsdrop.ingest.derive import detect_language
from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.text import decode
from newsdrop.model import Hints

from report import Row, row

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "world"


def rows(corpus: Path, ingest_per_doc: float) -> list[Row]:
    return [*detection_rows(corpus, ingest_per_doc), encoding_row()]


def detection_rows(corpus: Path, ingest_per_doc: float) -> list[Row]:
    texts = json.loads((DATA / "languages.json").read_text(encoding="utf-8"))
    long = [(lang, t) for lang, items in texts.items() for t in items if len(t) > 200]
    short = [(lang, t) for lang, items in texts.items() for t in items if len(t) < 60]
    right = sum(detect_language(t) == lang for lang, t in long) / len(long)
    found = [detect_language(t) for _, t in short]
    short_right = sum(got == lang for got, (lang, _) in zip(found, short, strict=True))
    kept = sum(got == "" for got in found)
    cost = detection_cost(corpus)
    share = cost / ingest_per_doc
    return [
        row(
            f"language detection, {len(long)} texts over 200 characters in {len(texts)} languages",
            f"{right:.1%} right; of {len(short)} under 60 characters: {short_right} right, "
            f"{kept} keep the site's language, {len(short) - short_right - kept} wrong",
            ">= 97% right",
            "",
            "",
            right >= 0.97,
        ),
        row(
            "language detection's cost (1,558 BBC texts, normalised with and without)",
            f"{cost * 1e6:.1f} µs a document",
            "< 5% of a cold ingest's time a document",
            f"cold ingest: {ingest_per_doc * 1e6:.0f} µs a document",
            f"{share:.1%}",
            share < 0.05,
        ),
    ]


def detection_cost(corpus: Path) -> float:
    """Seconds a document that detection adds to normalising, best of three runs."""
    files = [(p.name, p.read_bytes()) for p in sorted((corpus / "news").rglob("*.txt"))]
    hints = Hints(first_seen=datetime.now(UTC))
    best = {True: float("inf"), False: float("inf")}
    for _ in range(3):
        for detect in (False, True):
            chosen = replace(hints, detect_language=detect)
            start = time.perf_counter()
            for name, data in files:
                normalize(data, name, chosen)
            best[detect] = min(best[detect], (time.perf_counter() - start) / len(files))
    return max(0.0, best[True] - best[False])


def encoding_row() -> Row:
    texts = json.loads((DATA / "short_texts.json").read_text(encoding="utf-8"))
    per = {
        encoding: sum(decode(i["text"].encode(encoding), "s.txt") == i["text"] for i in items)
        / len(items)
        for encoding, items in texts.items()
    }
    total = sum(len(items) * per[e] for e, items in texts.items()) / sum(
        len(items) for items in texts.values()
    )
    count = sum(len(items) for items in texts.values())
    return row(
        f"short texts in legacy encodings decoded exactly ({count} texts, {len(per)} encodings)",
        f"{total:.1%} overall; " + ", ".join(f"{e} {v:.0%}" for e, v in per.items()),
        ">= 95% overall",
        "",
        "",
        total >= 0.95,
    )


if __name__ == "__main__":
    here = Path(__file__).resolve()
    for line in rows(
        here.parents[2] / "shared" / "corpus", float(sys.argv[1]) if len(sys.argv) > 1 else 285e-6
    ):
        print(" | ".join(line))
