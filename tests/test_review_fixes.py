"""Regression tests for what the second review found (each names the finding it covers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsdrop.config import load_settings
from newsdrop.errors import UsageError
from newsdrop.ingest.normalize import normalize
from newsdrop.ingest.run import IngestReport, ingest
from newsdrop.mail.deliver import send_digests
from newsdrop.mail.schedule import due_periods
from newsdrop.model import Hints, SubscriberState
from newsdrop.publish.build import BuildReport, build
from newsdrop.store import Store
from newsdrop.subscribers import new_subscriber, parse_csv

from conftest import NOW, CliRun

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def subscribe(store: Store, email: str, when: datetime) -> None:
    store.add_subscribers(
        [new_subscriber(email, timezone="UTC")], now=when, state=SubscriberState.ACTIVE
    )


def publish(home: Path, store: Store, name: str, title: str, when: datetime) -> None:
    (home / "seeds" / name).write_text(f"---\ntitle: {title}\n---\nBody.\n")
    ingest(load_settings(home), store, now=when)


def test_1_non_ascii_local_parts_are_refused_when_added() -> None:
    with pytest.raises(UsageError, match="not a valid email address"):
        new_subscriber("josé@exämple.org", timezone="UTC")
    assert new_subscriber("jose@exämple.org", timezone="UTC").email == "jose@exämple.org"


def test_2_a_digest_that_cannot_be_made_pauses_sending_and_none_is_stuck(
    home: Path, store: Store, run: CliRun
) -> None:
    """A template is the same for every digest: its error pauses sending, the digests
    wait queued (neither failed nor stuck in sending) and go out once it is fixed."""
    bad = {"NEWSDROP_DIGEST__SUBJECT": "{{ nope }}"}
    result = run("check", env=bad)
    assert result.exit_code == 2 and "[digest] subject cannot be rendered" in result.output
    subscribe(store, "ann@example.org", T)
    subscribe(store, "bob@example.org", T)
    publish(home, store, "a.md", "Story", T + timedelta(hours=1))
    report = send_digests(load_settings(home, environ=bad), store, now=T + timedelta(days=1))
    assert report.failed == [] and "'nope' is undefined" in report.paused
    assert {state for _, state, _ in store.delivery_summary()} == {"queued"}  # none stuck
    fixed = send_digests(load_settings(home), store, now=T + timedelta(days=1, minutes=1))
    assert len(fixed.sent) == 2


def test_3_overlapping_runs_record_one_period_each(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(home, store, "a.md", "Story", T + timedelta(hours=1))
    first = due_periods(settings, store, now=T + timedelta(days=1))
    second = due_periods(settings, store, now=T + timedelta(days=1, seconds=1), close_now=True)
    opened = [store.open_period(p, now=T + timedelta(days=1)) for p in first + second]
    assert sum(x is not None for x in opened) == 1


def test_4_an_entry_committed_late_is_in_the_next_digest(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(home, store, "a.md", "Early story", T + timedelta(hours=1))
    send_digests(settings, store, now=T + timedelta(days=1))
    # A long ingest that started before that send commits its entry only now.
    publish(home, store, "b.md", "Late story", T + timedelta(hours=23))
    report = send_digests(settings, store, now=T + timedelta(days=2))
    assert len(report.sent) == 1
    (delivery,) = [p for p in report.opened]
    assert (
        len(delivery.entry_ids) == 1
        and store.entries_by_id(delivery.entry_ids)[0].entry.title == "Late story"
    )


def test_5_changing_max_entries_rewrites_the_archive(home: Path, store: Store) -> None:
    for number in range(9):
        (home / "seeds" / f"{number}.md").write_text(f"---\ntitle: Story {number}\n---\nBody.\n")
        ingest(load_settings(home), store, now=NOW + timedelta(minutes=number))
    for size in ("3", "2", "3"):
        settings = load_settings(home, environ={"NEWSDROP_FEEDS__MAX_ENTRIES": size})
        build(settings, store, now=NOW + timedelta(hours=1))
    import feedparser

    titles: list[str] = []
    for path in [home / "feeds" / "atom.xml", *sorted((home / "feeds" / "archive").glob("*.xml"))]:
        titles += [e.title for e in feedparser.parse(path.read_bytes()).entries]
    assert sorted(titles) == sorted(f"Story {n}" for n in range(9))
    assert not (home / "feeds" / "archive" / "0003.atom.xml").exists()  # 9 entries of 3: 2 pages


def test_6_an_image_alone_in_a_markdown_paragraph_stays(hints: Hints) -> None:
    entry = normalize(b"# Pictures\n\nText first.\n\n![pic](pic.png)\n", "p.md", hints)
    assert '<img src="pic.png"' in entry.content_html and entry.media == ("pic.png",)


def test_7_8_media_added_later_is_published_and_names_may_be_encoded(
    home: Path, store: Store, do_ingest: Callable[..., IngestReport]
) -> None:
    (home / "seeds" / "b.md").write_text("# Photos\n\nSee ![a](<my pic.png>) and ![b](фото.png).\n")
    (home / "seeds" / "my pic.png").write_bytes(b"one")
    report = do_ingest()
    assert len(report.problems) == 1 and "фото.png" in report.problems[0].reason
    assert "my pic.png" not in report.problems[0].reason
    settings = load_settings(home)
    build(settings, store, now=NOW)
    assert (home / "feeds" / "media" / "my pic.png").read_bytes() == b"one"
    (home / "seeds" / "фото.png").write_bytes(b"two")
    assert do_ingest(NOW + timedelta(minutes=1)).problems == []
    assert store.problems() == []
    result: BuildReport = build(settings, store, now=NOW + timedelta(minutes=1))
    assert "media/фото.png" in result.written
    page = (home / "feeds" / "entries" / "photos.html").read_text()
    assert "media/%D1%84%D0%BE%D1%82%D0%BE.png" in page and "media/my%20pic.png" in page


def test_9_a_withdrawn_entry_is_not_mailed(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(home, store, "a.md", "Kept", T + timedelta(hours=1))
    publish(home, store, "b.md", "Soon retracted", T + timedelta(hours=2))
    periods = due_periods(settings, store, now=T + timedelta(days=1))
    for period in periods:
        store.open_period(period, now=T + timedelta(days=1))
    (home / "seeds" / "b.md").unlink()
    ingest(settings, store, now=T + timedelta(days=1, minutes=1))
    send_digests(settings, store, now=T + timedelta(days=1, minutes=2))
    import mailbox

    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    from email import message_from_bytes, policy

    (key,) = list(box.iterkeys())
    parsed = message_from_bytes(box.get_bytes(key), policy=policy.default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Kept" in text and "Soon retracted" not in text


def test_10_a_reactivated_subscriber_gets_no_backlog(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(home, store, "a.md", "Before", T + timedelta(hours=1))
    send_digests(settings, store, now=T + timedelta(days=1))
    ann = store.subscriber("ann@example.org")
    assert ann is not None
    store.set_subscriber_state(
        ann.id, SubscriberState.UNSUBSCRIBED, now=T + timedelta(days=1, hours=1)
    )
    publish(home, store, "b.md", "While away", T + timedelta(days=1, hours=2))
    store.set_subscriber_state(ann.id, SubscriberState.ACTIVE, now=T + timedelta(days=1, hours=3))
    publish(home, store, "c.md", "After return", T + timedelta(days=1, hours=4))
    report = send_digests(settings, store, now=T + timedelta(days=2))
    titles = [s.entry.title for s in store.entries_by_id(report.opened[0].entry_ids)]
    assert titles == ["After return"]


def test_13_time_zones_that_are_not_zones_are_refused(run: CliRun) -> None:
    for zone in ("America", "localtime"):
        result = run("subscribers", "add", "a@example.org", "--tz", zone)
        assert result.exit_code == 2 and "is not an IANA zone" in result.output
    good, bad = parse_csv("a@example.org,A,America\nb@example.org,B,UTC\n", default_timezone="UTC")
    assert [s.email for s in good] == ["b@example.org"] and bad[0].startswith("line 1:")
