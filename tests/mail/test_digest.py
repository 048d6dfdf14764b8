"""Digest periods, the ledger and the Maildir transport, on a real store and a real Maildir."""

from __future__ import annotations

import mailbox
import re
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from newsdrop.config import DigestSettings, load_settings
from newsdrop.errors import UsageError
from newsdrop.ingest.run import ingest
from newsdrop.mail.deliver import send_digests
from newsdrop.mail.schedule import Schedule, due_periods
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.store.schema import subscribers
from newsdrop.subscribers import new_subscriber

from conftest import CliRun

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def schedule(
    zone: str, *, weekly: bool = False, monthly: bool = False, at: str = "07:00", interval: int = 0
) -> Schedule:
    return Schedule(
        ZoneInfo(zone), time.fromisoformat(at), 0 if weekly else None, monthly, interval
    )


def test_every_local_day_has_exactly_one_due_instant_across_dst() -> None:
    for zone in ("Europe/Kyiv", "America/New_York"):
        s = schedule(zone, at="02:30")  # a time the spring switch skips in New York
        dues, moment = [], datetime(2026, 3, 1, tzinfo=UTC)
        while moment < datetime(2026, 11, 30, tzinfo=UTC):
            moment = s.next_due(moment)
            dues.append(moment)
        days = [d.astimezone(ZoneInfo(zone)).date() for d in dues]
        assert days == sorted(set(days)), zone  # one per day, none twice
        assert (days[-1] - days[0]).days + 1 == len(days), zone  # and no day missing
    skipped = schedule("America/New_York", at="02:30").due_on(date(2026, 3, 8))
    assert skipped is not None and skipped.astimezone(ZoneInfo("America/New_York")).hour == 3
    repeated = schedule("America/New_York", at="01:30").due_on(date(2026, 11, 1))
    assert repeated == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # the first 01:30 (EDT) only


def test_weekly_and_interval_schedules() -> None:
    weekly = schedule("UTC", weekly=True)
    due = weekly.next_due(datetime(2026, 3, 4, tzinfo=UTC))  # a Wednesday
    assert due == datetime(2026, 3, 9, 7, 0, tzinfo=UTC) and due.weekday() == 0
    assert weekly.last_due(due + timedelta(days=6)) == due
    fast = schedule("UTC", interval=60)
    assert fast.last_due(datetime(2026, 3, 1, 0, 1, 30, tzinfo=UTC)) == datetime(
        2026, 3, 1, 0, 1, tzinfo=UTC
    )


def test_monthly_is_due_on_the_first_at_their_hour_across_dst() -> None:
    """One due instant a month, on the 1st at 08:00 Kyiv time, whether summer time (UTC+3)
    or winter time (UTC+2) holds; the switch on 29 March 2026 moves it in UTC, not in Kyiv."""
    monthly = schedule("Europe/Kyiv", monthly=True, at="08:00")
    dues, moment = [], datetime(2026, 1, 15, tzinfo=UTC)
    for _ in range(12):
        moment = monthly.next_due(moment)
        dues.append(moment)
    local = [d.astimezone(ZoneInfo("Europe/Kyiv")) for d in dues]
    assert [(t.day, t.hour, t.minute) for t in local] == [(1, 8, 0)] * 12
    assert [t.month for t in local] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1]
    assert dues[1] == datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # winter: UTC+2
    assert dues[2] == datetime(2026, 4, 1, 5, 0, tzinfo=UTC)  # summer: UTC+3
    assert monthly.last_due(dues[2] + timedelta(days=29)) == dues[2]  # within the month


