"""Opening periods for many subscribers with their own choices (issue #15), beside today's
single-hour daily case in the same run:

- 100,000 subscribers, each in a fresh SQLite store, 20 entries published after they join;
- "spread": 300 IANA zones, the four frequencies, 24 hours (on the hour), and for weekly
  subscribers each weekday; "single": every one daily, in one zone, at the site's hour;
- forty days on, so that every subscriber of either case has a period due (a monthly one
  has passed a 1st): the time to find the due periods and record them in the ledger
  (``due_period_pages`` and ``Store.open_periods``, as `digest send` does), and the peak
  memory of the process doing it, each case in a fresh process.

Run alone: .venv/bin/python benchmarks/schedule_bench.py [SUBSCRIBERS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from report import Row, row

CHILD = r"""
import json, resource, sys, time, zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from newsdrop.config import load_settings
from newsdrop.ingest.run import ingest
from newsdrop.mail.schedule import due_period_pages
from newsdrop.model import WEEKDAYS, SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import FREQUENCIES, new_subscriber

home, case, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
settings = load_settings(home)
store = Store.open(settings.store_url)
joined = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))[:300]
people = []
for n in range(count):
    if case == "single":
        people.append(new_subscriber(f"p{n}@example.org", timezone="Europe/Kyiv"))
    else:
        people.append(new_subscriber(
            f"p{n}@example.org", timezone=zones[n % len(zones)],
            frequency=FREQUENCIES[n % len(FREQUENCIES)], at=f"{n % 24:02d}:00",
            weekday=WEEKDAYS[n % 7],
        ))
for start in range(0, count, 5000):
    store.add_subscribers(people[start:start + 5000], now=joined, state=SubscriberState.ACTIVE)
for n in range(20):
    (home / "seeds" / f"e{n}.md").write_text(f"# Entry {n}\n\nBody {n}.\n")
ingest(settings, store, now=joined + timedelta(hours=1))
now = joined + timedelta(days=40)
started = time.perf_counter()
opened = 0
for page in due_period_pages(settings, store, now=now):
    opened += len(store.open_periods(page, now=now))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "opened": opened, "peak_mb": peak}))
"""


def measure(case: str, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "news"
        subprocess.run(
            [sys.executable, "-m", "newsdrop", "init", str(home)], check=True, capture_output=True
        )
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(home), case, str(count)],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def rows(count: int = 100_000) -> list[Row]:
    single = measure("single", count)
    spread = measure("spread", count)
    per_single = single["seconds"] / single["opened"]
    per_spread = spread["seconds"] / spread["opened"]
    ratio = per_spread / per_single
    return [
        row(
            f"opening periods for {count:,} subscribers over 300 zones, 4 frequencies, 24 hours",
            f"{spread['seconds']:.1f} s ({spread['opened']:,.0f} periods), "
            f"peak RSS {spread['peak_mb']:.0f} MB",
            "<= 1.5x the single-hour daily case per subscriber",
            f"every one daily in one zone at the site's hour: {single['seconds']:.1f} s "
            f"({single['opened']:,.0f} periods), peak RSS {single['peak_mb']:.0f} MB",
            f"{ratio:.2f}x per subscriber",
            ratio <= 1.5,
        )
    ]


if __name__ == "__main__":
    for line in rows(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000):
        print(" | ".join(line))
