"""A service that does not stall (issue #13): a flood of files renamed into seeds/ at once,
a request made while not leading, worker processes that die with a killed build, and a
full feeds/ disk where the three head feeds change together and the build is retried."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from watchfiles import Change

from newsdrop.build import PARALLEL_FROM
from newsdrop.config import load_settings
from newsdrop.service import Service
from newsdrop.store import Store
from newsdrop.watch import Changes, finished_by_rename, temporary

from conftest import CliRun
from live import RunningService, publish, until

# --- finished_by_rename ---------------------------------------------------------------------


def quadratic_finished_by_rename(changes: Changes, seeds: Path) -> set[str]:
    """The rule as it was (every new file against every deleted one): the reference."""
    gone = {Path(path) for change, path in changes if change == Change.deleted}
    finished = set()
    for change, path in changes:
        target = Path(path)
        if change != Change.added or temporary(target.name):
            continue
        for old in gone:
            if (
                old.parent == target.parent
                and temporary(old.name)
                and (
                    old.name.lower().startswith(target.name.lower() + ".")
                    or old.name.startswith("." + target.name)
                )
            ):
                with contextlib.suppress(ValueError):
                    finished.add(target.relative_to(seeds).as_posix())
                break
    return finished


def random_batch(rng: random.Random, seeds: Path, size: int) -> Changes:
    """Renames of every kind publishers and editors make, among noise, in a few folders
    (and one outside seeds/)."""
    folders = [seeds, seeds / "a", seeds / "A", seeds / "a" / "b", seeds.parent / "elsewhere"]
    stems = ["x", "X", "x.md", "report.md", "Report.MD", "r", "re", ".x", "x~", "y.txt"]
    suffixes = [".part", ".PART", ".tmp", ".swp", ".md.part", "~", ".crdownload", ""]
    changes: Changes = set()
    for _ in range(size):
        folder = rng.choice(folders)
        stem = rng.choice(stems)
        kind = rng.randrange(4)
        if kind == 0:  # NAME.part -> NAME
            old = stem + rng.choice(suffixes)
        elif kind == 1:  # .NAME.xyz -> NAME
            old = "." + stem + rng.choice(suffixes)
        else:  # noise: any deleted name, any added name
            old = rng.choice(stems) + rng.choice(suffixes)
        changes.add((Change.deleted, str(folder / old)))
        changes.add((Change.added, str(rng.choice([folder, rng.choice(folders)]) / stem)))
        if rng.random() < 0.2:
            changes.add((Change.modified, str(folder / stem)))
    return changes


def test_finished_by_rename_finds_what_the_quadratic_rule_found(tmp_path: Path) -> None:
    rng = random.Random(13)
    seeds = tmp_path / "seeds"
    found = 0
    for size in [1, 2, 3, 5, 8, 13, 40, 100] * 25:
        changes = random_batch(rng, seeds, size)
        expected = quadratic_finished_by_rename(changes, seeds)
        assert finished_by_rename(changes, seeds) == expected, sorted(changes)
        found += len(expected)
    assert found > 500  # the batches held many renames, not only noise


LINEAR_CHILD = """
import sys, time
from pathlib import Path
from watchfiles import Change
from newsdrop.watch import finished_by_rename
seeds = Path(sys.argv[1])
changes = set()
for n in range(10_000):
    name = f"doc-{n:05d}.md"
    old = f"{name}.part" if n % 2 else f".{name}.tmp"
    changes.add((Change.deleted, str(seeds / "flood" / old)))
    changes.add((Change.added, str(seeds / "flood" / name)))
