"""Returned mail reaching `newsdrop run` (a real subprocess): over SMTP to its listener on
[bounces] listen (Python's smtplib as the relaying MTA), and through [bounces] maildir.
Each is kept before it is answered or taken, then acted on by the bounce policy."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
from datetime import UTC, datetime
from mailbox import Maildir
from pathlib import Path
from smtpd import SmtpServer, free_port

import pytest

from newsdrop.config import instance_secret, load_settings
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import new_subscriber

from live import RunningService, state_of, until

pytestmark = pytest.mark.both_stores

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "returned"
DOMAIN = "bounces.example.org"


def sample(name: str, *, verp: str, rcpt: str) -> bytes:
    text = (SAMPLES / name).read_text().replace("{verp}", verp).replace("{rcpt}", rcpt)
    return text.replace("\n", "\r\n").encode()


def people(home: Path, *emails: str) -> dict[str, str]:
    """Active subscribers; each one's bounce address (of their welcome mail)."""
    from newsdrop.mail.verp import bounce_address

    store = Store.open(load_settings(home).store_url)
    try:
        added, _ = store.add_subscribers(
            [new_subscriber(e, timezone="UTC") for e in emails],
            now=datetime.now(UTC), state=SubscriberState.ACTIVE,
        )  # fmt: skip
    finally:
        store.close()
    secret = instance_secret(load_settings(home))
    return {p.email: bounce_address(secret, DOMAIN, "welcome", p.id) for p in added}


def test_returned_mail_over_smtp_and_from_a_maildir_is_kept_then_acted_on(
    home: Path, smtp: SmtpServer
) -> None:
    verp = people(home, "ann@example.com", "bob@example.com", "cy@example.com")
    port = free_port()
    box = Maildir(home / "returned", create=True)
    service = RunningService(
        home,
        env={
            **smtp.env(),
            "NEWSDROP_BOUNCES__DOMAIN": DOMAIN,
            "NEWSDROP_BOUNCES__LISTEN": f"127.0.0.1:{port}",
            "NEWSDROP_BOUNCES__MAILDIR": "returned",
            "NEWSDROP_BOUNCES__MAX_BYTES": "65536",
        },
    ).start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as relay:
            # Only the bounce domain: the listener is no open relay.
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                relay.sendmail("", ["someone@example.net"], b"Subject: hi\r\n\r\nhello\r\n")
            assert refused.value.recipients["someone@example.net"][0] == 550
            # Postfix's report of an unknown user: bounced at once.
            bounce = sample("postfix-unknown-user.eml", verp=verp["ann@example.com"],
                            rcpt="ann@example.com")  # fmt: skip
            # One recipient a message: the MTA sends the others in their own.
            refused = relay.sendmail("", [verp["ann@example.com"], verp["bob@example.com"]], bounce)
            assert refused == {verp["bob@example.com"]: (452, refused[verp["bob@example.com"]][1])}
            # Larger than [bounces] max_bytes: refused with 552, kept nowhere.
            with pytest.raises(smtplib.SMTPException) as big:
                relay.sendmail("", [verp["bob@example.com"]], b"X: y\r\n\r\n" + b"a" * 70_000)
            assert "552" in str(big.value)
        until(lambda: state_of(home, "ann@example.com") is SubscriberState.BOUNCED, timeout=10,
              what="ann bounced by the report sent to the listener")  # fmt: skip
        assert state_of(home, "bob@example.com") is SubscriberState.ACTIVE

        # A complaint delivered to the Maildir: taken (the file goes) and acted on.
        complaint = sample("arf-abuse.eml", verp=verp["cy@example.com"], rcpt="cy@example.com")
        box.add(complaint)
        until(lambda: state_of(home, "cy@example.com") is SubscriberState.UNSUBSCRIBED,
              timeout=20, what="cy unsubscribed by the complaint in the Maildir")  # fmt: skip
        assert len(Maildir(home / "returned", create=False)) == 0
        assert state_of(home, "bob@example.com") is SubscriberState.ACTIVE
        assert service.stop() == 0
    finally:
        service.close()


def test_a_taken_listen_port_stops_the_start_with_a_clear_error(home: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        env = {"NEWSDROP_BOUNCES__DOMAIN": DOMAIN, "NEWSDROP_BOUNCES__LISTEN": f"127.0.0.1:{port}",
               "NEWSDROP_SERVER__PORT": str(free_port())}  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "newsdrop", "--home", str(home), "run"],
            env={**os.environ, **env}, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        taken.close()
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert f"cannot listen for returned mail on 127.0.0.1:{port}" in err
    assert "[bounces] listen" in err and "Traceback" not in err


def test_the_listener_killed_mid_batch_loses_none_and_acts_on_none_twice(home: Path) -> None:
    """A relaying MTA sends a batch while the service is killed with SIGKILL: what got no
    250 it sends again once the service is back. Every message acted on once."""
    import random
    import signal
    import threading

    emails = [f"p{n}@example.com" for n in range(200)]
    verp = people(home, *emails)
    port = free_port()
    env = {"NEWSDROP_BOUNCES__DOMAIN": DOMAIN, "NEWSDROP_BOUNCES__LISTEN": f"127.0.0.1:{port}"}
    messages = {
        email: sample("gmail-mailbox-full.eml", verp=verp[email], rcpt=email) for email in emails
    }
    pending = list(emails)
    service = RunningService(home, env=env).start()
    try:
        rng = random.Random(40)
        timer = threading.Timer(rng.uniform(0.05, 0.25), service.process.send_signal,  # type: ignore[union-attr]
                                [signal.SIGKILL])  # fmt: skip
        timer.start()
        delivered = relay(port, messages, pending)
        timer.join()
        assert service.process is not None and service.process.wait(timeout=10) == -signal.SIGKILL
        assert 0 < delivered < len(emails), f"{delivered} sent before the kill: nothing was cut"
        service.close()
        service = RunningService(home, env=env).start()
        relay(port, messages, pending)  # the rest, and any the kill left without a 250
        assert pending == []

        def events() -> dict[str, list[str]]:
            store = Store.open(load_settings(home).store_url)
            try:
                found = {}
                for email in emails:
                    person = store.subscriber(email)
                    assert person is not None
                    found[email] = [kind for _, kind, _ in store.bounce_events_of(person.id)]
                return found
            finally:
                store.close()

        until(lambda: all(events().values()), timeout=30, what="every message acted on")
        assert events() == {email: ["soft"] for email in emails}
        assert service.stop() == 0
    finally:
        service.close()


def relay(port: int, messages: dict[str, bytes], pending: list[str]) -> int:
    """Send each pending message, one connection each, as an MTA would; those answered 250
    leave ``pending``. How many were; stops at the first that cannot be sent."""
    sent = 0
    for email in list(pending):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.sendmail("", [verp_of(messages[email])], messages[email])
        except (OSError, smtplib.SMTPException):
            return sent
        pending.remove(email)
        sent += 1
    return sent


def verp_of(message: bytes) -> str:
    return message.split(b"Delivered-To: ")[1].split(b"\r\n")[0].decode()