@examples(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    zone=st.sampled_from(["UTC", "Europe/Kyiv", "America/New_York", "Australia/Lord_Howe"]),
    kind=st.sampled_from(["daily", "weekly", "monthly"]),
    at=st.sampled_from(["00:00", "01:30", "02:30", "07:00", "23:30"]),
)
def test_last_and_next_due_are_the_nearest_due_days_found_one_day_at_a_time(
    moment: datetime, zone: str, kind: str, at: str
) -> None:
    """The jumps straight to the right weekday or the 1st give what stepping one local day
    at a time gives, daylight-saving switches and half-hour zones included."""
    now = moment.replace(tzinfo=UTC)
    s = schedule(zone, weekly=kind == "weekly", monthly=kind == "monthly", at=at)
    today = now.astimezone(ZoneInfo(zone)).date()
    dues = [s.due_on(today + timedelta(days=d)) for d in range(-40, 40)]
    found = sorted(d for d in dues if d is not None)
    assert s.last_due(now) == max(d for d in found if d <= now)
    assert s.next_due(now) == min(d for d in found if d > now)


def test_a_subscribers_own_hour_and_weekday_decide_when_their_digest_is_due(
    home: Path, store: Store
) -> None:
    """Two subscribers in Kyiv: one at the site's hour (07:00) and weekday, one weekly on
    Friday at 18:30; a third monthly. Each period is due at its own local time."""
    settings = load_settings(home)
    people = [
        new_subscriber("site@example.org", timezone="Europe/Kyiv"),
        new_subscriber(
            "own@example.org", timezone="Europe/Kyiv", frequency="weekly", at="18:30",
            weekday="Friday",
        ),
        new_subscriber("month@example.org", timezone="Europe/Kyiv", frequency="monthly"),
    ]  # fmt: skip
    store.add_subscribers(people, now=T, state=SubscriberState.ACTIVE)
    publish(store, home, "a.md", "Story", T + timedelta(hours=1))
    later = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
    periods = {p.subscriber_id: p for p in due_periods(settings, store, now=later)}
    by_email = {s.email: s for s in store.subscribers()}
    kyiv = ZoneInfo("Europe/Kyiv")
    site = periods[by_email["site@example.org"].id].due.astimezone(kyiv)
    own = periods[by_email["own@example.org"].id].due.astimezone(kyiv)
    month = periods[by_email["month@example.org"].id].due.astimezone(kyiv)
    assert (site.date(), site.hour, site.minute) == (date(2026, 4, 2), 7, 0)
    assert (own.date(), own.hour, own.minute) == (date(2026, 3, 27), 18, 30)  # a Friday
    assert (month.date(), month.hour) == (date(2026, 4, 1), 7)
    send_digests(settings, store, now=later)
    subjects = sorted(str(m["Subject"]) for m in outbox(home))  # type: ignore[index]
    assert [s.split(" new for ")[1] for s in subjects] == [
        "March 2026",  # monthly: the month before the 1st it is due on
        "Thursday, 2 April 2026",
        "the week to 27 March 2026",
    ]


