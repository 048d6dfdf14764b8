"""Confirmation mails are kept in the store and sent with the digests' retries: a relay that
is down when someone subscribes delays their mail, it does not lose it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from newsdrop.config import load_settings
from newsdrop.model import SubscriberState
from newsdrop.store import Store

from conftest import CliRun
from live import RunningService, publish, received, served_entries, state_of, subscriber, until

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

HOURS = 2.0


def start(home: Path, smtp: SmtpServer) -> RunningService:
    env = {
        **smtp.env(),
        "NEWSDROP_SMTP_PASSWORD": PASSWORD,
        "NEWSDROP_SERVER__CONFIRM_HOURS": str(HOURS),
        # A paused send is tried again within a period (seconds here, a minute by default).
        "NEWSDROP_DIGEST__INTERVAL_SECONDS": "2",
    }
    return RunningService(home, env=env).start()


def link_in(mail: object) -> str:
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[attr-defined]
    found = re.search(r"http://\S+/confirm\?token=(\S+)", text)
    assert found, text
    return found.group(0)


def test_smtp_down_at_subscribe_the_mail_arrives_when_it_is_back_and_its_link_works(
    home: Path, smtp: SmtpServer
) -> None:
    service = start(home, smtp)
    try:
        smtp.stop()  # the relay is down when they subscribe
        asked = time.time()
        for _ in range(3):  # impatient: three requests, one mail
            answer = service.http.post("/subscribe", data={"email": "late@example.org"})
            assert answer.status_code == 200 and "on its way" in answer.text
        time.sleep(4)  # down for a while: the link's hours must not run meanwhile
        assert state_of(home, "late@example.org") is SubscriberState.PENDING
        smtp.start()
        mail = until(
            lambda: received(smtp, "late@example.org"), timeout=20, what="the confirmation"
        )
        arrived = time.time()
        time.sleep(2.5)  # a period or more: nothing more comes
        assert len(received(smtp, "late@example.org")) == 1

        url = link_in(mail[0])
        expires = int(url.rsplit("token=", 1)[1].split(".")[1])
        # Valid for HOURS from when it was sent, not from the request (4 s and more before;
        # the expiry is in whole seconds).
        assert asked + HOURS * 3600 + 3 <= expires <= arrived + HOURS * 3600
        assert "sending paused" in service.logs()  # while the relay was down
        assert 'newsdrop_confirmations{state="sent"} 1.0' in service.http.get("/metrics").text
        page = service.http.post(url.removeprefix(service.base.rstrip("/")))
        assert page.status_code == 200 and "You are subscribed" in page.text
        assert state_of(home, "late@example.org") is SubscriberState.ACTIVE
    finally:
        service.close()


def queue(home: Path, email: str) -> int:
    """A pending subscriber with a confirmation queued, as the subscribe page leaves one."""
    from datetime import UTC, datetime

    from newsdrop.subscribers import new_subscriber

    store = Store.open(load_settings(home).store_url)
    try:
        wanted = new_subscriber(email, name="", timezone="UTC", frequency="daily", tags="")
        added, _ = store.add_subscribers(
            [wanted], now=datetime.now(UTC), state=SubscriberState.PENDING
        )
        assert store.queue_confirmation(added[0].id, now=datetime.now(UTC))
        assert not store.queue_confirmation(added[0].id, now=datetime.now(UTC))  # one waits
        return added[0].id
    finally:
        store.close()


def confirmation(home: Path, subscriber_id: int) -> tuple[str, int, object]:
    store = Store.open(load_settings(home).store_url)
    try:
        found = store.confirmation_state(subscriber_id)
        assert found is not None
        return found
    finally:
        store.close()


def test_digest_send_sends_queued_confirmations_with_retries(
    home: Path, run: CliRun, smtp: SmtpServer
) -> None:
    env = {
        **smtp.env(),
        "NEWSDROP_SMTP_PASSWORD": PASSWORD,
        "NEWSDROP_MAIL__RETRY_BASE_S": "0.5",
        "NEWSDROP_MAIL__MAX_ATTEMPTS": "3",
    }
    busy = queue(home, "busy@example.org")
    gone = queue(home, "gone@example.org")
    smtp.sink.reject["gone@example.org"] = "550 5.1.1 no such user"
    smtp.sink.reject["busy@example.org"] = "451 4.3.0 try again later"  # busy's first try

    first = run("digest", "send", env=env)
    assert confirmation(home, busy)[:2] == ("retrying", 1), first.output
    assert confirmation(home, gone)[:2] == ("failed", 1)  # a permanent refusal fails it
    assert received(smtp, "busy@example.org") == []

    time.sleep(0.8)  # the backoff
    del smtp.sink.reject["busy@example.org"]
    second = run("digest", "send", env=env)
    assert second.exit_code == 0, second.output
    assert "1 confirmation mail sent" in second.output
    state, attempts, sent = confirmation(home, busy)
    assert (state, attempts) == ("sent", 2) and sent is not None
    assert len(received(smtp, "busy@example.org")) == 1
    assert subscriber(home, "busy@example.org").state is SubscriberState.PENDING

    smtp.stop()  # down: a pause, charged nothing
    again = queue(home, "later@example.org")
    paused = run("digest", "send", env=env)
    assert paused.exit_code == 1 and "sending paused" in paused.output
    assert confirmation(home, again)[:2] == ("queued", 0)
    status = run("digest", "status").output
    assert "confirmation mails: 1 failed, 1 queued, 1 sent" in status, status


def test_the_confirmation_says_the_choices_and_a_welcome_with_the_latest_follows(
    home: Path, smtp: SmtpServer
) -> None:
    service = start(home, smtp)
    try:
        for n, tags in enumerate(("war", "peace", "war")):  # one after the other
            text = f"---\ntitle: Story {n}\ntags: [{tags}]\n---\nText.\n"
            publish(home / "seeds", f"s{n}.md", text)
            until(lambda: len(served_entries(service)) > n, timeout=20, what="an entry")  # noqa: B023
        choices = {
            "email": "ann@example.org", "name": "Ann", "frequency": "weekly", "topics": "war",
            "tz": "Europe/Kyiv", "at": "08:00", "weekday": "tuesday",
        }  # fmt: skip
        assert service.http.post("/subscribe", data=choices).status_code == 200
        (mail,) = until(lambda: received(smtp, "ann@example.org"), timeout=20, what="the mail")
        text = " ".join(mail.get_body(preferencelist=("plain",)).get_content().split())  # type: ignore[union-attr]
        assert "Hello Ann," in text
        assert "a weekly digest on Tuesday at 08:00 (Europe/Kyiv), on war" in text
        manage = re.search(r"http://\S+/manage/\S+", text)
        assert manage, text
        assert (
            service.http.get(manage.group(0).removeprefix(service.base.rstrip("/"))).status_code
            == 200
        )

        page = service.http.post(link_in(mail).removeprefix(service.base.rstrip("/")))
        assert "You are subscribed" in page.text and "on Tuesday at 08:00" in page.text
        welcome = until(
            lambda: received(smtp, "ann@example.org")[1:], timeout=20, what="the welcome"
        )[0]
        assert (
            welcome["Subject"] == "Welcome to newsdrop demo" or "Welcome to" in welcome["Subject"]
        )
        body = welcome.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "Story 2" in body and "Story 0" in body and "Story 1" not in body  # war only
        assert body.index("Story 2") < body.index("Story 0")  # the latest first
        html = welcome.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        assert "/manage/" in html and "/unsubscribe?token=" in html
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        time.sleep(1)
        assert len(received(smtp, "ann@example.org")) == 2  # one welcome, once
    finally:
        service.close()
