"""A real MTA between newsdrop and the world (issue #16): Debian's Postfix relays the
digests; one recipient is an unknown local user, so Postfix itself writes the DSN and sends
it to the envelope sender, the digest's bounce address, relayed to `newsdrop run`'s
listener. That address ends bounced with its delivery's event; the others are sent."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from smtpd import free_port

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from newsdrop.config import load_settings
from newsdrop.model import SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import new_subscriber
from postfix import LOCAL_DOMAIN, needs_postfix, running_postfix

from live import RunningService, state_of, until

DOMAIN = "bounces.example.org"


class Inbox(Message):
    """The world beyond Postfix: every message it relays to sink.example.com."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []

    def handle_message(self, message: object) -> None:
        self.received.append(str(message["To"]))  # type: ignore[index]


@needs_postfix
def test_postfix_returns_an_unknown_users_digest_and_the_listener_bounces_the_address(
    home: Path,
) -> None:
    inbox = Inbox()
    world = Controller(inbox, hostname="127.0.0.1", port=free_port())
    world.start()
    listen = free_port()
    try:
        with running_postfix({DOMAIN: listen, "sink.example.com": world.port}) as port:
            env = {
                "NEWSDROP_MAIL__TRANSPORT": "smtp",
                "NEWSDROP_MAIL__HOST": "127.0.0.1",
                "NEWSDROP_MAIL__PORT": str(port),
                "NEWSDROP_MAIL__FROM": "news@example.org",
                "NEWSDROP_MAIL__TIMEOUT_S": "10",
                "NEWSDROP_BOUNCES__DOMAIN": DOMAIN,
                "NEWSDROP_BOUNCES__LISTEN": f"127.0.0.1:{listen}",
            }
            service = RunningService(home, env=env).start()
            try:
                ids = send_digests(
                    home,
                    env,
                    ["ann@" + LOCAL_DOMAIN, "bob@sink.example.com", "cy@sink.example.com"],
                )
                until(lambda: sorted(inbox.received) == ["bob@sink.example.com", "cy@sink.example.com"],
                      timeout=30, what="Postfix to relay bob's and cy's digests")  # fmt: skip
                ann = "ann@" + LOCAL_DOMAIN
                until(lambda: state_of(home, ann) is SubscriberState.BOUNCED, timeout=60,
                      what="Postfix's DSN for ann, through the listener")  # fmt: skip
                store = Store.open(load_settings(home).store_url)
                try:
                    person = store.subscriber(ann)
                    assert person is not None
                    (event,) = store.bounce_events_of(person.id)
                    assert event[1:] == ("hard", "5.1.1")
                    assert store.delivery(ids[ann]) is not None
                    for other in ("bob@sink.example.com", "cy@sink.example.com"):
                        assert state_of(home, other) is SubscriberState.ACTIVE
                finally:
                    store.close()
                assert service.stop() == 0
            finally:
                service.close()
    finally:
        world.stop()


def send_digests(home: Path, env: dict[str, str], emails: list[str]) -> dict[str, int]:
    """Subscribers, an entry, and their digests sent through Postfix; delivery ids."""
    from newsdrop.ingest.run import ingest
    from newsdrop.mail.deliver import send_digests as send

    settings = load_settings(home, environ={**os.environ, **env})
    store = Store.open(settings.store_url)
    try:
        now = datetime.now(UTC)
        store.add_subscribers(
            [new_subscriber(e, timezone="UTC") for e in emails],
            now=now - timedelta(days=2), state=SubscriberState.ACTIVE,
        )  # fmt: skip
        (home / "seeds" / "a.md").write_text("# News\n\nText.\n")
        ingest(settings, store, now=now)
        report = send(settings, store, now=now, close_now=True)
        assert len(report.sent) == 3, report
        return {p.email: store.sent_deliveries(p.id, limit=1)[0].id for p in store.subscribers()}
    finally:
        store.close()