def test_a_zone_the_system_no_longer_knows_falls_back_to_the_sites_and_is_said(
    home: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A zone valid when chosen but missing from this machine's IANA database (dropped, or
    a different tzdata) must not break the digests of everyone: theirs go by the site's zone
    (UTC here), and the log says which zone and what to do."""
    settings = load_settings(home)
    lost = f"Atlantis/{home.parent.name}"  # (each is said once a process: one per test)
    subscribe(store, "ann@example.org", T, zone="Europe/Kyiv")
    subscribe(store, "old@example.org", T, zone="Europe/Kyiv")
    with store.begin() as conn:  # as a store made on a machine whose tzdata had the zone
        conn.execute(
            subscribers.update()
            .where(subscribers.c.email == "old@example.org")
            .values(timezone=lost)
        )
    publish(store, home, "a.md", "Story", T + timedelta(hours=1))
    report = send_digests(settings, store, now=T + timedelta(days=1))
    assert len(report.sent) == 2 and report.failed == []
    dues = sorted(due for due, _, _ in store.delivery_summary())
    assert dues == [  # Kyiv's 07:00 (UTC+2), and the site's 07:00 UTC for the lost zone
        datetime(2026, 3, 2, 5, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 7, 0, tzinfo=UTC),
    ]
    assert f"time zone {lost!r}" in caplog.text and "--tz ZONE" in caplog.text
    assert "old@example.org" not in caplog.text  # logs name subscribers by id


def test_instant_mails_each_new_entry_and_bunches_those_within_the_gap(
    home: Path, store: Store
) -> None:
    """`instant`: a mail as soon as an entry is published, then none for
    [digest] instant_min_minutes (15): entries published meanwhile go together in the next
    one. Nothing new, no mail (not even a skipped period). A daily subscriber beside them
    still gets one digest of everything."""
    settings = load_settings(home)
    store.add_subscribers(
        [
            new_subscriber("fast@example.org", timezone="Europe/Kyiv", frequency="instant"),
            new_subscriber("day@example.org", timezone="UTC"),
        ],
        now=T,
        state=SubscriberState.ACTIVE,
    )
    assert send_digests(settings, store, now=T + timedelta(minutes=30)).opened == []
    publish(store, home, "a.md", "Story A", T + timedelta(hours=1))
    first = send_digests(settings, store, now=T + timedelta(hours=1, minutes=1))
    assert len(first.sent) == 1
    publish(store, home, "b.md", "Story B", T + timedelta(hours=1, minutes=5))
    publish(store, home, "c.md", "Story C", T + timedelta(hours=1, minutes=10))
    within = send_digests(settings, store, now=T + timedelta(hours=1, minutes=12))
    assert within.sent == []  # 11 minutes after the last mail
    second = send_digests(settings, store, now=T + timedelta(hours=1, minutes=17))
    assert len(second.sent) == 1
    assert send_digests(settings, store, now=T + timedelta(hours=2)).sent == []  # nothing new
    daily = send_digests(settings, store, now=T + timedelta(days=1))
    assert len(daily.sent) == 1
    mails = {}
    for message in outbox(home):
        mails.setdefault(str(message["To"]), []).append(message)  # type: ignore[index]
    texts = [
        m.get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]
        for m in sorted(mails["fast@example.org"], key=lambda m: str(m["Date"]))  # type: ignore[index]
    ]
    assert len(texts) == 2 and "Story A" in texts[0] and "Story B" not in texts[0]
    assert "Story B" in texts[1] and "Story C" in texts[1] and "Story A" not in texts[1]
    subjects = [str(m["Subject"]) for m in mails["fast@example.org"]]  # type: ignore[index]
    assert any(s.endswith("Sunday, 1 March 2026, 15:01") for s in subjects), subjects  # Kyiv
    (day,) = mails["day@example.org"]
    assert all(f"Story {x}" in day.get_body(preferencelist=("plain",)).get_content() for x in "ABC")  # type: ignore[attr-defined]


def test_a_bad_hour_or_weekday_is_refused_with_what_is_valid() -> None:
    with pytest.raises(UsageError, match="on the hour or half hour"):
        new_subscriber("a@example.org", timezone="UTC", at="07:15")
    with pytest.raises(UsageError, match="must be one of monday"):
        new_subscriber("a@example.org", timezone="UTC", weekday="Fri")
    with pytest.raises(UsageError, match="'monthly'"):
        new_subscriber("a@example.org", timezone="UTC", frequency="yearly")


@pytest.fixture
def instance(home: Path, store: Store) -> tuple[Path, Store]:
    return home, store


def publish(
    store: Store, home: Path, name: str, title: str, when: datetime, tags: str = ""
) -> None:
    front = f"tags: [{tags}]\n" if tags else ""
    (home / "seeds" / name).write_text(f"---\ntitle: {title}\n{front}---\nBody of {title}.\n")
    ingest(load_settings(home), store, now=when)


def subscribe(
    store: Store, email: str, when: datetime, *, zone: str = "UTC", tags: str = ""
) -> None:
    store.add_subscribers(
        [new_subscriber(email, name="", timezone=zone, tags=tags)],
        now=when,
        state=SubscriberState.ACTIVE,
    )


def outbox(home: Path) -> list[object]:
    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    return [message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.iterkeys()]


def test_catch_up_sends_one_digest_spanning_the_missed_days(instance: tuple[Path, Store]) -> None:
    home, store = instance
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    for day in range(3):
        publish(store, home, f"d{day}.md", f"Story of day {day}", T + timedelta(days=day, hours=1))
    report = send_digests(settings, store, now=T + timedelta(days=3, hours=2))
    assert len(report.sent) == 1
    messages = outbox(home)
    assert len(messages) == 1
    text = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert all(f"Story of day {day}" in text for day in range(3))
    again = send_digests(settings, store, now=T + timedelta(days=3, hours=3))
    assert again.sent == [] and len(outbox(home)) == 1  # safe to run any number of times


# The second review, finding 3.
def test_3_overlapping_runs_record_one_period_each(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(store, home, "a.md", "Story", T + timedelta(hours=1))
    first = due_periods(settings, store, now=T + timedelta(days=1))
    second = due_periods(settings, store, now=T + timedelta(days=1, seconds=1), close_now=True)
    opened = [store.open_period(p, now=T + timedelta(days=1)) for p in first + second]
    assert sum(x is not None for x in opened) == 1


# The second review, finding 4.
def test_4_an_entry_committed_late_is_in_the_next_digest(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(store, home, "a.md", "Early story", T + timedelta(hours=1))
    send_digests(settings, store, now=T + timedelta(days=1))
    # A long ingest that started before that send commits its entry only now.
    publish(store, home, "b.md", "Late story", T + timedelta(hours=23))
    report = send_digests(settings, store, now=T + timedelta(days=2))
    assert len(report.sent) == 1
    (delivery,) = [p for p in report.opened]
    assert (
        len(delivery.entry_ids) == 1
        and store.entries_by_id(delivery.entry_ids)[0].entry.title == "Late story"
    )


def test_new_subscriber_gets_no_backlog_and_empty_periods_are_skipped(
    instance: tuple[Path, Store],
) -> None:
    home, store = instance
    settings = load_settings(home)
    publish(store, home, "old.md", "Before they joined", T)
    subscribe(store, "bob@example.org", T + timedelta(hours=1))
    report = send_digests(settings, store, now=T + timedelta(days=1, hours=1))
    assert report.sent == [] and report.skipped == 1  # the period was empty: recorded, not sent
    publish(store, home, "new.md", "After they joined", T + timedelta(days=1, hours=2))
    report = send_digests(settings, store, now=T + timedelta(days=2, hours=1))
    texts = [m.get_body(preferencelist=("plain",)).get_content() for m in outbox(home)]
    assert (
        len(texts) == 1 and "After they joined" in texts[0] and "Before they joined" not in texts[0]
    )


# The second review, finding 10.
def test_10_a_reactivated_subscriber_gets_no_backlog(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(store, home, "a.md", "Before", T + timedelta(hours=1))
    send_digests(settings, store, now=T + timedelta(days=1))
    ann = store.subscriber("ann@example.org")
    assert ann is not None
    store.set_subscriber_state(
        ann.id, SubscriberState.UNSUBSCRIBED, now=T + timedelta(days=1, hours=1)
    )
    publish(store, home, "b.md", "While away", T + timedelta(days=1, hours=2))
    store.set_subscriber_state(ann.id, SubscriberState.ACTIVE, now=T + timedelta(days=1, hours=3))
    publish(store, home, "c.md", "After return", T + timedelta(days=1, hours=4))
    report = send_digests(settings, store, now=T + timedelta(days=2))
    titles = [s.entry.title for s in store.entries_by_id(report.opened[0].entry_ids)]
    assert titles == ["After return"]


def test_tag_filter_and_unsubscribed_people(instance: tuple[Path, Store]) -> None:
    home, store = instance
    settings = load_settings(home)
    subscribe(store, "tags@example.org", T, tags="war")
    subscribe(store, "gone@example.org", T)
    gone = store.subscriber("gone@example.org")
    assert gone is not None
    store.set_subscriber_state(gone.id, SubscriberState.UNSUBSCRIBED, now=T)
    publish(store, home, "a.md", "Tagged story", T + timedelta(hours=1), tags="War")
    publish(store, home, "b.md", "Other story", T + timedelta(hours=2), tags="sport")
    send_digests(settings, store, now=T + timedelta(days=1))
    messages = outbox(home)
    assert [m["To"].addresses[0].addr_spec for m in messages] == ["tags@example.org"]
    text = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "Tagged story" in text and "Other story" not in text


# The second review, finding 9.
def test_9_a_withdrawn_entry_is_not_mailed(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    publish(store, home, "a.md", "Kept", T + timedelta(hours=1))
    publish(store, home, "b.md", "Soon retracted", T + timedelta(hours=2))
    periods = due_periods(settings, store, now=T + timedelta(days=1))
    for period in periods:
        store.open_period(period, now=T + timedelta(days=1))
    (home / "seeds" / "b.md").unlink()
    ingest(settings, store, now=T + timedelta(days=1, minutes=1))
    send_digests(settings, store, now=T + timedelta(days=1, minutes=2))

    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    (key,) = list(box.iterkeys())
    parsed = message_from_bytes(box.get_bytes(key), policy=policy.default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Kept" in text and "Soon retracted" not in text


def test_dry_run_records_nothing(instance: tuple[Path, Store]) -> None:
    home, store = instance
    subscribe(store, "ann@example.org", T)
    publish(store, home, "a.md", "A story", T + timedelta(hours=1))
    report = send_digests(load_settings(home), store, now=T + timedelta(days=1), dry_run=True)
    assert len(report.opened) == 1 and report.sent == []
    assert store.delivery_summary() == [] and not (home / "state" / "outbox").exists()


# The second review, finding 2.
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
    publish(store, home, "a.md", "Story", T + timedelta(hours=1))
    report = send_digests(load_settings(home, environ=bad), store, now=T + timedelta(days=1))
    assert report.failed == [] and "'nope' is undefined" in report.paused
    assert {state for _, state, _ in store.delivery_summary()} == {"queued"}  # none stuck
    fixed = send_digests(load_settings(home), store, now=T + timedelta(days=1, minutes=1))
    assert len(fixed.sent) == 2


def test_messages_carry_the_list_headers_and_survive_hostile_titles(
    instance: tuple[Path, Store],
) -> None:
    home, store = instance
    subscribe(store, "ann@example.org", T)
    publish(store, home, "a.md", '"Привіт, світ 🌍"', T + timedelta(hours=1))
    publish(store, home, "b.md", '"Evil\\r\\nBcc: victim@example.org"', T + timedelta(hours=2))
    settings = load_settings(
        home, environ={"NEWSDROP_DIGEST__SUBJECT": "{{ entries[0].title }} & more"}
    )
    send_digests(settings, store, now=T + timedelta(days=1))
    (message,) = outbox(home)
    assert message["Bcc"] is None and "victim" not in str(message["To"])
    assert message["Subject"] == "Evil Bcc: victim@example.org & more"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (
        message["List-Unsubscribe"].strip().startswith("<http://127.0.0.1:8080/unsubscribe?token=")
    )
    assert message["Message-ID"].startswith("<digest-") and message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    html_part = message.get_body(preferencelist=("html",))
    # The HTML travels as 7bit text, other characters as character references.
    assert html_part["Content-Transfer-Encoding"] == "7bit"
    assert (
        "Привіт, світ 🌍" in unescape(html_part.get_content())
        and "Привіт, світ 🌍" in message.get_body(("plain",)).get_content()
    )


def test_send_now_closes_the_current_period(home: Path, run: CliRun) -> None:
    assert run("subscribers", "add", "ann@example.org").exit_code == 0
    (home / "seeds" / "a.md").write_text("# Fresh\n\nNews.\n")
    assert run("ingest").exit_code == 0
    result = run("digest", "send", "--now")
    assert result.exit_code == 0 and "1 sent" in result.output
    assert "sent" in run("digest", "status").output
    assert len(outbox(home)) == 1
    preview = run("digest", "preview", "--out", str(home / "p.eml"))
    assert preview.exit_code == 0
    parsed = message_from_bytes((home / "p.eml").read_bytes(), policy=policy.default)
    assert parsed["To"].addresses[0].addr_spec == "ann@example.org"


def test_settings_defaults_for_digests() -> None:
    assert DigestSettings().interval_seconds == 0 and DigestSettings().skip_empty


def test_preview_of_a_chosen_date_sends_and_records_nothing(home: Path, run: CliRun) -> None:
    assert run("subscribers", "add", "ann@example.org", "--tz", "Europe/Kyiv").exit_code == 0
    (home / "seeds" / "a.md").write_text("# Preview me\n\nNews.\n")
    assert run("ingest").exit_code == 0
    result = run("digest", "preview", "--date", "2030-01-15")
    assert result.exit_code == 0
    assert "Tuesday, 15 January 2030" in result.output and "Preview me" in result.output
    assert "no digests yet" in run("digest", "status").output
    assert not (home / "state" / "outbox").exists()
    bad = run("digest", "preview", "--date", "15/01/2030")
    assert bad.exit_code == 2
    stranger = run("digest", "preview", "--subscriber", "nobody@example.org")
    assert stranger.exit_code == 2 and "nobody@example.org is not a subscriber" in stranger.output
    text = run("digest", "preview", "--out", str(home / "p.txt"))
    assert text.exit_code == 2 and "name a .html file" in text.output


def test_a_pause_sends_nothing_then_starts_afresh_or_catches_up_when_asked(
    home: Path, store: Store
) -> None:
    settings = load_settings(home)
    for email in ("fresh@example.org", "missed@example.org", "ended@example.org"):
        subscribe(store, email, T)
    publish(store, home, "a.md", "Before the pause", T + timedelta(hours=1))
    assert len(send_digests(settings, store, now=T + timedelta(days=1)).sent) == 3
    people = {p.email: p for p in store.subscribers()}
    for person in people.values():
        store.pause_subscriber(
            person.id, until=T + timedelta(days=8), now=T + timedelta(days=1, hours=1)
        )
    publish(store, home, "b.md", "During the pause", T + timedelta(days=2))
    for day in (3, 4, 5):  # nothing while paused, however many digests come due
        assert send_digests(settings, store, now=T + timedelta(days=day)).opened == []
    at = T + timedelta(days=5, hours=1)
    store.resume_subscriber(people["fresh@example.org"].id, missed=False, now=at)
    store.resume_subscriber(people["missed@example.org"].id, missed=True, now=at)
    publish(store, home, "c.md", "After the resume", T + timedelta(days=5, hours=2))
    report = send_digests(settings, store, now=T + timedelta(days=6))
    got = {
        store.subscribers_by_id([p.subscriber_id])[p.subscriber_id].email: sorted(
            s.entry.title for s in store.entries_by_id(p.entry_ids)
        )
        for p in report.opened
    }
    assert got == {
        "fresh@example.org": ["After the resume"],  # from the resume on: no backlog
        "missed@example.org": ["After the resume", "During the pause"],  # one catch-up mail
    }
    publish(store, home, "d.md", "After the pause ended", T + timedelta(days=8, hours=2))
    report = send_digests(settings, store, now=T + timedelta(days=9))
    ended = [p for p in report.opened if p.subscriber_id == people["ended@example.org"].id]
    titles = [s.entry.title for s in store.entries_by_id(ended[0].entry_ids)]
    assert titles == ["After the pause ended"]  # a pause that ran out: from its end on
    recorded = [what for _, _, what in store.subscriber_changes(people["missed@example.org"].id)]
    assert recorded[0].startswith("paused until") and recorded[1] == "resumed with what they missed"


def test_every_digest_carries_the_subscribers_own_manage_link(home: Path, store: Store) -> None:
    settings = load_settings(home)
    subscribe(store, "ann@example.org", T)
    subscribe(store, "bob@example.org", T)
    publish(store, home, "a.md", "Story", T + timedelta(hours=1))
    send_digests(settings, store, now=T + timedelta(days=1))
    links = {}
    for message in outbox(home):
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]
        html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[attr-defined]
        found = re.search(r"(\S+/manage/(\d+)\.\S+)", text)
        assert found, text
        assert f'href="{found.group(1)}"' in html
        links[str(message["To"])] = int(found.group(2))  # type: ignore[index]
    people = {p.email: p.id for p in store.subscribers()}
    assert links == people  # each their own
