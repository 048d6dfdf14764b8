"""A service that does not stall (issue #13): a flood of files renamed into seeds/ at once,
a request made while not leading, worker processes that die with a killed build, and a
full feeds/ disk where the three head feeds change together and the build is retried."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from click.testing import CliRunner
from watchfiles import Change

from newsdrop import templates as templates_module
from newsdrop.cli.main import cli
from newsdrop.config import load_settings
from newsdrop.errors import BuildError
from newsdrop.ingest.run import IngestReport, ingest
from newsdrop.publish.build import PARALLEL_FROM, BuildReport, build
from newsdrop.serve import files as files_module
from newsdrop.serve.files import FileCache, Representation
from newsdrop.service.run import Service
from newsdrop.service.watch import Changes, finished_by_rename, temporary
from newsdrop.store import Store

from conftest import NOW, CliRun
from live import RunningService, publish, until
from small_disk import needs_root, resize, small_disk

Ingest = Callable[..., IngestReport]
Build = Callable[..., BuildReport]

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
from newsdrop.service.watch import finished_by_rename
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


# --- the head feeds change together ----------------------------------------------------------

HEAD_FEEDS = ("atom.xml", "rss.xml", "feed.json")


def head_titles(read: Callable[[str], bytes]) -> dict[str, list[str]]:
    """The entry titles of each head feed, as a feed reader gets them."""
    found = {}
    for name in HEAD_FEEDS:
        body = read(name)
        if name.endswith(".json"):
            found[name] = [item["title"] for item in json.loads(body)["items"]]
        else:
            parsed = feedparser.parse(body)
            assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
            found[name] = [entry.title for entry in parsed.entries]
    return found


def test_a_head_feed_that_cannot_be_written_leaves_all_three_as_they_were(
    home: Path, do_ingest: Ingest, do_build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = home / "feeds"
    publish(home / "seeds", "a.md", "---\ntitle: First\n---\nText.\n")
    do_ingest()
    do_build()
    before = {name: (feeds / name).read_bytes() for name in HEAD_FEEDS}
    publish(home / "seeds", "b.md", "---\ntitle: Second\n---\nText.\n")
    do_ingest(NOW + timedelta(minutes=1))
    # A real fault for one file only: its temporary's name is taken by a folder (the
    # names, unique to each write, made known here).
    from newsdrop import files as files_module

    monkeypatch.setattr(files_module, "_TEMPORARIES", itertools.repeat(0))
    blocker = feeds / f".rss.xml.{os.getpid()}-0.tmp"
    blocker.mkdir()
    with pytest.raises(BuildError, match=r"cannot write .*rss\.xml"):
        do_build(NOW + timedelta(minutes=1))
    assert {name: (feeds / name).read_bytes() for name in HEAD_FEEDS} == before
    assert not [p.name for p in feeds.iterdir() if p.name.endswith(".tmp") and p != blocker]
    blocker.rmdir()
    do_build(NOW + timedelta(minutes=2))
    assert head_titles(lambda name: (feeds / name).read_bytes()) == {
        name: ["Second", "First"] for name in HEAD_FEEDS
    }


def test_the_cache_switches_the_head_feeds_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in HEAD_FEEDS:
        (tmp_path / name).write_bytes(f"old {name}".encode())
    cache = FileCache(tmp_path)
    cache.refresh()
    old = {name: cache.files[name].body for name in HEAD_FEEDS}
    for name in HEAD_FEEDS:
        (tmp_path / name).write_bytes(f"new {name}".encode())
    seen = []
    real = files_module.read_representation

    def reading(root: Path, name: str) -> Representation | None:
        # What a request answered meanwhile would get (the event loop reads cache.files).
        seen.append({n: cache.files[n].body for n in HEAD_FEEDS})
        return real(root, name)

    monkeypatch.setattr(files_module, "read_representation", reading)
    assert cache.refresh(list(HEAD_FEEDS)) == sorted(HEAD_FEEDS)
    assert len(seen) == 3 and all(view == old for view in seen)
    assert {name: cache.files[name].body for name in HEAD_FEEDS} == {
        name: f"new {name}".encode() for name in HEAD_FEEDS
    }


def test_a_head_feed_renamed_while_the_cache_read_another_is_read_on_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos run once served new Atom and RSS head feeds beside the old JSON one for a
    poll: a build renamed feed.json after the refresh had passed it as unchanged."""
    for name in HEAD_FEEDS:
        (tmp_path / name).write_bytes(f"old {name}".encode())
    cache = FileCache(tmp_path)
    cache.refresh()
    (tmp_path / "rss.xml").write_bytes(b"new rss.xml")  # a build's first rename
    real = files_module.read_representation

    def reading(root: Path, name: str) -> Representation | None:
        if name == "rss.xml":  # the build renames the others meanwhile: atom.xml and
            for other in ("atom.xml", "feed.json"):  # feed.json were passed as unchanged
                (tmp_path / other).write_bytes(f"new {other}!".encode())
        return real(root, name)

    monkeypatch.setattr(files_module, "read_representation", reading)
    assert cache.refresh() == sorted(HEAD_FEEDS)
    assert {name: cache.files[name].body[:3] for name in HEAD_FEEDS} == dict.fromkeys(
        HEAD_FEEDS, b"new"
    )


