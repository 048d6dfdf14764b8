"""A full state/ disk (the store, the Maildir outbox): a clear error, nothing sent twice,
nothing left claimed, and /healthz says so. state/ is a small tmpfs (mounting needs root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest

from newsdrop.config import load_settings
from newsdrop.disk import RESERVE_BYTES
from newsdrop.mail.schedule import due_periods
from newsdrop.store import Store

from conftest import CliRun
from live import RunningService, publish, served_entries, until
from small_disk import needs_root, small_disk

pytestmark = needs_root

PEOPLE = 300


@pytest.fixture
def state(home: Path) -> Iterator[Path]:
    """The instance's state/ on a 12 MB tmpfs (what `init` put there copied in)."""
    with small_disk(home / "state", "12m") as folder:
        yield folder


def fill(folder: Path, *, leave: int) -> Path:
    """Take all the free space of ``folder``'s disk but ``leave`` bytes."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with filler.open("ab") as handle:
        os.posix_fallocate(handle.fileno(), 0, filler.stat().st_size + max(0, free - leave))
    return filler


def digest_send(home: Path) -> subprocess.CompletedProcess[str]:
    """`newsdrop digest send` as cron runs it: its exit code and its words."""
    return subprocess.run(
        [sys.executable, "-m", "newsdrop", "--home", str(home), "digest", "send"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NEWSDROP_MAIL__POOL_SIZE": "8"},
    )


def outbox(state: Path) -> list[str]:
    """The recipient of every message in the Maildir."""
    found = []
    for sub in ("new", "cur"):
        folder = state / "outbox" / sub
        for name in os.listdir(folder) if folder.is_dir() else []:
            found.append(str(message_from_bytes((folder / name).read_bytes())["To"]))
    return found


def ledger(home: Path) -> dict[str, int]:
    store = Store.open(load_settings(home).store_url)
    try:
        return store.delivery_counts()
    finally:
        store.close()


def test_digest_send_on_a_full_state_disk_is_a_clear_error_and_sends_nothing_twice(
    home: Path, run: CliRun, state: Path, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text("".join(f"reader{n}@example.org,Reader {n}\n" for n in range(PEOPLE)))
    assert run("subscribers", "import", str(people)).exit_code == 0
    publish(home / "seeds", "news.md", "---\ntitle: The news\n---\n" + "A story. " * 300 + "\n")
    assert run("ingest").exit_code == 0
    settings = load_settings(home)
    store = Store.open(settings.store_url)
    try:  # every reader's period due now, as `digest send --now` would open them
        now = datetime.now(UTC)
        assert (
            len(store.open_periods(due_periods(settings, store, now=now, close_now=True), now=now))
            == PEOPLE
        )
    finally:
        store.close()

    # Full to the last byte: the store cannot record a claim. One sentence, exit 1.
    filler = fill(state, leave=0)
    full = digest_send(home)
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr and "OperationalError" not in full.stderr
    assert f"the disk holding {state} is full; free space there" in full.stderr, full.stderr
    assert outbox(state) == []
    filler.unlink()
    assert ledger(home) == {"queued": PEOPLE}

    # Nearly full: the outbox stops while the ledger can still record what it wrote.
    filler = fill(state, leave=RESERVE_BYTES + 600_000)
    nearly = digest_send(home)
    assert nearly.returncode == 1, nearly.stderr
    assert (
        f"sending paused, nothing was bounced: the disk holding {state / 'outbox'} is full"
        in nearly.stderr
    )
    written = outbox(state)
    assert 0 < len(written) < PEOPLE
    assert ledger(home) == {"sent": len(written), "queued": PEOPLE - len(written)}
    filler.unlink()

    # Space again: the rest, once each.
    after = digest_send(home)
    assert after.returncode == 0, after.stderr
    written = outbox(state)
    assert len(written) == len(set(written)) == PEOPLE
    assert ledger(home) == {"sent": PEOPLE}


def test_a_store_that_fills_mid_send_records_what_went_out_and_gives_the_rest_back(
    home: Path, run: CliRun, state: Path, tmp_path: Path
) -> None:
    # The outbox on a disk of its own with room: the store's disk fills while messages go
    # out (as with SMTP), so marks fail after the messages were written.
    box = state / "outbox"
    box.mkdir()
    with small_disk(box, "20m"):
        people = tmp_path / "people.csv"
        people.write_text("".join(f"reader{n}@example.org,Reader {n}\n" for n in range(PEOPLE)))
        assert run("subscribers", "import", str(people)).exit_code == 0
        publish(home / "seeds", "news.md", "---\ntitle: The news\n---\nA story.\n")
        assert run("ingest").exit_code == 0
        settings = load_settings(home)
        store = Store.open(settings.store_url)
        try:
            now = datetime.now(UTC)
            opened = store.open_periods(
                due_periods(settings, store, now=now, close_now=True), now=now
            )
            assert len(opened) == PEOPLE
        finally:
            store.close()
        filler = fill(state, leave=120_000)
        failed = digest_send(home)
        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr and "OperationalError" not in failed.stderr
        assert f"the disk holding {state} is full; free space there" in failed.stderr
        written = outbox(state)
        assert 0 < len(written) < PEOPLE, failed.stderr
        # Every message written is recorded as sent; every other claim was given back.
        recorded = ledger(home)
        assert recorded == {"sent": len(written), "queued": PEOPLE - len(written)}, failed.stderr
        filler.unlink()
        again = digest_send(home)
        assert again.returncode == 0, again.stderr
        written = outbox(state)
        assert len(written) == len(set(written)) == PEOPLE
        assert ledger(home) == {"sent": PEOPLE}


def test_health_says_state_is_full_and_no_other_instance_is_blamed(home: Path, state: Path) -> None:
    service = RunningService(home, env={"NEWSDROP_CLUSTER__LEASE_SECONDS": "3"}).start()
    try:
        filler = fill(state, leave=0)
        until(lambda: service.http.get("/healthz").status_code == 503, timeout=10, what="503")
        until(
            lambda: "the lease could not be written" in service.logs(),
            timeout=10,
            what="the lease write to fail",
        )
        answer = service.http.get("/healthz")
        assert answer.status_code == 503
        report = answer.json()
        assert report["status"] == "failing"
        assert report["disk"].startswith("state/ is full: free space there"), report
        for internal in (str(home), "sqlite", "SELECT", "UPDATE", "INSERT", "OperationalError"):
            assert internal not in answer.text
        assert "another instance leads" not in service.logs()
        filler.unlink()
        until(
            lambda: service.http.get("/healthz").status_code == 200,
            timeout=15,
            what="health once space is back",
        )
        assert "the store can be written again" in service.logs()
    finally:
        service.close()


def test_a_document_dropped_while_state_is_full_is_published_once_space_is_back(
    home: Path, state: Path
) -> None:
    """The ingest that fails on a full state/ is tried again by itself: the document it
    missed brings no other event, and the rescan is an hour away."""
    service = RunningService(home).start()
    try:
        publish(home / "seeds", "before.md", "---\ntitle: Before the disk filled\n---\nOk.\n")
        until(
            lambda: "Before the disk filled" in served_entries(service),
            timeout=20,
            what="the first document",
        )
        filler = fill(state, leave=0)
        publish(home / "seeds", "during.md", "---\ntitle: Dropped while full\n---\nOk.\n")
        until(
            lambda: "ingest failed" in service.logs() or "stops leading" in service.logs(),
            timeout=20,
            what="the ingest (or the lease) to fail on the full disk",
        )
        time.sleep(2)  # a retry or two fails too
        filler.unlink()
        until(
            lambda: "Dropped while full" in served_entries(service),
            timeout=40,
            what="the document dropped while state/ was full, with no new event",
        )
    finally:
        service.close()
