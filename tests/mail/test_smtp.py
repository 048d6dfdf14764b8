"""SMTP delivery against a real aiosmtpd server (STARTTLS, AUTH) with scripted faults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest
import sqlalchemy as sa

from newsdrop.config import Settings, load_settings
from newsdrop.ingest.run import ingest
from newsdrop.mail.claims import SendReport
from newsdrop.mail.deliver import send_digests
from newsdrop.mail.schedule import due_periods
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.store.schema import deliveries
from newsdrop.subscribers import new_subscriber

from conftest import CliRun

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def mailing(
    home: Path, store: Store, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """An instance with one story and two subscribers, sending through the test server."""
    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", PASSWORD)
    store.add_subscribers(
        [
            new_subscriber(f"{name}@example.org", name=name, timezone="UTC")
            for name in ("ann", "bob")
        ],
        now=T,
        state=SubscriberState.ACTIVE,
    )
    (home / "seeds" / "a.md").write_text("---\ntitle: Новини дня ✉\n---\nA story.\n")
    ingest(load_settings(home), store, now=T + timedelta(hours=1))
    return load_settings(home, environ=smtp.env())


def send(settings: Settings, store: Store, at: datetime) -> SendReport:
    return send_digests(settings, store, now=at)


def test_delivers_over_starttls_with_auth(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    report = send(mailing, store, T + timedelta(days=1))
    assert len(report.sent) == 2 and report.failed == []
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp.sink.received) == [
        "ann@example.org", "bob@example.org"
    ]  # fmt: skip
    message = smtp.sink.received[0]
    assert "Новини дня ✉" in message.get_body(("plain",)).get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert send(mailing, store, T + timedelta(days=1, minutes=5)).sent == []  # exactly once


def test_4xx_is_retried_later_then_delivered(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    smtp.sink.faults = [("DATA", "451 4.3.0 try again later"), ("DATA", "452 4.3.1 out of space")]
    first = send(mailing, store, T + timedelta(days=1))
    assert len(first.retrying) == 2 and first.sent == [] and smtp.sink.received == []
    assert "451 4.3.0 try again later" in {reply for _, reply in first.retrying}
    assert send(mailing, store, T + timedelta(days=1, seconds=5)).sent == []  # backoff: not yet
    later = send(mailing, store, T + timedelta(days=1, minutes=5))
    assert len(later.sent) == 2 and len(smtp.sink.received) == 2


def test_550_5_1_1_fails_the_digest_and_bounces_the_address_at_once(
    mailing: Settings, store: Store, smtp: SmtpServer, run: CliRun
) -> None:
    """A permanent refusal of the address (5.1.x, 5.2.1) bounces it at once, by the same
    policy as returned mail (before: three in a row); ann still gets hers."""
    smtp.sink.reject = {"bob@example.org": "550 5.1.1 no such user"}
    (mailing.seeds_dir / "d1.md").write_text("# Day 1\n\nNews.\n")
    ingest(mailing, store, now=T + timedelta(hours=2))
    report = send(mailing, store, T + timedelta(days=1))
    assert [reply for _, reply in report.failed] == ["550 5.1.1 no such user"]
    assert len(report.sent) == 1 and report.bounced == ["bob@example.org"]
    assert [s.email for s in store.subscribers(state=SubscriberState.BOUNCED)] == [
        "bob@example.org"
    ]
    bob = store.subscriber("bob@example.org")
    assert bob is not None and [k for _, k, _ in store.bounce_events_of(bob.id)] == ["hard"]
    (mailing.seeds_dir / "d2.md").write_text("# Day 2\n\nNews.\n")
    ingest(mailing, store, now=T + timedelta(days=1, hours=2))
    report = send(mailing, store, T + timedelta(days=2))
    assert report.failed == []  # no more mail to a bounced address
    refused = run("digest", "retry", "bob@example.org")  # it would not be sent
    assert refused.exit_code == 2 and "subscribers reactivate bob@example.org" in refused.output
    every = run("digest", "retry", "--all-failed").output
    assert "queued again: 0" in every and "left failed: 1" in every


def test_refusals_of_our_message_do_not_count_toward_bouncing_the_address(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """Two digests refused for our message (5.7.1: policy) bounce nobody; a refusal of the
    address without an enhanced code (a bare 550) only adds to the soft score; the first
    5.1.1 bounces the address."""
    replies = ["550 5.7.1 message refused by policy"] * 2 + ["550 no", "550 5.1.1 no such user"]
    for day, reply in enumerate(replies, start=1):
        smtp.sink.reject = {"bob@example.org": reply}
        (mailing.seeds_dir / f"d{day}.md").write_text(f"# Day {day}\n\nNews.\n")
        ingest(mailing, store, now=T + timedelta(days=day - 1, hours=2))
        report = send(mailing, store, T + timedelta(days=day))
        assert [r for _, r in report.failed] == [reply] and len(report.sent) == 1
        bounced = [s.email for s in store.subscribers(state=SubscriberState.BOUNCED)]
        assert bounced == ([] if day < 4 else ["bob@example.org"]), day
    bob = store.subscriber("bob@example.org")
    assert bob is not None
    assert [k for _, k, _ in store.bounce_events_of(bob.id)] == ["soft", "hard"]


def test_a_wrong_password_pauses_sending_and_bounces_nobody(
    mailing: Settings, store: Store, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", "wrong")
    report = send(mailing, store, T + timedelta(days=1))
    assert (
        report.sent == []
        and report.failed == []
        and "refused the login of newsdrop" in report.paused
    )
    assert len(store.subscribers(state=SubscriberState.ACTIVE)) == 2
    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", PASSWORD)  # the operator fixes it
    assert len(send(mailing, store, T + timedelta(days=1, minutes=1)).sent) == 2


def test_a_server_that_is_down_pauses_sending_however_long_until_it_is_up(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """An outage is nobody's digest's fault: more runs than max_attempts (8) find the
    server down, and still no digest fails or is charged an attempt."""
    smtp.stop()
    for hour in range(10):
        down = send(mailing, store, T + timedelta(days=1, hours=hour))
        assert down.sent == down.retrying == down.failed == [], down
        assert "cannot connect" in down.paused and "[mail] host and port" in down.paused
    assert {state for _, state, _ in store.delivery_summary()} == {"queued"}
    smtp.start()
    up = send(mailing, store, T + timedelta(days=1, hours=11))
    assert len(up.sent) == 2 and len(smtp.sink.received) == 2


def test_a_broken_template_pauses_sending_and_the_fix_sends_everything(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    template = mailing.home / "digest" / "digest.txt.j2"
    template.write_text("{% for item in entries %}{{ item.title.nope() }}{% endfor %}\n")
    broken = send(mailing, store, T + timedelta(days=1))
    assert broken.sent == broken.failed == [] and "digest.txt.j2" in broken.paused
    assert {state for _, state, _ in store.delivery_summary()} == {"queued"}
    template.unlink()  # the operator fixes it
    fixed = send(mailing, store, T + timedelta(days=1, minutes=5))
    assert len(fixed.sent) == 2 and len(smtp.sink.received) == 2


def test_a_server_without_the_login_asked_for_pauses_and_says_what_to_check(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """[mail] username set against a server that offers no AUTH (here: before STARTTLS,
    which security = "none" never starts): the operator's setting, not a recipient's."""
    plain = load_settings(mailing.home, environ=smtp.env(NEWSDROP_MAIL__SECURITY="none"))
    report = send(plain, store, T + timedelta(days=1))
    assert report.sent == report.failed == report.retrying == []
    assert "AUTH" in report.paused and "check [mail] security and username" in report.paused


def test_security_none_never_upgrades_and_a_refusing_server_pauses(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    plain = load_settings(
        mailing.home, environ=smtp.env(NEWSDROP_MAIL__SECURITY="none", NEWSDROP_MAIL__USERNAME="")
    )
    report = send(plain, store, T + timedelta(days=1))
    assert report.sent == [] and "530" in report.paused  # the server insists on STARTTLS first
    assert {state for _, state, _ in store.delivery_summary()} == {"queued"}


def test_a_stop_ends_a_send_early_and_the_next_run_sends_the_rest(
    home: Path, store: Store, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's shutdown: messages in flight finish, the rest wait, queued."""
    import threading

    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", PASSWORD)
    people = [new_subscriber(f"p{n}@example.org", timezone="UTC") for n in range(30)]
    store.add_subscribers(people, now=T, state=SubscriberState.ACTIVE)
    (home / "seeds" / "a.md").write_text("---\ntitle: Stop\n---\nA story.\n")
    ingest(load_settings(home), store, now=T + timedelta(hours=1))
    settings = load_settings(home, environ=smtp.env(NEWSDROP_MAIL__POOL_SIZE="2"))
    smtp.sink.hold = 0.1  # each message takes a tenth of a second to be accepted
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    first = send_digests(settings, store, now=T + timedelta(days=1), stop=stop)
    timer.join()
    assert 0 < len(first.sent) < 30
    counts = store.delivery_counts()
    assert counts["sent"] == len(first.sent) == len(smtp.sink.received)
    assert counts["queued"] == 30 - len(first.sent)  # given back, not left "sending"
    send_digests(settings, store, now=T + timedelta(days=1, minutes=1))
    assert sorted(str(m["To"]) for m in smtp.sink.received) == sorted(p.email for p in people)


