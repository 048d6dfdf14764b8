"""Returned mail: bounce addresses that name their message (VERP, signed), notifications
and complaints read by their fields (samples in tests/data/returned/, after Postfix,
Gmail, Outlook and Yahoo, an ARF report, and qmail's and Exim's plain-text bounces), and `newsdrop bounces receive` acting on
them by policy, once, while forged and replayed ones change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from newsdrop.config import instance_secret, load_settings
from newsdrop.errors import ConfigError
from newsdrop.mail import returned
from newsdrop.mail.verp import Returned, bounce_address, returned_to
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import new_subscriber

from conftest import CliRun

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "returned"
DOMAIN = "bounces.example.org"
SECRET = b"a secret of enough length for the tests"


def sample(name: str, *, verp: str, rcpt: str = "ann@example.com") -> bytes:
    text = (SAMPLES / name).read_text().replace("{verp}", verp).replace("{rcpt}", rcpt)
    return text.replace("\n", "\r\n").encode()


def test_a_bounce_address_names_its_message_and_only_a_signed_one_does() -> None:
    address = bounce_address(SECRET, DOMAIN, "digest", 123456789012345678)
    local = address.split("@")[0]
    assert len(local) <= 64 and local == local.lower()
    assert returned_to(SECRET, DOMAIN, address) == Returned("digest", 123456789012345678)
    assert returned_to(SECRET, DOMAIN, address.upper()) is not None  # a server folded case
    assert returned_to(SECRET, DOMAIN, f"<{address}>") is not None
    welcome = bounce_address(SECRET, DOMAIN, "welcome", 7)
    assert returned_to(SECRET, DOMAIN, welcome) == Returned("welcome", 7)
    forged = [
        address.replace("b+d123", "b+d124"),  # another id, the same signature
        bounce_address(b"another instance's secret!!!!!", DOMAIN, "digest", 5),
        address.replace(DOMAIN, "bounces.example.net"),
        "b+d5@" + DOMAIN,
        "news@example.org",
    ]
    for address in forged:
        assert returned_to(SECRET, DOMAIN, address) is None, address


@pytest.mark.parametrize(
    ("name", "kind", "verdict", "status"),
    [
        ("postfix-unknown-user.eml", "bounce", "hard", "5.1.1"),
        ("yahoo-disabled.eml", "bounce", "hard", "5.2.1"),
        ("gmail-mailbox-full.eml", "bounce", "soft", "4.2.2"),
        ("outlook-policy.eml", "bounce", "ours", "5.7.1"),  # a blocklist: nobody's address
        ("qmail-no-mailbox.eml", "bounce", "hard", "5.1.1"),  # plain text: flufl.bounce
        ("exim-unrouteable.eml", "bounce", "soft", ""),  # no code to read: a guess is soft
        ("arf-abuse.eml", "complaint", "", ""),
        ("vacation.eml", "auto-reply", "", ""),
    ],
)
def test_each_kind_of_returned_mail_is_read_by_its_fields(
    name: str, kind: str, verdict: str, status: str
) -> None:
    verp = bounce_address(SECRET, DOMAIN, "digest", 7)
    report = returned.read(sample(name, verp=verp))
    assert report.kind == kind
    assert any(returned_to(SECRET, DOMAIN, a) for a in report.addressed_to), report.addressed_to
    if verdict:
        (failure,) = report.failures
        assert failure.recipient == "ann@example.com" and failure.status == status
        assert returned.judge(failure) == verdict
    if kind == "complaint":
        assert report.feedback_type == "abuse"


@pytest.fixture
def bouncing(home: Path, store: Store) -> tuple[dict[str, str], dict[str, int]]:
    """An instance with a bounce domain, three subscribers and a digest sent to each: the
    environment for `bounces receive`, and each address's delivery id."""
    env = {"NEWSDROP_BOUNCES__DOMAIN": DOMAIN}
    settings = load_settings(home, environ={**os.environ, **env})
    now = datetime.now(UTC)
    people = [new_subscriber(f"{n}@example.com", timezone="UTC") for n in ("ann", "bob", "cy")]
    store.add_subscribers(people, now=now - timedelta(days=2), state=SubscriberState.ACTIVE)
    (home / "seeds" / "a.md").write_text("# News\n\nText.\n")
    from newsdrop.ingest.run import ingest
    from newsdrop.mail.deliver import send_digests

    ingest(settings, store, now=now)
    report = send_digests(settings, store, now=now, close_now=True)
    assert len(report.sent) == 3
    ids = {p.email: store.sent_deliveries(p.id, limit=1)[0].id for p in store.subscribers()}
    return env, ids