def stable_titles(read: Callable[[str], bytes]) -> dict[str, list[str]] | None:
    """The head feeds' titles, from two reads that agree (None: they moved meanwhile, as
    they may between two files; only a sample taken while nothing moved says anything)."""
    first = {name: read(name) for name in HEAD_FEEDS}
    if {name: read(name) for name in HEAD_FEEDS} != first:
        return None
    return head_titles(first.__getitem__)


@needs_root
def test_a_full_feeds_disk_keeps_the_head_feeds_together_and_the_build_is_retried(
    home: Path,
) -> None:
    feeds = home / "feeds"
    disagreements: list[tuple[str, dict[str, list[str]]]] = []
    samples = {"disk": 0, "http": 0}
    stop = threading.Event()

    def watch(service: RunningService) -> None:
        def over_http(name: str) -> bytes:
            return client.get(f"/{name}").content

        def on_disk(name: str) -> bytes:
            return (feeds / name).read_bytes()

        with httpx.Client(base_url=service.base, timeout=10) as client:
            while not stop.is_set():
                for where, read in (("http", over_http), ("disk", on_disk)):
                    titles = stable_titles(read)
                    if titles is None:
                        continue
                    samples[where] += 1
                    if len({tuple(t) for t in titles.values()}) != 1:
                        disagreements.append((where, titles))
                time.sleep(0.02)

    with small_disk(feeds, "400k"):
        service = RunningService(home).start()
        watcher = threading.Thread(target=watch, args=(service,), daemon=True)
        try:
            publish(home / "seeds", "small.md", "---\ntitle: Before the disk filled\n---\nOk.\n")
            until(lambda: (feeds / "feed.json").exists(), timeout=10, what="the first build")
            watcher.start()
            for n in range(8):  # their pages and feeds do not fit in 400 KB
                body = f"Long story {n}. " * 6000
                publish(home / "seeds", f"big-{n}.md", f"---\ntitle: Big {n}\n---\n{body}\n")
            until(
                lambda: service.http.get("/healthz").status_code == 503,
                timeout=20,
                what="the failed build to show in /healthz",
            )
            assert "No space left on device" in service.http.get("/healthz").json()["build"]
            time.sleep(1)  # a retry or two fails too, and the feeds stay as they were
            resize(feeds, "20m")
            # Nothing new arrives: the service's own retry must publish them.
            until(
                lambda: service.http.get("/healthz").status_code == 200,
                timeout=40,
                what="a retried build once space is back",
            )
            served = head_titles(lambda name: service.http.get(f"/{name}").content)
            assert {f"Big {n}" for n in range(8)} <= set(served["atom.xml"])
            time.sleep(0.5)
        finally:
            stop.set()
            if watcher.is_alive():
                watcher.join(timeout=15)
            service.close()
    assert samples["disk"] > 20 and samples["http"] > 20, samples
    assert not disagreements, disagreements[:3]
    assert "trying again in" in service.logs()