def test_digest_send_warns_when_no_service_answers_the_unsubscribe_links(
    mailing: Settings, store: Store, smtp: SmtpServer, run: CliRun
) -> None:
    """From cron with no `newsdrop run`: the digests' one-click links would find nobody."""
    env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD}
    alone = run("digest", "send", "--now", env=env)
    assert alone.exit_code == 0 and "no `newsdrop run` instance is serving" in alone.output
    now = datetime.now(UTC)  # a service on this store reports itself
    store.heartbeat("web-1", pid=1, host="h", url="", started=now, now=now)
    (mailing.home / "seeds" / "b.md").write_text("---\ntitle: More\n---\nAnother story.\n")
    ingest(load_settings(mailing.home), store, now=now)
    served = run("digest", "send", "--now", env=env)
    assert "2 sent" in served.output and "no `newsdrop run`" not in served.output


def ledger(store: Store) -> list[tuple[str, int]]:
    """(state, attempts) of every digest in the ledger."""
    with store.begin() as conn:
        rows = conn.execute(sa.select(deliveries.c.state, deliveries.c.attempts))
        return sorted((state, attempts) for state, attempts in rows)


def add_people(store: Store, count: int) -> list[str]:
    people = [new_subscriber(f"p{n}@example.org", timezone="UTC") for n in range(count)]
    store.add_subscribers(people, now=T, state=SubscriberState.ACTIVE)
    return [person.email for person in people]