def verp_of(home: Path, delivery_id: int) -> str:
    return bounce_address(instance_secret(load_settings(home)), DOMAIN, "digest", delivery_id)


def state(store: Store, email: str) -> SubscriberState:
    person = store.subscriber(email)
    assert person is not None
    return person.state


def test_digests_go_from_their_bounce_address_and_what_comes_back_is_acted_on_once(
    home: Path, store: Store, run: CliRun, bouncing: tuple[dict[str, str], dict[str, int]]
) -> None:
    env, ids = bouncing
    from mailbox import Maildir

    box = Maildir(home / "state" / "outbox", create=False)
    assert len(box) == 3  # (the Maildir keeps no envelope: the sender is checked over SMTP)

    def receive(name: str, email: str, *, copy: int = 0) -> str:
        data = sample(name, verp=verp_of(home, ids[email]), rcpt=email)
        data = f"X-Copy: {copy}\r\n".encode() + data  # each bounce its own (a Message-Id)
        done = subprocess.run(
            [sys.executable, "-m", "newsdrop", "--home", str(home), "bounces", "receive"],
            input=data, capture_output=True, env={**os.environ, **env}, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().strip()

    assert receive("postfix-unknown-user.eml", "ann@example.com") == "bounced (5.1.1)"
    assert state(store, "ann@example.com") is SubscriberState.BOUNCED
    assert receive("vacation.eml", "bob@example.com").startswith("ignored")
    assert receive("outlook-policy.eml", "bob@example.com").startswith("nobody's fault")
    for n in range(3):  # a full mailbox, again and again: the soft score passes 3
        done = receive("gmail-mailbox-full.eml", "bob@example.com", copy=n)
        assert done.startswith(f"soft score {n + 1}."), done
        assert state(store, "bob@example.com") is SubscriberState.ACTIVE
    # The same message handed over again (an MTA that lost our answer): kept once.
    assert receive("gmail-mailbox-full.eml", "bob@example.com", copy=2).startswith("already")
    assert receive("gmail-mailbox-full.eml", "bob@example.com", copy=3).endswith(", bounced")
    assert state(store, "bob@example.com") is SubscriberState.BOUNCED
    assert receive("arf-abuse.eml", "cy@example.com") == "unsubscribed (complaint)"
    assert state(store, "cy@example.com") is SubscriberState.UNSUBSCRIBED
    cy = store.subscriber("cy@example.com")
    assert cy is not None
    assert [kind for _, kind, _ in store.bounce_events_of(cy.id)] == ["complaint"]
    assert "unsubscribed: complaint" in [what for _, _, what in store.subscriber_changes(cy.id)]

    # The figures: of the period's 3 digests, 2 came back failed (bob's only once counted),
    # 1 as a complaint: far over 0.1%, so every place that shows them warns.
    shown = run("digest", "status", env=env).output
    assert "sent 3, bounced 2 (66.67%), complaints 1 (33.33%); WARNING" in shown, shown
    (period,) = json.loads(run("status", "--json", env=env).output)["returned"]
    assert (period["sent"], period["bounced"], period["complaints"]) == (3, 2, 1)
    assert period["complaints_high"] is True
    assert "WARNING: complaints over 0.1%" in run("status", env=env).output
    from newsdrop.serve.metrics import Metrics

    metrics = Metrics(store).render().decode()
    assert "newsdrop_last_period_complaint_ratio 0.333" in metrics
    assert "newsdrop_complaints_over_warning 1.0" in metrics


def test_forged_and_replayed_returns_change_nothing(
    home: Path, store: Store, run: CliRun, bouncing: tuple[dict[str, str], dict[str, int]]
) -> None:
    env, ids = bouncing
    real = verp_of(home, ids["ann@example.com"])
    forged = {
        "no bounce address": "news@example.org",
        "a wrong signature": real[: -(len(DOMAIN) + 3)] + "aa7@" + DOMAIN,
        "a delivery that is gone": verp_of(home, 999_999),
    }
    for why, verp in forged.items():
        data = sample("postfix-unknown-user.eml", verp=verp, rcpt="ann@example.com")
        done = run("bounces", "receive", input=data, env=env)
        assert done.exit_code == 0 and done.output.startswith("dropped"), (why, done.output)
    assert state(store, "ann@example.com") is SubscriberState.ACTIVE
    # Counted: what a forged or stale message came to is there for the operator to see.
    counts = json.loads(run("status", "--json", env=env).output)["returned_mail"]
    assert counts == {"acted on": 0, "dropped": 3, "ignored": 0, "waiting": 0}
    shown = run("status", env=env).output
    assert "3 dropped, 0 ignored, 0 waiting (dropped: no valid bounce address" in shown
    big = run("bounces", "receive", input=b"x" * 300_000, env=env)
    assert big.exit_code == 2 and "max_bytes" in big.output
    assert run("bounces", "receive", input=b"x").exit_code == 2  # no [bounces] domain


def test_over_smtp_each_message_goes_from_its_own_bounce_address(
    home: Path, store: Store, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MAIL FROM names the message: a digest's delivery, a confirmation's subscriber."""
    from newsdrop.ingest.run import ingest
    from newsdrop.mail.deliver import send_digests

    monkeypatch.setenv("NEWSDROP_SMTP_PASSWORD", PASSWORD)
    settings = load_settings(
        home, environ={**os.environ, **smtp.env(), "NEWSDROP_BOUNCES__DOMAIN": DOMAIN}
    )
    now = datetime.now(UTC)
    (ann,), _ = store.add_subscribers(
        [new_subscriber("ann@example.com", timezone="UTC")], now=now - timedelta(days=1),
        state=SubscriberState.ACTIVE,
    )  # fmt: skip
    (bob,), _ = store.add_subscribers(
        [new_subscriber("bob@example.com", timezone="UTC")], now=now,
        state=SubscriberState.PENDING,
    )  # fmt: skip
    store.queue_confirmation(bob.id, now=now)
    (home / "seeds" / "a.md").write_text("# News\n\nText.\n")
    ingest(settings, store, now=now)
    send_digests(settings, store, now=now, close_now=True)
    secret = instance_secret(settings)
    delivery = store.sent_deliveries(ann.id, limit=1)[0]
    assert smtp.sink.senders == [
        bounce_address(secret, DOMAIN, "confirm", bob.id),  # confirmations go first
        bounce_address(secret, DOMAIN, "digest", delivery.id),
    ]


@pytest.mark.both_stores  # (PostgreSQL holds each column's length: "unsubscribe" is 11)
def test_digests_offer_a_signed_mailto_unsubscribe_and_a_mail_to_it_unsubscribes(
    home: Path, store: Store, run: CliRun, bouncing: tuple[dict[str, str], dict[str, int]]
) -> None:
    """What Gmail and Yahoo ask of a bulk sender: List-Unsubscribe with the https one-click
    link and a mailto:, a Feedback-ID, and a From that names the site."""
    env, _ = bouncing
    from email import message_from_bytes
    from email import policy as email_policy
    from mailbox import Maildir

    settings = load_settings(home, environ={**os.environ, **env})
    box = Maildir(home / "state" / "outbox", create=False)
    mails = [message_from_bytes(m.as_bytes(), policy=email_policy.default) for m in box]
    ann = next(m for m in mails if "ann@example.com" in str(m["To"]))
    https, mailto = (part.strip().strip("<>") for part in str(ann["List-Unsubscribe"]).split(","))
    assert https.startswith(settings.site.base_url + "unsubscribe?token=")
    assert mailto.startswith("mailto:b+u") and mailto.endswith(f"@{DOMAIN}?subject=unsubscribe")
    address = mailto.removeprefix("mailto:").split("?")[0]
    person = store.subscriber("ann@example.com")
    assert person is not None
    assert returned_to(instance_secret(settings), DOMAIN, address) == Returned(
        "unsubscribe", person.id
    )
    assert ann["Feedback-ID"] == "digest:newsdrop:127.0.0.1"
    assert ann["From"].addresses[0].display_name == settings.site.title
    assert ann["Reply-To"] is None
    # Any mail to that address, with the subject a client fills in: unsubscribed.
    request = (
        f"From: ann@example.com\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n\r\n"
    ).encode()
    forged = request.replace(address.encode(), address.replace("b+u", "b+u9").encode())
    done = run("bounces", "receive", "--to", forged.split(b"To: ")[1].split(b"\r\n")[0].decode(),
               input=forged, env=env)  # fmt: skip
    assert done.output.startswith("dropped") and state(store, "ann@example.com").value == "active"
    done = run("bounces", "receive", "--to", address, input=request, env=env)
    assert done.exit_code == 0 and done.output.strip() == "unsubscribed (by mail)", done.output
    assert state(store, "ann@example.com") is SubscriberState.UNSUBSCRIBED
    assert ("subscriber", "unsubscribed: by mail") in [
        (by, what) for _, by, what in store.subscriber_changes(person.id)
    ]


def test_a_reply_to_is_set_when_configured_and_a_named_from_is_kept(home: Path) -> None:
    from newsdrop.mail.identity import identity_of

    settings = load_settings(
        home,
        environ={
            **os.environ,
            "NEWSDROP_MAIL__FROM": "Desk <desk@example.org>",
            "NEWSDROP_MAIL__REPLY_TO": "editors@example.org",
        },
    )
    headers = dict(identity_of(settings).headers("welcome"))
    assert headers["From"] == "Desk <desk@example.org>"
    assert headers["Reply-To"] == "editors@example.org"
    assert headers["Feedback-ID"].startswith("welcome:newsdrop:")
    bad = {**os.environ, "NEWSDROP_MAIL__REPLY_TO": "not an address"}
    with pytest.raises(ConfigError, match="reply_to"):
        load_settings(home, environ=bad)


def test_bounces_receive_killed_mid_batch_loses_none_and_acts_on_none_twice(
    home: Path, store: Store
) -> None:
    """Each message in its own `bounces receive`, as Postfix's pipe runs it; some killed
    with SIGKILL at a random moment (before, while or after keeping it), and those handed
    over again, as the MTA does after a failed delivery. Every message acted on once."""
    import random
    import signal
    import time

    env = {**os.environ, "NEWSDROP_BOUNCES__DOMAIN": DOMAIN}
    secret = instance_secret(load_settings(home, environ=env))
    now = datetime.now(UTC)
    added, _ = store.add_subscribers(
        [new_subscriber(f"p{n}@example.com", timezone="UTC") for n in range(16)],
        now=now, state=SubscriberState.ACTIVE,
    )  # fmt: skip
    messages = {
        p.id: sample(
            "gmail-mailbox-full.eml",
            verp=bounce_address(secret, DOMAIN, "welcome", p.id),
            rcpt=p.email,
        )
        for p in added
    }
    command = [sys.executable, "-m", "newsdrop", "--home", str(home), "bounces", "receive"]
    rng = random.Random(16)
    killed = []
    for person_id, data in messages.items():
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(data)
        process.stdin.close()
        if rng.random() < 0.6:  # most are killed, at a moment in the run's usual span
            time.sleep(rng.uniform(0.2, 1.2))
            process.send_signal(signal.SIGKILL)
        if process.wait(timeout=60) != 0:
            killed.append(person_id)
    assert killed, "no run was cut short: the test tested nothing"
    for person_id in killed:  # the MTA hands each one over again
        done = subprocess.run(command, input=messages[person_id], env=env, capture_output=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    events = {p.id: [kind for _, kind, _ in store.bounce_events_of(p.id)] for p in added}
    assert events == {person_id: ["soft"] for person_id in messages}, (killed, events)
    assert store.unhandled_returns() == []
