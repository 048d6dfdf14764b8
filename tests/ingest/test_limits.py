"""Pathological documents: bounded in time and memory per document, in worker processes.

The documents are the shapes that stalled the service (40,000 attributes on one element;
millions of one-letter Markdown paragraphs), scaled down, with limits scaled down to match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from newsdrop.ingest.run import IngestReport

from conftest import NOW

Ingest = Callable[..., IngestReport]


def wide_page(attributes: int) -> bytes:
    """One element with this many attributes: parsing time grows with its square."""
    attrs = " ".join(f'a{i}="v{i}"' for i in range(attributes))
    return (
        f"<html><head><title>Wide</title></head><body><p {attrs}>Text.</p></body></html>".encode()
    )


@pytest.fixture
def set_limits(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def limit(**limits: object) -> None:
        for key, value in limits.items():
            monkeypatch.setenv(f"NEWSDROP_NORMALIZE__{key.upper()}", str(value))

    return limit


def test_a_slow_document_is_a_problem_and_not_parsed_again_until_the_limit_changes(
    home: Path, do_ingest: Ingest, set_limits: Callable[..., None]
) -> None:
    set_limits(timeout_s=1)
    seeds = home / "seeds"
    (seeds / "wide.html").write_bytes(wide_page(48_000))  # ten seconds and more unbounded
    (seeds / "fine.md").write_text("# Fine\n\nA normal story.\n")
    (seeds / "later.txt").write_text("Later story\n\nIt comes after the slow one.\n")
    started = time.monotonic()
    first = do_ingest()
    assert sorted(first.added) == ["fine.md", "later.txt"]
    (problem,) = first.problems
    assert problem.source == "wide.html"
    assert "took longer than [normalize] timeout_s = 1 s to normalise" in problem.reason
    assert time.monotonic() - started < 20

    started = time.monotonic()
    second = do_ingest(NOW + timedelta(minutes=1))
    assert second.normalised == 0  # judged under these settings already: not read again
    assert [p.source for p in second.problems] == ["wide.html"]
    assert time.monotonic() - started < 1

    os.utime(seeds / "wide.html")  # touched, same bytes: still not parsed
    assert do_ingest(NOW + timedelta(minutes=2)).normalised == 0

    set_limits(timeout_s=1.5)  # a changed [normalize] setting judges it again
    third = do_ingest(NOW + timedelta(minutes=3))
    assert third.normalised == 1 and "timeout_s = 1.5 s" in third.problems[0].reason


def test_a_document_that_needs_too_much_memory_is_a_problem(
    home: Path, do_ingest: Ingest, set_limits: Callable[..., None]
) -> None:
    set_limits(max_memory_mb=16)
    seeds = home / "seeds"
    (seeds / "paragraphs.md").write_bytes(b"p\n\n" * 300_000)  # hundreds of MB unbounded
    (seeds / "fine.md").write_text("# Fine\n\nA normal story.\n")
    report = do_ingest()
    assert report.added == ["fine.md"]
    (problem,) = report.problems
    assert problem.source == "paragraphs.md"
    assert "needed more than [normalize] max_memory_mb = 16 MB" in problem.reason
    again = do_ingest(NOW + timedelta(minutes=1))
    assert again.normalised == 0 and [p.source for p in again.problems] == ["paragraphs.md"]
    (seeds / "paragraphs.md").write_bytes(b"p\n\nq\n")  # changed: read again, and fine now
    fixed = do_ingest(NOW + timedelta(minutes=2))
    assert fixed.added == ["paragraphs.md"] and fixed.problems == []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    page = tmp_path / "wide.html"
    page.write_bytes(wide_page(40_000))  # a minute of work: the worker is busy when killed
    script = textwrap.dedent(
        f"""
        from datetime import UTC, datetime
        from newsdrop.ingest import sandbox
        from newsdrop.model import Hints
        hints = Hints(first_seen=datetime(2026, 1, 1, tzinfo=UTC))
        data = open({str(page)!r}, "rb").read()
        sandbox.normalize(data, "wide.html", hints, limits=sandbox.Limits(600, 4096))
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 30
        while not workers and time.monotonic() < deadline:
            for task in Path(f"/proc/{parent.pid}/task").glob("*/children"):
                workers += [int(pid) for pid in task.read_text().split()]
            time.sleep(0.1)
        assert workers, "the parent started no worker"
        time.sleep(1)  # the worker is parsing now
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), "a worker outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_bug_in_the_worker_is_a_fault_with_its_traceback_and_the_worker_goes_on() -> None:
    from datetime import UTC, datetime

    from newsdrop.ingest import sandbox
    from newsdrop.model import Hints

    limits = sandbox.Limits(30, 512)
    with pytest.raises(sandbox.WorkerFault) as fault:  # hints without their fields: a KeyError
        sandbox._POOL.call({"op": "normalize", "name": "x.md", "hints": {}}, b"x", limits)
    assert fault.value.kind == "KeyError" and "Traceback" in fault.value.trace
    hints = Hints(first_seen=datetime(2026, 1, 1, tzinfo=UTC))
    entry = sandbox.normalize(b"# Still here\n\nBody.\n", "y.md", hints, limits=limits)
    assert entry.title == "Still here"