BUSY = "421 4.3.2 System not accepting network messages, try again later"


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("greeting", BUSY),
        ("EHLO", BUSY),
        ("STARTTLS", "454 4.7.0 TLS not available due to temporary reason"),
        ("AUTH", "454 4.7.0 Temporary authentication failure"),
        ("MAIL", BUSY),
        ("MAIL", "451 4.3.0 Local error in processing"),
        ("RCPT", BUSY),
        ("DATA", BUSY),
    ],
)
def test_a_busy_server_pauses_sending_and_charges_no_digest_an_attempt(
    mailing: Settings, store: Store, smtp: SmtpServer, stage: str, reply: str
) -> None:
    """A 4xx to the session (and a 421 anywhere) is a server that is busy for everyone:
    more runs than max_attempts meet it, and no digest is retried, failed or charged."""
    settings = load_settings(mailing.home, environ=smtp.env(NEWSDROP_MAIL__MAX_ATTEMPTS="2"))
    if stage == "greeting":
        smtp.sink.greeting = reply
    else:
        smtp.sink.always[stage] = reply
    for minute in range(4):
        busy = send(settings, store, T + timedelta(days=1, minutes=minute))
        assert busy.sent == busy.retrying == busy.failed == [], busy
        assert reply in busy.paused and "sending pauses" in busy.paused
    assert ledger(store) == [("queued", 0), ("queued", 0)]
    assert smtp.sink.received == []
    smtp.sink.greeting, smtp.sink.always = "", {}  # the relay is back
    up = send(settings, store, T + timedelta(days=1, minutes=5))
    assert len(up.sent) == 2 and len(smtp.sink.received) == 2 and not up.paused


