"""SMTP delivery against a real aiosmtpd server (STARTTLS, AUTH) with scripted faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from newsdrop.config import Settings, load_settings
from newsdrop.ingest import ingest
from newsdrop.mailer import SendReport, send_digests
from newsdrop.model import SubscriberState
from newsdrop.store import Store
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


def test_550_fails_the_digest_and_three_in_a_row_bounce(
    mailing: Settings, store: Store, smtp: SmtpServer
) -> None:
    smtp.sink.reject = {"bob@example.org": "550 5.1.1 no such user"}
    for day in range(1, 4):
        (mailing.seeds_dir / f"d{day}.md").write_text(f"# Day {day}\n\nNews.\n")
        ingest(mailing, store, now=T + timedelta(days=day - 1, hours=2))
        report = send(mailing, store, T + timedelta(days=day))
        assert report.failed and report.failed[0][1] == "550 5.1.1 no such user"
        assert len(report.sent) == 1  # ann still gets hers
    assert [s.email for s in store.subscribers(state=SubscriberState.BOUNCED)] == [
        "bob@example.org"
    ]
    report = send(mailing, store, T + timedelta(days=4))
    assert report.failed == []  # no more mail to a bounced address


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