def test_a_flood_built_in_worker_processes_gives_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An incremental build of many new entries renders in worker processes (as a full
    build does): the same files as rendered in this process."""
    from newsdrop.publish import build as build_module

    def instance(name: str) -> Path:
        home = tmp_path / name
        assert CliRunner().invoke(cli, ["init", str(home)]).exit_code == 0
        return home

    def build_twice(home: Path) -> dict[str, bytes]:
        settings = load_settings(home, environ={"NEWSDROP_FEEDS__MAX_ENTRIES": "3"})
        store = Store.open(settings.store_url)
        try:
            for batch, count in ((0, 4), (1, 11)):  # a first build, then a flood
                for n in range(count):
                    publish(
                        home / "seeds",
                        f"b{batch}-{n:02d}.md",
                        f"---\ntitle: Story {batch}.{n}\ntags: [a, b]\n"
                        f"date: 2026-01-{n + 1:02d}T00:00:00Z\n---\nText {n}.\n",
                    )
                ingest(settings, store, now=NOW + timedelta(minutes=batch))
                build(settings, store, now=NOW + timedelta(minutes=batch))
        finally:
            store.close()
        feeds = home / "feeds"
        return {str(p.relative_to(feeds)): p.read_bytes() for p in feeds.rglob("*") if p.is_file()}

    inline = build_twice(instance("inline"))
    monkeypatch.setattr(build_module, "PARALLEL_FROM", 5)  # the first build stays inline
    assert build_twice(instance("workers")) == inline
    assert any(name.startswith("archive/") for name in inline)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="pages are rendered ahead with 2+ cores")
def test_pages_rendered_while_a_flood_is_ingested_are_the_pages_a_build_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service renders the pages of each batch an ingest commits while it goes on
    (render_ahead.py). The build after it gives the same files as one without that; a page
    never appears before its entry is due; an entry changed after its page was rendered
    ahead, or a template changed meanwhile, is rendered again."""
    from newsdrop.ingest import run as ingest_module
    from newsdrop.publish import build as build_module
    from newsdrop.publish import render_ahead
    from newsdrop.publish.render_ahead import RenderAhead

    monkeypatch.setattr(render_ahead, "PARALLEL_FROM", 5)
    monkeypatch.setattr(build_module, "PARALLEL_FROM", 5)
    monkeypatch.setattr(ingest_module, "BATCH", 4)  # several batches, each rendered ahead

    def instance(name: str) -> Path:
        home = tmp_path / name
        assert CliRunner().invoke(cli, ["init", str(home)]).exit_code == 0
        for n in range(13):
            publish(
                home / "seeds",
                f"s{n:02d}.md",
                f"---\ntitle: Story {n}\ntags: [a]\ndate: 2026-01-{n + 1:02d}T00:00:00Z\n---\n"
                f"Text {n}.\n",
            )
        publish(home / "seeds", "later.md", "---\ntitle: Later\ndate: 2030-01-01\n---\nSoon.\n")
        return home

    def files(home: Path) -> dict[str, bytes]:
        feeds = home / "feeds"
        return {str(p.relative_to(feeds)): p.read_bytes() for p in feeds.rglob("*") if p.is_file()}

    def flood(home: Path, *, between: Callable[[Path], None] | None = None) -> None:
        settings = load_settings(home, environ={"NEWSDROP_FEEDS__MAX_ENTRIES": "3"})
        store = Store.open(settings.store_url)
        ahead = RenderAhead(settings, now=NOW)
        try:
            ingest(settings, store, now=NOW, committed=ahead.committed)
            written, _ = ahead.wait()
            assert len(written) == 13 and "entries/later.html" not in written, written
            assert all((home / "feeds" / name).is_file() for name in written)
            if between is not None:
                between(home)
            settings = load_settings(home, environ={"NEWSDROP_FEEDS__MAX_ENTRIES": "3"})
            report = build(settings, store, now=NOW, ahead=ahead)
            assert set(written) <= set(report.written)  # its report counts them
        finally:
            ahead.close()
            store.close()

    def plain(home: Path) -> None:
        settings = load_settings(home, environ={"NEWSDROP_FEEDS__MAX_ENTRIES": "3"})
        store = Store.open(settings.store_url)
        try:
            ingest(settings, store, now=NOW)
            build(settings, store, now=NOW)
        finally:
            store.close()

    reference = instance("reference")
    plain(reference)
    ahead = instance("ahead")
    flood(ahead)
    assert files(ahead) == files(reference)
    assert "entries/later.html" not in files(ahead)

    def edit(home: Path) -> None:  # a cron ingest between the two, say
        publish(home / "seeds", "s03.md", "---\ntitle: Story 3\ntags: [a]\n---\nEdited.\n")
        settings = load_settings(home)
        store = Store.open(settings.store_url)
        try:
            ingest(settings, store, now=NOW)
        finally:
            store.close()

    edited = instance("edited")
    flood(edited, between=edit)
    page = (edited / "feeds" / "entries" / "story-3.html").read_text(encoding="utf-8")
    assert "Edited." in page and "Text 3." not in page

    def restyle(home: Path) -> None:
        (home / "digest").mkdir(exist_ok=True)
        source = Path(templates_module.__file__).parent / "templates" / "entry.html.j2"
        custom = source.read_text(encoding="utf-8").replace("<article", "<article data-restyled")
        (home / "digest" / "entry.html.j2").write_text(custom, encoding="utf-8")

    restyled = instance("restyled")
    flood(restyled, between=restyle)
    pages = [p for p in (restyled / "feeds" / "entries").iterdir()]
    assert len(pages) == 13
    assert all("data-restyled" in p.read_text(encoding="utf-8") for p in pages)


# --- the pipeline's worker process dies -----------------------------------------------------


def pipeline_process(service: RunningService) -> int:
    """The service's pipeline worker: its spawned child that is not multiprocessing's
    resource tracker."""
    assert service.process is not None
    children = Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children")
    for pid in children.read_text().split():
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            return int(pid)
    raise AssertionError(f"no pipeline process among {children.read_text()!r}")


def test_a_killed_pipeline_process_is_replaced_and_the_next_document_published(
    home: Path,
) -> None:
    """Killed (the kernel's OOM killer, an operator's kill -9), the process that ingests
    and builds is started again, the failed run is retried, and the service goes on."""
    service = RunningService(home).start()
    try:
        publish(home / "seeds", "first.md", "---\ntitle: First\n---\nBefore.\n")
        entries = home / "feeds" / "entries"
        until(lambda: (entries / "first.html").is_file(), timeout=30, what="the first page")
        killed = pipeline_process(service)
        os.kill(killed, signal.SIGKILL)
        publish(home / "seeds", "second.md", "---\ntitle: Second\n---\nAfter.\n")
        until(lambda: (entries / "second.html").is_file(), timeout=60, what="the second page")
        assert "pipeline process ended unexpectedly" in service.logs()
        assert '"traceback"' not in service.logs()  # said as what it is, not as a bug
        assert pipeline_process(service) != killed
        until(lambda: service.http.get("/healthz").status_code == 200, timeout=20, what="healthy")
        assert service.stop() == 0  # and stops as it should
    finally:
        service.close()