def test_451_at_the_end_of_data_to_everyone_pauses_instead_of_using_up_attempts(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """Before: every digest was retried and, after max_attempts runs, failed for good."""
    emails = add_people(store, 10)
    settings = load_settings(mailing.home, environ=smtp.env(NEWSDROP_MAIL__MAX_ATTEMPTS="2"))
    smtp.sink.always["DATA"] = "451 4.3.0 Mail server temporarily rejected message"
    for minute in range(3):
        busy = send(settings, store, T + timedelta(days=1, minutes=minute * 10))
        assert busy.retrying == busy.failed == [] and busy.sent == [], busy
        assert "different recipients in a row" in busy.paused and "451 4.3.0" in busy.paused
    assert ledger(store) == [("queued", 0)] * 12
    del smtp.sink.always["DATA"]
    up = send(settings, store, T + timedelta(days=1, hours=1))
    assert len(up.sent) == 12
    assert sorted(str(m["To"]) for m in smtp.sink.received if str(m["To"]).startswith("p")) == (
        sorted(emails)
    )


def test_552_5_3_4_to_everyone_pauses_and_bounces_nobody(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """A message too big for the relay is our fault: before, three periods of it marked
    every subscriber bounced."""
    add_people(store, 10)
    smtp.sink.always["DATA"] = "552 5.3.4 Message size exceeds fixed maximum message size"
    for day in range(1, 4):
        (mailing.seeds_dir / f"d{day}.md").write_text(f"# Day {day}\n\nNews.\n")
        ingest(mailing, store, now=T + timedelta(days=day - 1, hours=2))
        report = send(mailing, store, T + timedelta(days=day))
        assert report.failed == report.bounced == [] and "552 5.3.4" in report.paused
    assert store.subscribers(state=SubscriberState.BOUNCED) == []
    assert {state for state, _ in ledger(store)} == {"queued"}
    del smtp.sink.always["DATA"]  # the operator shrinks the digest, or the relay's limit grows
    up = send(mailing, store, T + timedelta(days=3, minutes=1))
    assert len(up.sent) == len(smtp.sink.received) == 3 * 12  # three periods, none lost


def test_a_5xx_about_our_message_for_one_recipient_fails_that_digest_only(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """5.3.x to 5.7.x are ours or the relay's: the digest fails with the reply recorded,
    and three in a row do not bounce the address (before, they did)."""
    smtp.sink.reject = {"bob@example.org": "552 5.3.4 Message size exceeds fixed maximum"}
    for day in range(1, 4):
        (mailing.seeds_dir / f"d{day}.md").write_text(f"# Day {day}\n\nNews.\n")
        ingest(mailing, store, now=T + timedelta(days=day - 1, hours=2))
        report = send(mailing, store, T + timedelta(days=day))
        assert [reply for _, reply in report.failed] == [
            "552 5.3.4 Message size exceeds fixed maximum"
        ]
        assert len(report.sent) == 1 and not report.paused and report.bounced == []
    assert len(store.subscribers(state=SubscriberState.ACTIVE)) == 2


@pytest.mark.parametrize("smtputf8", [False, True], ids=["plain relay", "SMTPUTF8 relay"])
def test_an_address_with_a_non_ascii_domain_is_delivered_in_idna(
    home: Path, store: Store, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch, smtputf8: bool
) -> None:
    """`mykola@приклад.укр`: the envelope and the To header carry the domain in IDNA, which
    every relay takes. (Before, every digest to it failed with an 'ascii' codec error that
    only the database showed.) Its confirmation mail too."""
    smtp.stop()
    smtp.smtputf8 = smtputf8
    smtp.start()
    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", PASSWORD)
    settings = load_settings(home, environ={**os.environ, **smtp.env()})
    store.add_subscribers(
        [new_subscriber("mykola@приклад.укр", name="Микола", timezone="Europe/Kyiv")],
        now=T,
        state=SubscriberState.ACTIVE,
    )
    (home / "seeds" / "a.md").write_text("# Новина\n\nТекст.\n")
    ingest(settings, store, now=T + timedelta(hours=1))
    report = send(settings, store, T + timedelta(days=1))
    assert len(report.sent) == 1 and report.failed == [], report.failed
    punycode = "mykola@xn--80aikifvh.xn--j1amh"
    assert smtp.sink.recipients == [punycode]
    assert smtp.sink.received[0]["To"].addresses[0].addr_spec == punycode
    assert smtp.sink.received[0]["To"].addresses[0].display_name == "Микола"
    (pending,), _ = store.add_subscribers(
        [new_subscriber("olena@приклад.укр", timezone="UTC")],
        now=T,
        state=SubscriberState.PENDING,
    )
    store.queue_confirmation(pending.id, now=T)
    assert send(settings, store, T + timedelta(days=1, minutes=1)).confirmations == [pending.id]
    assert smtp.sink.recipients[-1] == "olena@xn--80aikifvh.xn--j1amh"


@pytest.mark.parametrize("offered", [False, True], ids=["plain relay", "SMTPUTF8 relay"])
def test_a_non_ascii_local_part_needs_smtputf8_which_check_asks_and_remembers(
    home: Path,
    store: Store,
    smtp: SmtpServer,
    run: CliRun,
    monkeypatch: pytest.MonkeyPatch,
    offered: bool,
) -> None:
    """`микола@приклад.укр`: with [mail] smtputf8 = "auto", `check` asks the relay and
    the answer decides whether such an address is taken; through a relay with SMTPUTF8 it
    is delivered with the UTF-8 address in the envelope and the To header. With
    smtputf8 = false it is refused whatever the relay offers."""
    smtp.stop()
    smtp.smtputf8 = offered
    smtp.start()
    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", PASSWORD)
    env = smtp.env()
    checked = run("check", env=env)
    assert checked.exit_code == 0, checked.output
    assert ("it offers SMTPUTF8" if offered else "it lacks SMTPUTF8") in checked.output
    address = "микола@приклад.укр"
    refused = run("subscribers", "add", address, env={**env, "NEWSDROP_MAIL__SMTPUTF8": "false"})
    assert refused.exit_code == 2 and "the part before the @ is not ASCII" in refused.output
    added = run("subscribers", "add", address, "--name", "Микола", env=env)
    if not offered:
        assert added.exit_code == 2 and "SMTPUTF8" in added.output
        return
    assert added.exit_code == 0, added.output
    settings = load_settings(home, environ={**os.environ, **env})
    (home / "seeds" / "a.md").write_text("# Новина\n\nТекст.\n")
    ingest(settings, store, now=datetime.now(UTC))
    report = send_digests(settings, store, now=datetime.now(UTC), close_now=True)
    assert len(report.sent) == 1 and report.failed == [], report.failed
    wire = "микола@xn--80aikifvh.xn--j1amh"
    assert smtp.sink.recipients == [wire]
    assert f'\r\nTo: "Микола" <{wire}>\r\n'.encode() in smtp.sink.contents[0]  # UTF-8, RFC 6532


def test_failed_digests_are_listed_and_queued_again_by_the_operator(
    mailing: Settings, store: Store, smtp: SmtpServer, run: CliRun
) -> None:
    """`digest failures` names each failed digest with the server's reply; once the cause
    is fixed, `digest retry EMAIL` queues it again with every attempt back, and the next
    send delivers it. `status` points at them while any is failed."""
    # A refusal without an enhanced code: the digest fails, the address is not bounced.
    smtp.sink.reject = {"bob@example.org": "550 mailbox unavailable"}
    assert len(send(mailing, store, T + timedelta(days=1)).failed) == 1
    listed = run("digest", "failures")
    assert "bob@example.org  due 2026-03-02T07:00:00Z, 1 attempts" in listed.output
    assert "550 mailbox unavailable" in listed.output and "ann@" not in listed.output
    assert "newsdrop digest failures" in run("status").output
    assert run("digest", "retry").exit_code == 2  # neither an address nor --all-failed
    assert run("digest", "retry", "nobody@example.org").exit_code == 2
    smtp.sink.reject = {}  # the operator fixed the address at the relay
    again = run("digest", "retry", "BOB@example.org")
    assert again.exit_code == 0 and "queued again: 1" in again.output
    assert "no failed digests" in run("digest", "failures").output
    report = send(mailing, store, T + timedelta(days=1, minutes=1))
    assert len(report.sent) == 1 and report.failed == []
    assert [m["To"].addresses[0].addr_spec for m in smtp.sink.received][-1] == "bob@example.org"
    assert "queued again: 0" in run("digest", "retry", "--all-failed").output


def test_a_full_mailbox_is_retried_and_bounces_only_by_the_soft_bounce_rule(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    """5.2.2 is the recipient's but temporary: retried (before, it failed at once); a
    digest that runs out of attempts adds 1 to the soft score, which halves every
    [bounces] soft_half_life_days (7). With one attempt left, day 2 fails two digests
    (day 1's retry and its own: 2), day 3 one (2 x 0.906 + 1 = 2.81), day 4 one (3.55):
    past the limit (3), bounced."""
    smtp.sink.reject = {"bob@example.org": "552 5.2.2 Mailbox full"}
    first = send(mailing, store, T + timedelta(days=1))
    assert first.failed == [] and [r for _, r in first.retrying] == ["552 5.2.2 Mailbox full"]
    once = load_settings(mailing.home, environ=smtp.env(NEWSDROP_MAIL__MAX_ATTEMPTS="1"))
    for day, score in ((2, 2.0), (3, 2.81), (4, 3.55)):
        (mailing.seeds_dir / f"d{day}.md").write_text(f"# Day {day}\n\nNews.\n")
        ingest(mailing, store, now=T + timedelta(days=day - 1, hours=2))
        send(once, store, T + timedelta(days=day))
        bob = store.subscriber("bob@example.org")
        assert bob is not None and bob.soft_score == pytest.approx(score, abs=0.01), day
        assert bob.state is (SubscriberState.BOUNCED if day == 4 else SubscriberState.ACTIVE)


def test_two_sends_at_once_keep_to_one_rate_for_the_store(
    home: Path, store: Store, smtp: SmtpServer
) -> None:
    """[mail] rate_per_second holds for the store, whichever processes send: two `digest
    send` runs at once, each with its own connections, share the store's token bucket
    (before, each kept the rate alone: twice the rate at the relay)."""
    rate, people = 20.0, 80
    store.add_subscribers(
        [new_subscriber(f"p{n:02d}@example.org", timezone="UTC") for n in range(people)],
        now=T,
        state=SubscriberState.ACTIVE,
    )
    (home / "seeds" / "a.md").write_text("# Breaking\n\nNews for everyone.\n")
    ingest(load_settings(home), store, now=T + timedelta(hours=1))
    now = datetime.now(UTC)
    store.open_periods(due_periods(load_settings(home), store, now=now, close_now=True), now=now)
    env = {
        **os.environ,
        **smtp.env(
            NEWSDROP_MAIL__POOL_SIZE="2",
            NEWSDROP_MAIL__RATE_PER_SECOND=str(rate),
            NEWSDROP_MAIL__TIMEOUT_S="60",  # MAIL waits at the gate below
        ),
        "NEWSDROP_SMTP_PASSWORD": PASSWORD,
    }
    command = [sys.executable, "-m", "newsdrop", "--home", str(home), "digest", "send"]
    smtp.sink.gate = threading.Event()  # both runs start sending together, however loaded
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    started = time.monotonic()
    while len(smtp.sink.peers) < 3 and time.monotonic() < started + 60:  # 2 connections each
        time.sleep(0.01)
    gated = f"{len(smtp.sink.peers)} connections at MAIL after {time.monotonic() - started:.1f} s"
    smtp.sink.gate.set()
    outputs = [run.communicate(timeout=60)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    sent = [int(re.search(r"(\d+) sent", out).group(1)) for out in outputs]  # type: ignore[union-attr]
    assert sum(sent) == len(smtp.sink.received) == people and min(sent) > 0, (gated, outputs)
    times = smtp.sink.times[4:]  # after the messages that waited at the gate together
    measured = (len(times) - 1) / (times[-1] - times[0])
    print(f"{sent} sent by the two runs: {measured:.1f} messages/s at the relay")
    assert measured <= rate * 1.15


def test_the_store_bucket_hands_out_each_slot_once_and_saves_nothing_up(store: Store) -> None:
    """Racing takers get slots one after another; an idle bucket gives no burst later."""
    now = time.time()
    waits = [store.take_send_slots(5, gap=0.1, now=now) for _ in range(3)]
    assert waits[0] == pytest.approx(0.0, abs=0.05)  # idle: the first slot is now
    assert waits[1] - waits[0] == pytest.approx(0.5, abs=0.05)  # after the first five
    assert waits[2] - waits[1] == pytest.approx(0.5, abs=0.05)
    time.sleep(1.6)  # idle for longer than the slots taken: nothing is saved up
    assert store.take_send_slots(5, gap=0.1, now=time.time()) == pytest.approx(0.0, abs=0.05)