print(len(finished_by_rename(changes, seeds)))
"""


def test_finished_by_rename_on_20000_changes_finishes_where_the_old_took_minutes(
    tmp_path: Path,
) -> None:
    # 10,000 new files beside 10,000 deleted temporaries: 10^8 comparisons for the old rule
    # (2,000 took it 5.5 s; this would take minutes). A bounded child process, killed at the
    # limit, so that a quadratic rule fails the test instead of hanging it.
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", LINEAR_CHILD, str(tmp_path / "seeds")],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("finished_by_rename took over 30 s for 20,000 changes: not linear")
    assert done.stdout.split() == ["10000"]
    assert time.monotonic() - started < 30


# --- a request made while not leading --------------------------------------------------------


def test_a_request_made_while_not_leading_runs_once_this_instance_leads_again(
    home: Path,
) -> None:
    """A stall outlasted the lease's margin (the instance stopped counting itself leader)
    while it kept the lease: the pipeline found it not leading and returned. The renewal
    changes no leader, and the request must still run."""
    settings = load_settings(home, environ={**os.environ, "NEWSDROP_WATCH__SETTLE_MS": "0"})
    store = Store.open(settings.store_url)

    async def scenario() -> tuple[int, int]:
        service = Service(settings, store)
        service.status["url"] = "http://127.0.0.1:9/"
        await service.lead()
        assert service.leading()
        pipeline = asyncio.create_task(service.pipeline())
        try:
            service.lease_deadline = time.monotonic() - 1  # the stall: past the margin
            publish(home / "seeds", "kept.md", "---\ntitle: Kept\n---\nAsked for.\n")
            service.request()
            await asyncio.sleep(0.5)  # the pipeline looked, and did not lead
            before = await asyncio.to_thread(store.count_entries)
            await service.lead()  # the lease renewed: still this instance's
            deadline = time.monotonic() + 20
            while await asyncio.to_thread(store.count_entries) == 0:
                assert time.monotonic() < deadline, "the kept request never ran"
                await asyncio.sleep(0.05)
            return before, await asyncio.to_thread(store.count_entries)
        finally:
            service.stopping.set()
            await asyncio.wait_for(pipeline, timeout=20)

    try:
        before, after = asyncio.run(scenario())
    finally:
        store.close()
    assert (before, after) == (0, 1)
    assert (home / "feeds" / "entries" / "kept.html").is_file()


# --- a flood of files ------------------------------------------------------------------------


def published(service: RunningService) -> int:
    body = service.http.get("/metrics").text
    match = re.search(r'newsdrop_entries\{state="published"\} ([\d.e+]+)', body)
    return int(float(match.group(1))) if match else 0


def test_2000_files_renamed_in_at_once_never_stall_an_answer(home: Path) -> None:
    service = RunningService(home).start()
    try:
        flood = home / "seeds" / "flood"
        flood.mkdir()
        for n in range(2000):
            (flood / f"doc-{n:04d}.md.part").write_text(
                f"---\ntitle: Flood {n}\n---\nDocument {n} of the flood.\n", encoding="utf-8"
            )
        time.sleep(2.5)  # the watcher has seen the temporaries (and ignored them)
        waits: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=service.base, timeout=30) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    assert client.get("/atom.xml").status_code == 200
                    waits.append(time.monotonic() - started)
                    time.sleep(0.02)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        time.sleep(0.3)
        renamed = time.monotonic()
        for n in range(2000):
            os.replace(flood / f"doc-{n:04d}.md.part", flood / f"doc-{n:04d}.md")
        pages = home / "feeds" / "entries"
        try:
            until(
                lambda: len(list(pages.glob("flood-*.html"))) == 2000,
                timeout=90,
                what="the pages of all 2,000",
                every=0.25,
            )
            until(lambda: b"Flood " in service.http.get("/atom.xml").content, timeout=10, what="")
            served_after = time.monotonic() - renamed
        finally:
            stop.set()
            prober.join(timeout=35)
        assert len(waits) > 20
        assert max(waits) <= 2.0, f"a probe of /atom.xml waited {max(waits):.1f} s"
        assert served_after < 90
        assert published(service) == 2000
        for n in random.Random(2).sample(range(2000), 50):  # served over HTTP
            assert service.http.get(f"/entries/flood-{n}.html").status_code == 200, n
        # Nothing stalled the loop long enough for the lease's margin to lapse.
        assert "another instance leads" not in service.logs()
    finally:
        service.close()


# --- no orphans after a killed full build -----------------------------------------------------


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        table[int(entry.name)] = (int(fields[1]), fields[19], fields[0])
    return table


def family(root: int) -> dict[int, str]:
    """The descendants of ``root``: pid -> start time (a pid reused later is another one)."""
    table = process_table()
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, started, _) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def still_alive(processes: dict[int, str]) -> list[int]:
    table = process_table()
    return [
        pid
        for pid, started in processes.items()
        if pid in table and table[pid][1] == started and table[pid][2] != "Z"  # a zombie is dead
    ]


@pytest.mark.skipif(
    (os.cpu_count() or 1) < 2 or not Path("/proc/self/stat").exists(),
    reason="a full build uses worker processes only with two cores or more; reads /proc",
)
def test_a_full_build_killed_mid_way_leaves_no_process_behind(home: Path, run: CliRun) -> None:
    for n in range(PARALLEL_FROM + 100):  # enough entries for worker processes
        (home / "seeds" / f"e{n:04d}.md").write_text(
            f"---\ntitle: Entry {n}\n---\nText of entry {n}.\n", encoding="utf-8"
        )
    assert run("ingest").exit_code == 0
    build = subprocess.Popen(
        [sys.executable, "-m", "newsdrop", "--home", str(home), "build", "--full"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: dict[int, str] = {}
    try:
        # Worker processes have rendered pages: the build is in the middle of its work.
        pages = home / "feeds" / "entries"
        until(
            lambda: (pages.is_dir() and len(os.listdir(pages)) >= 100) or build.poll() is not None,
            timeout=60,
            what="the full build to write pages",
            every=0.02,
        )
        assert build.poll() is None, "the build finished before it could be killed"
        children = family(build.pid)
        assert len(children) >= 2, children  # its workers (and the resource tracker)
        build.send_signal(signal.SIGKILL)
        build.wait(timeout=10)
        try:
            until(lambda: not still_alive(children), timeout=5, what="the build's children to end")
        except AssertionError:
            raise AssertionError(
                f"still alive 5 s after the build was killed: {still_alive(children)}"
            ) from None
    finally:
        build.kill()
        for pid in still_alive(children):  # a failing run must not leave them either
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
