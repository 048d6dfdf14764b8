"""Kill `digest send` with SIGKILL in the middle of 500 digests, start it again, count."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from newsdrop.config import load_settings
from newsdrop.ingest.run import ingest
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import new_subscriber

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

PEOPLE = 500
POOL = 4


def test_a_killed_send_misses_nothing_and_repeats_at_most_what_was_in_flight(
    home: Path, tmp_path: Path
) -> None:
    smtp = SmtpServer(tmp_path)
    smtp.sink.hold = 0.01
    smtp.start()
    try:
        store = Store.open(load_settings(home).store_url)
        joined = datetime(2026, 1, 1, tzinfo=UTC)
        store.add_subscribers(
            [new_subscriber(f"p{n:03d}@example.org", timezone="UTC") for n in range(PEOPLE)],
            now=joined,
            state=SubscriberState.ACTIVE,
        )
        (home / "seeds" / "a.md").write_text("# Breaking\n\nNews for everyone.\n")
        ingest(load_settings(home), store, now=datetime.now(UTC))
        store.close()
        env = {
            **os.environ,
            **smtp.env(
                NEWSDROP_MAIL__POOL_SIZE=str(POOL),
                NEWSDROP_MAIL__RATE_PER_SECOND="100000",
                NEWSDROP_MAIL__CLAIM_TIMEOUT_S="0.5",
            ),
            "NEWSDROP_SMTP_PASSWORD": PASSWORD,
        }
        command = [sys.executable, "-m", "newsdrop", "--home", str(home), "digest", "send"]
        first = subprocess.Popen([*command, "--now"], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(smtp.sink.received) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = len(smtp.sink.received)
        assert 60 <= at_kill < PEOPLE, "the kill must land in the middle of the send"
        time.sleep(0.6)  # the dead run's claims expire
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
    finally:
        smtp.stop()
    counts = Counter(m["To"].addresses[0].addr_spec for m in smtp.sink.received)
    missed = PEOPLE - len(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"killed after {at_kill} messages; missed {missed}, duplicates {duplicates}")
    assert missed == 0
    assert duplicates <= POOL
    store = Store.open(load_settings(home).store_url)
    assert {state for _, state, _ in store.delivery_summary()} == {"sent"}
    store.close()
