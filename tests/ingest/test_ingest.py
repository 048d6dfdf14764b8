"""ingest on a temporary instance: the file system is real, nothing is mocked."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from newsdrop.ingest import run as ingest_module
from newsdrop.ingest.run import IngestReport
from newsdrop.ingest.scan import scan
from newsdrop.model import Problem
from newsdrop.store import Store

from conftest import NOW

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

Ingest = Callable[..., IngestReport]
STORY = b"Markets rally on rate hopes\n\nShares rose on Monday as traders bet on cuts.\n"


def live(store: Store) -> dict[str, str]:
    return {e.source: e.entry.title for e in store.entries()}


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_add_then_rescan_changes_nothing(home: Path, do_ingest: Ingest, store: Store) -> None:
    (home / "seeds" / "a.txt").write_bytes(STORY)
    (home / "seeds" / "sub").mkdir()
    (home / "seeds" / "sub" / "b.md").write_bytes(b"# Second story\n\nBody.\n")
    first = do_ingest()
    assert sorted(first.added) == ["a.txt", "sub/b.md"]
    second = do_ingest(NOW + timedelta(minutes=5))
    assert (second.added, second.updated, second.withdrawn, second.unchanged) == ([], [], [], 2)
    assert live(store) == {"a.txt": "Markets rally on rate hopes", "sub/b.md": "Second story"}


def test_edit_keeps_id_and_bumps_updated(home: Path, do_ingest: Ingest, store: Store) -> None:
    path = home / "seeds" / "a.txt"
    path.write_bytes(STORY)
    do_ingest()
    before = store.entries()[0]
    path.write_bytes(STORY.replace(b"Monday", b"Tuesday"))
    later = NOW + timedelta(hours=1)
    assert do_ingest(later).updated == ["a.txt"]
    after = store.entries()[0]
    assert after.entry.id == before.entry.id and after.entry.slug == before.entry.slug
    assert after.entry.updated == later and after.entry.published == before.entry.published
    assert after.first_seen == before.first_seen
    assert "Tuesday" in after.entry.content_text


def test_touch_without_change_keeps_updated(home: Path, do_ingest: Ingest, store: Store) -> None:
    path = home / "seeds" / "a.txt"
    path.write_bytes(STORY)
    do_ingest()
    os.utime(path, ns=(1, 1))
    report = do_ingest(NOW + timedelta(hours=1))
    assert report.updated == [] and report.unchanged == 1
    assert store.entries()[0].entry.updated == NOW


def test_rename_keeps_the_entry(home: Path, do_ingest: Ingest, store: Store) -> None:
    (home / "seeds" / "a.txt").write_bytes(STORY)
    do_ingest()
    entry_id = store.entries()[0].entry.id
    (home / "seeds" / "a.txt").rename(home / "seeds" / "renamed.txt")
    report = do_ingest(NOW + timedelta(minutes=1))
    assert report.renamed == [("a.txt", "renamed.txt")]
    assert report.withdrawn == [] and report.added == []
    assert [(e.entry.id, e.source) for e in store.entries()] == [(entry_id, "renamed.txt")]


def test_two_files_with_the_same_content_are_two_entries(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    (home / "seeds" / "a.txt").write_bytes(STORY)
    (home / "seeds" / "b.txt").write_bytes(STORY)
    do_ingest()
    ids = {e.entry.id for e in store.entries()}
    slugs = {e.entry.slug for e in store.entries()}
    assert len(ids) == 2 and slugs == {
        "markets-rally-on-rate-hopes",
        "markets-rally-on-rate-hopes-2",
    }


def test_delete_withdraws_and_keeps_the_entry(home: Path, do_ingest: Ingest, store: Store) -> None:
    (home / "seeds" / "a.txt").write_bytes(STORY)
    do_ingest()
    (home / "seeds" / "a.txt").unlink()
    assert do_ingest(NOW + timedelta(minutes=1)).withdrawn == ["a.txt"]
    assert store.entries() == []
    kept = store.entries(include_withdrawn=True)
    assert len(kept) == 1 and kept[0].withdrawn


def test_deleted_file_that_comes_back_is_the_same_entry(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    path = home / "seeds" / "a.txt"
    path.write_bytes(STORY)
    do_ingest()
    entry_id = store.entries()[0].entry.id
    path.unlink()
    do_ingest(NOW + timedelta(minutes=1))
    path.write_bytes(STORY)
    do_ingest(NOW + timedelta(minutes=2))
    assert [e.entry.id for e in store.entries()] == [entry_id]


def test_bad_files_are_problems_and_the_run_goes_on(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    seeds = home / "seeds"
    (seeds / "good.txt").write_bytes(STORY)
    (seeds / "huge.txt").write_bytes(b"word " * (6 * 1024 * 1024 // 5 + 1))  # 6 MiB
    (seeds / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (seeds / "invalid.txt").write_bytes(bytes(range(128, 256)) * 4)  # no encoding fits
    (seeds / "latin1.txt").write_bytes(
        "Café crème\n\nUn texte écrit en Latin-1.\n".encode("latin-1")
    )
    (seeds / "passwd.txt").symlink_to("/etc/passwd")
    report = do_ingest()
    assert sorted(report.added) == ["good.txt", "latin1.txt"]  # invalid UTF-8, but decidable
    reasons = {p.source: p.reason for p in report.problems}
    assert set(reasons) == {"huge.txt", "binary.txt", "invalid.txt"}
    assert "max_bytes" in reasons["huge.txt"]
    assert "binary" in reasons["binary.txt"] or "encoding" in reasons["binary.txt"]
    assert "invalid.txt" in reasons["invalid.txt"]
    assert (
        "passwd.txt",
        "a symbolic link to a file outside seeds/; newsdrop does not follow it",
    ) in report.ignored
    assert {p.source for p in store.problems()} == set(reasons)
    assert live(store) == {"good.txt": "Markets rally on rate hopes", "latin1.txt": "Café crème"}


def test_a_problem_is_retried_when_the_file_changes(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    path = home / "seeds" / "a.txt"
    path.write_bytes(bytes(range(256)) * 8)
    assert len(do_ingest().problems) == 1
    again = do_ingest(NOW + timedelta(minutes=1))  # retried (a limit may have moved): same answer
    assert [p.source for p in again.problems] == ["a.txt"] and again.added == []
    assert len(store.problems()) == 1
    path.write_bytes(STORY)
    assert do_ingest(NOW + timedelta(minutes=2)).added == ["a.txt"]
    assert store.problems() == []


def test_problem_of_a_deleted_file_is_cleared(home: Path, do_ingest: Ingest, store: Store) -> None:
    path = home / "seeds" / "a.txt"
    path.write_bytes(bytes(range(256)) * 8)
    do_ingest()
    path.unlink()
    report = do_ingest(NOW + timedelta(minutes=1))
    assert report.withdrawn == [] and store.problems() == []


def test_file_deleted_between_listing_and_reading(
    home: Path, do_ingest: Ingest, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "seeds" / "a.txt"
    path.write_bytes(STORY)
    real_scan = ingest_module.scan

    def scan_then_delete(root: Path, **kwargs: object) -> object:
        listed = real_scan(root, **kwargs)  # type: ignore[arg-type]
        path.unlink()  # the race: gone after the listing, before the read
        return listed

    monkeypatch.setattr(ingest_module, "scan", scan_then_delete)
    report = do_ingest()
    assert [p.source for p in report.problems] == ["a.txt"]
    assert "vanished" in report.problems[0].reason
    monkeypatch.undo()
    do_ingest(NOW + timedelta(minutes=1))
    assert store.problems() == []  # the file is gone for good: nothing left to act on


def test_skips_hidden_partial_and_special_files(home: Path) -> None:
    seeds = home / "seeds"
    for name in (".hidden.txt", "draft.txt~", "x.txt.swp", "y.txt.part", "z.tmp", "w.crdownload"):
        (seeds / name).write_bytes(STORY)
    (seeds / ".git").mkdir()
    (seeds / ".git" / "inside.txt").write_bytes(STORY)
    os.mkfifo(seeds / "pipe.txt")
    (seeds / "photo.jpg").write_bytes(b"\xff\xd8")
    (seeds / "real.txt").write_bytes(STORY)
    (seeds / "link.txt").symlink_to(seeds / "real.txt")  # inside seeds/: followed
    ignored: list[tuple[str, str]] = []
    assert sorted(scan(seeds, ignored=ignored)) == ["link.txt", "real.txt"]
    assert dict(ignored)["pipe.txt"].startswith("not a regular file")
    assert dict(ignored)["photo.jpg"] == "not a .txt, .md or .html document"


def test_ingest_never_modifies_seeds(home: Path, do_ingest: Ingest) -> None:
    seeds = home / "seeds"
    (seeds / "a.txt").write_bytes(STORY)
    (seeds / "b.md").write_bytes(b"---\ntitle: T\n---\nBody\n")
    (seeds / "c.txt").write_bytes(bytes(range(256)))
    before = fingerprint(seeds)
    do_ingest()
    do_ingest(NOW + timedelta(minutes=1))
    assert fingerprint(seeds) == before


def test_future_dated_document_is_held(home: Path, do_ingest: Ingest, store: Store) -> None:
    (home / "seeds" / "later.md").write_bytes(
        b"---\ntitle: Later\ndate: 2026-06-01T00:00:00Z\n---\nSoon.\n"
    )
    do_ingest()
    assert store.entries(now=NOW) == []
    assert [e.entry.title for e in store.entries(now=NOW + timedelta(days=100))] == ["Later"]
    assert store.counts(now=NOW)["scheduled"] == 1


def test_draft_is_not_published_and_withdraws_a_published_entry(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    path = home / "seeds" / "post.md"
    path.write_bytes(b"# Post\n\nBody.\n")
    do_ingest()
    assert len(store.entries()) == 1
    path.write_bytes(b"---\ndraft: true\n---\n# Post\n\nBody.\n")
    report = do_ingest(NOW + timedelta(minutes=1))
    assert report.withdrawn == ["post.md"]
    assert store.entries() == []


def test_boilerplate_learning_needs_three_different_bodies(home: Path, store: Store) -> None:
    from newsdrop.config import load_settings
    from newsdrop.ingest.run import ingest

    tail = "Follow us on every social network for more stories."
    seeds = home / "seeds"
    settings = load_settings(home, environ={"NEWSDROP_NORMALIZE__LEARN_BOILERPLATE": "true"})
    for number in range(3):
        (seeds / f"{number}.txt").write_text(f"Story {number}\n\nBody number {number}.\n\n{tail}\n")
    ingest(settings, store, now=NOW)
    assert all(tail in e.entry.content_text for e in store.entries())  # already published: kept
    (seeds / "new.txt").write_text(f"Story new\n\nA fresh body.\n\n{tail}\n")
    ingest(settings, store, now=NOW + timedelta(minutes=1))
    fresh = next(e for e in store.entries() if e.source == "new.txt")
    assert tail not in fresh.entry.content_text and "A fresh body." in fresh.entry.content_text


def test_identical_bodies_do_not_teach_boilerplate(home: Path, store: Store) -> None:
    from newsdrop.config import load_settings
    from newsdrop.ingest.run import ingest

    seeds = home / "seeds"
    settings = load_settings(home, environ={"NEWSDROP_NORMALIZE__LEARN_BOILERPLATE": "true"})
    for number in range(4):
        (seeds / f"{number}.txt").write_bytes(STORY)  # byte-identical copies, as real corpora have
    ingest(settings, store, now=NOW)
    assert store.learned_boilerplate() == frozenset()


def test_missing_seeds_folder_withdraws_nothing(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    from newsdrop.errors import ConfigError

    (home / "seeds" / "a.txt").write_bytes(STORY)
    do_ingest()
    (home / "seeds").rename(home / "seeds.off")
    with pytest.raises(ConfigError, match="does not exist"):
        do_ingest(NOW + timedelta(minutes=1))
    assert len(store.entries()) == 1


def test_raising_max_bytes_retries_a_too_big_file(home: Path, store: Store) -> None:
    from newsdrop.config import load_settings
    from newsdrop.ingest.run import ingest

    (home / "seeds" / "big.txt").write_bytes(b"Big story\n\n" + b"word " * 300)
    small = load_settings(home, environ={"NEWSDROP_NORMALIZE__MAX_BYTES": "1000"})
    assert [p.source for p in ingest(small, store, now=NOW).problems] == ["big.txt"]
    assert [p.source for p in ingest(small, store, now=NOW).problems] == ["big.txt"]
    assert ingest(load_settings(home, environ={}), store, now=NOW).added == ["big.txt"]
    assert store.problems() == []


def test_one_document_that_crashes_normalize_is_a_problem(
    home: Path, do_ingest: Ingest, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsdrop.ingest import sandbox

    real = sandbox.normalize_many

    def fragile(jobs: Any, **kwargs: Any) -> Any:  # as if the worker hit a bug on bad.txt
        for tag, outcome in real(jobs, **kwargs):
            if tag[0].source == "bad.txt":
                outcome = sandbox.WorkerFault("RuntimeError", "boom", "Traceback ...")
            yield tag, outcome

    monkeypatch.setattr(ingest_module.sandbox, "normalize_many", fragile)
    (home / "seeds" / "bad.txt").write_bytes(STORY)
    (home / "seeds" / "good.txt").write_bytes(STORY.replace(b"Markets", b"Bonds"))
    report = do_ingest()
    assert report.added == ["good.txt"]
    assert "RuntimeError: boom" in report.problems[0].reason


def test_front_matter_id_collisions_are_problems(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    for name in ("a.md", "b.md"):
        (home / "seeds" / name).write_text("---\nid: urn:uuid:same\n---\nBody of " + name + "\n")
    report = do_ingest()
    assert report.added == ["a.md"] and [p.source for p in report.problems] == ["b.md"]
    assert "already the id of another entry" in report.problems[0].reason
    again = do_ingest(NOW + timedelta(minutes=1))
    assert again.added == [] and again.updated == []  # idempotent
    (home / "seeds" / "c.md").write_text("# C\n\nBody.\n")
    do_ingest(NOW + timedelta(minutes=2))
    (home / "seeds" / "c.md").write_text("---\nid: urn:uuid:late\n---\n# C\n\nBody.\n")
    do_ingest(NOW + timedelta(minutes=3))  # an id added later does not replace the minted one
    c = next(e for e in store.entries() if e.source == "c.md")
    assert c.entry.id.startswith("tag:")


def test_a_file_renamed_onto_a_withdrawn_path_keeps_its_own_id(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    seeds = home / "seeds"
    (seeds / "p.txt").write_bytes(STORY)
    (seeds / "y.txt").write_bytes(b"Other story\n\nSomething else entirely.\n")
    do_ingest()
    ids = {e.source: e.entry.id for e in store.entries()}
    (seeds / "p.txt").unlink()
    do_ingest(NOW + timedelta(minutes=1))
    (seeds / "y.txt").rename(seeds / "p.txt")
    report = do_ingest(NOW + timedelta(minutes=2))
    assert report.renamed == [("y.txt", "p.txt")]
    assert [(e.source, e.entry.id) for e in store.entries()] == [("p.txt", ids["y.txt"])]


def test_editing_one_file_does_not_teach_boilerplate(home: Path, store: Store) -> None:
    from newsdrop.config import load_settings
    from newsdrop.ingest.run import ingest

    settings = load_settings(home, environ={"NEWSDROP_NORMALIZE__LEARN_BOILERPLATE": "true"})
    path = home / "seeds" / "note.txt"
    for version in range(4):
        path.write_text(f"Note\n\nVersion {version} of the body.\n\nThe same closing line.\n")
        os.utime(path, ns=(version + 10, version + 10))
        ingest(settings, store, now=NOW + timedelta(minutes=version))
    assert "The same closing line." in store.entries()[0].entry.content_text


def test_new_entry_updated_is_its_published_date(
    home: Path, do_ingest: Ingest, store: Store
) -> None:
    (home / "seeds" / "old.md").write_text("---\ndate: 2024-01-02T03:04:05Z\n---\nOld news.\n")
    do_ingest()
    entry = store.entries()[0].entry
    assert entry.updated == entry.published


def test_the_summary_line_counts_in_words_that_agree() -> None:
    one = IngestReport(problems=[Problem("a.txt", "a.txt: empty", datetime.now(UTC))], unchanged=3)
    assert one.summary() == (
        "ingest: 0 added, 0 updated, 0 renamed, 3 unchanged, 0 withdrawn, 1 problem"
    )
    assert IngestReport().summary().endswith("0 withdrawn, 0 problems")
