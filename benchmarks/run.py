"""`make bench`: ingest and extraction benchmarks, written into benchmarks/README.md.

Each figure is measured beside its floor or peer in the same run, on this
machine, so the ratio means something on any machine:

- cold ingest of >= 10,000 documents made from ../shared/corpus/news, in a fresh
  process (interpreter start-up and imports excluded from the timing), with its
  peak RSS; floor: reading and hashing the same files;
- rescan of the same 10,000 unchanged files; floor: listing and stat-ing them;
- every language (benchmarks/world_bench.py): language detection's accuracy and its cost
  beside the cold ingest's time a document; short texts in legacy encodings;
- HTML extraction (benchmarks/extraction_bench.py): cross-validated scores on held-out halves
  of the shared pages, beside trafilatura alone on the same halves;
- feed builds (benchmarks/feeds_bench.py): one new entry at 1,000 and 50,000 entries,
  and a full rebuild, beside feedgen alone rendering a 50-entry Atom + RSS pair;
- digest sending (benchmarks/mail_bench.py): newsdrop end to end against an aiosmtpd sink
  in its own process, beside the rss2email way and a bare aiosmtplib pool (the ceiling);
- the service (benchmarks/service_bench.py): watch to publish, requests/s beside nginx, web
  latency during an ingest, 10,000 files renamed in at once (until served, beside a cold
  ingest of them; /atom.xml's p99 meanwhile, beside idle), memory with 50,000 entries;
- scale-out (benchmarks/cluster_bench.py): digests/s with 1, 2 and 3 instances on
  PostgreSQL against a sink that holds each message 50 ms, and one instance on SQLite;
- subscribers' own schedules (benchmarks/schedule_bench.py): opening periods for 100,000
  subscribers over 300 zones, four frequencies and 24 hours, beside all of them daily at
  the site's hour;
- returned mail (benchmarks/bounces_bench.py): 10,000 bounces and complaints through the
  listener beside aiosmtpd's own sink, and 200 through `bounces receive` (a process each)
  beside `newsdrop --help`.

Run: make bench   (or: .venv/bin/python benchmarks/run.py [--docs N])
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402  (benchmarks/report.py)
from report import Row, row  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
README = ROOT / "benchmarks" / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

CHILD = r"""
import json, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path
from newsdrop.config import load_settings
from newsdrop.ingest.run import ingest
from newsdrop.store import Store
home = Path(sys.argv[1])
settings = load_settings(home)
store = Store.open(settings.store_url)
import newsdrop.ingest.normalize, newsdrop.ingest.markup  # imports are start-up, not ingest
start = time.perf_counter()
report = ingest(settings, store, now=datetime.now(UTC))
elapsed = time.perf_counter() - start
print(json.dumps({
    "seconds": elapsed,
    "added": len(report.added),
    "unchanged": report.unchanged,
    "problems": len(report.problems),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def make_seeds(seeds: Path, count: int) -> int:
    """count documents from the news corpus; copies get a distinct last line."""
    sources = sorted((CORPUS / "news").rglob("*.txt"))
    if not sources:
        sys.exit(f"{CORPUS / 'news'} is absent: the benchmark needs the shared corpus")
    made = 0
    for copy in range(count // len(sources) + 1):
        folder = seeds / f"copy{copy:02d}"
        folder.mkdir(parents=True)
        for source in sources:
            if made == count:
                return made
            data = source.read_bytes()
            if copy:
                data += f"\nEdition {copy}.\n".encode()
            (folder / f"{source.parent.name}-{source.name}").write_bytes(data)
            made += 1
    return made


def run_child(home: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(home)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def read_floor(seeds: Path) -> float:
    start = time.perf_counter()
    for path in seeds.rglob("*.txt"):
        hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - start


def stat_floor(seeds: Path) -> float:
    start = time.perf_counter()
    for directory, _dirs, files in os.walk(seeds):
        for name in files:
            os.stat(os.path.join(directory, name))
    return time.perf_counter() - start


INGEST_PER_DOC = [0.0]  # seconds a document in the cold ingest, for world_bench


def ingest_rows(count: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "news"
        subprocess.run(
            [sys.executable, "-m", "newsdrop", "init", str(home)], check=True, capture_output=True
        )
        made = make_seeds(home / "seeds", count)
        # Page cache warm for both the floor and newsdrop: the figures compare CPU work.
        read_floor(home / "seeds")
        floor_read = read_floor(home / "seeds")
        cold = run_child(home)
        floor_stat = stat_floor(home / "seeds")
        rescan = run_child(home)
    assert cold["added"] == made and rescan["unchanged"] == made, (cold, rescan)
    docs_per_s = made / cold["seconds"]
    INGEST_PER_DOC[0] = cold["seconds"] / made  # what language detection's cost is beside
    return [
        row(
            f"cold ingest, {made:,} documents",
            f"{docs_per_s:,.0f} docs/s ({cold['seconds']:.2f} s), peak RSS {cold['peak_rss_mb']:.0f} MB",
            ">= 1,000 docs/s",
            f"read + sha256 only: {made / floor_read:,.0f} docs/s",
            f"{docs_per_s / (made / floor_read):.3f}x the floor's rate",
            docs_per_s >= 1000,
        ),
        row(
            f"rescan, {made:,} unchanged files",
            f"{rescan['seconds']:.2f} s",
            "<= 1 s",
            f"os.walk + stat only: {floor_stat:.2f} s",
            f"{rescan['seconds'] / floor_stat:.1f}x the floor's time",
            rescan["seconds"] <= 1,
        ),
    ]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000, help="documents for the ingest run")
    parser.add_argument("--entries", type=int, default=50_000, help="store size for feed builds")
    parser.add_argument("--subscribers", type=int, default=10_000, help="digests to send")
    args = parser.parse_args()
    if not CORPUS.exists():
        sys.exit(f"{CORPUS} is absent: benchmarks need the shared corpus beside the repository")
    import bounces_bench
    import cluster_bench
    import extraction_bench
    import feeds_bench
    import mail_bench
    import schedule_bench
    import service_bench
    import world_bench

    rows = (
        ingest_rows(args.docs)
        + extraction_bench.rows(CORPUS)
        + world_bench.rows(CORPUS, ingest_per_doc=INGEST_PER_DOC[0])
        + feeds_bench.rows(CORPUS, large=args.entries)
        + mail_bench.rows(CORPUS, count=args.subscribers)
        + service_bench.rows(CORPUS, docs=args.docs, large=args.entries)
        + cluster_bench.rows(CORPUS)
        + schedule_bench.rows()
        + bounces_bench.rows()
    )
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    lines = [f"Measured {when} on {machine()}.", "", *report.table(rows)]
    text = README.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail, encoding="utf-8")
    report.write(rows, machine=machine(), when=when)
    print("\n".join(lines))
    print(f"wrote {README} and {README.parent / 'REPORT.md'}")
    if any(r[-1] != "met" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
