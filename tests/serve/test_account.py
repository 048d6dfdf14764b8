"""A subscriber's address and data, from a fresh link mailed to them: change the address
(confirmed at the new one first), download everything kept about them, delete it all; and
the suppression list that keeps an import from mailing a deleted address again. Against
`newsdrop run`, with the mails read from its Maildir outbox."""

from __future__ import annotations

import json
import mailbox
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from newsdrop.config import load_settings
from newsdrop.mail.deliver import send_digests
from newsdrop.model import SubscriberState
from newsdrop.serve.manage import csrf_token
from newsdrop.store import Store
from newsdrop.subscribers import expiring_token, manage_url

from conftest import CliRun
from live import RunningService, publish, served_entries, until


def outbox(home: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    return [
        message_from_bytes(box.get_bytes(key), policy=policy.default)  # type: ignore[misc]
        for key in box.iterkeys()
    ]


def mail_to(home: Path, address: str, subject: str) -> list[EmailMessage]:
    return [m for m in outbox(home) if address in str(m["To"]) and subject in str(m["Subject"])]


def link(mail: EmailMessage, path: str) -> str:
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(rf"http://\S+/{path}/\S+", text)
    assert found, text
    return found.group(0)


def form_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_change_address_download_and_delete_from_a_mailed_link(
    home: Path, run: CliRun, tmp_path: Path
) -> None:
    assert run("subscribers", "add", "ann@example.org", "--name", "Ann").exit_code == 0
    service = RunningService(home).start()
    try:
        settings = load_settings(home, environ=service.env)
        store = Store.open(settings.store_url)
        ann = store.subscriber("ann@example.org")
        assert ann is not None
        publish(home / "seeds", "a.md", "---\ntitle: A story\n---\nText.\n")
        until(lambda: served_entries(service), timeout=20, what="the entry")
        send_digests(settings, store, now=datetime.now(UTC), close_now=True)  # one digest

        # From the manage page: a fresh link, mailed to the address itself.
        manage = manage_url(service.base, _secret(home), ann)
        page = service.http.get(manage)
        answer = service.http.post(manage, data={"do": "account-link", "csrf": form_of(page.text)})
        assert answer.status_code == 303, answer.text
        account = link(
            until(lambda: mail_to(home, "ann@example.org", "Your link"), timeout=20, what="it")[0],
            "account",
        )
        shown = service.http.get(account)
        assert shown.status_code == 200 and "Delete everything" in shown.text

        # Download: everything kept, as JSON.
        data = service.http.get(account + "/data.json")
        assert data.headers["content-disposition"].startswith("attachment")
        kept = json.loads(data.content)
        assert kept["address"] == "ann@example.org" and kept["name"] == "Ann"
        assert kept["choices"]["frequency"] == "daily"
        assert len(kept["digests"]) == 1 and "A story" not in json.dumps(kept["changes"])
        assert kept["digests"][0]["subject"].startswith("newsdrop: 1 new for ")

        # A new address, confirmed at the new address before it takes effect.
        csrf = form_of(shown.text)
        moved = service.http.post(
            account, data={"do": "address", "email": "ann@example.net", "csrf": csrf}
        )
        assert moved.status_code == 303
        assert store.subscriber("ann@example.org") is not None  # not yet
        confirm = link(
            until(
                lambda: mail_to(home, "ann@example.net", "Confirm your new address"),
                timeout=20,
                what="the new address's link",
            )[0],
            "address",
        )
        assert "Confirm the new address" in service.http.get(confirm).text
        assert service.http.post(confirm).status_code == 200
        assert store.subscriber("ann@example.org") is None
        assert store.subscriber("ann@example.net") is not None

        exported = run("subscribers", "export")  # the operator's list, before the deletion
        assert exported.exit_code == 0 and "ann@example.net" in exported.output
        (tmp_path / "export.csv").write_text(exported.output)

        # Delete: the row, the ledger, the stored mails to them; the suppression stays.
        assert service.http.post(account, data={"do": "delete", "csrf": csrf}).status_code == 400
        gone = service.http.post(account, data={"do": "delete", "csrf": csrf, "sure": "yes"})
        assert gone.status_code == 200 and "Everything is deleted" in gone.text
        assert store.subscriber("ann@example.net") is None
        assert store.sent_deliveries(ann.id, limit=10) == []
        assert not [m for m in outbox(home) if "ann@example.net" in str(m["To"])]
        assert service.http.get(manage).status_code == 404  # every link of theirs is dead
        assert service.http.get(account).status_code == 404
        assert "ann@example.net" not in service.logs()
        history = [what for _, _, what in store.subscriber_changes(ann.id)]
        assert history[-1] == "deleted with all their data"
        store.close()
    finally:
        service.close()

    # The suppression list: the address can be tested, and no import or add mails it.
    assert run("subscribers", "suppressed", "Ann@Example.NET").exit_code == 0
    assert run("subscribers", "suppressed", "bob@example.org").exit_code == 1
    refused = run("subscribers", "add", "ann@example.net")
    assert refused.exit_code == 2 and "deleted at their own request" in refused.output
    imported = run("subscribers", "import", str(tmp_path / "export.csv"))  # the old list
    assert "imported 0, skipped 1" in imported.output and "deleted at their own" in imported.output
    (tmp_path / "list.csv").write_text("email\nann@example.net\nbob@example.org\n")
    imported = run("subscribers", "import", str(tmp_path / "list.csv"))
    assert "imported 1, skipped 1" in imported.output


def _secret(home: Path) -> bytes:
    from newsdrop.config import instance_secret

    return instance_secret(load_settings(home))


def test_account_links_expire_and_need_the_pages_token(home: Path, run: CliRun) -> None:
    from appserver import AppServer

    assert run("subscribers", "add", "ann@example.org").exit_code == 0
    secret = b"a test secret of enough length"  # AppServer's
    with AppServer(home) as server:
        ann = server.store.subscriber("ann@example.org")
        assert ann is not None
        now = int(datetime.now(UTC).timestamp())
        old = expiring_token(secret, "account", ann.id, expires=now - 1)
        assert server.http.get(f"/account/{old}").status_code == 404  # expired
        fresh = expiring_token(secret, "account", ann.id, expires=now + 600)
        confirm_kind = expiring_token(secret, "confirm", ann.id, expires=now + 600)
        assert server.http.get(f"/account/{confirm_kind}").status_code == 404  # another kind
        assert server.http.get(f"/account/{fresh}/data.json").status_code == 200
        deleting = {"do": "delete", "sure": "yes"}
        assert server.http.post(f"/account/{fresh}", data=deleting).status_code == 403
        bad = {"do": "address", "email": "not an address", "csrf": csrf_token(secret, fresh)}
        answer = server.http.post(f"/account/{fresh}", data=bad)
        assert answer.status_code == 400 and 'aria-invalid="true"' in answer.text
        assert server.store.subscriber("ann@example.org").state is SubscriberState.ACTIVE  # type: ignore[union-attr]
        forged = expiring_token(secret, "address", ann.id, expires=now + 600, extra="x@y.org")
        assert server.http.get(f"/address/{forged[:-3]}abc").status_code == 404


def test_the_account_link_comes_in_the_subscribers_language(home: Path, run: CliRun) -> None:
    assert run("subscribers", "add", "olena@example.org", "--language", "uk").exit_code == 0
    service = RunningService(home).start()
    try:
        store = Store.open(load_settings(home, environ=service.env).store_url)
        olena = store.subscriber("olena@example.org")
        store.close()
        assert olena is not None and olena.language == "uk"
        manage = manage_url(service.base, _secret(home), olena)
        page = service.http.get(manage)
        answer = service.http.post(manage, data={"do": "account-link", "csrf": form_of(page.text)})
        assert answer.status_code == 303, answer.text
        outbox_made = (home / "state" / "outbox").is_dir
        mail = until(
            lambda: outbox_made() and mail_to(home, "olena@example.org", "ваше посилання"),
            timeout=20,
            what="the link, in Ukrainian",
        )[0]
        data = service.http.get(link(mail, "account") + "/data.json")
        assert json.loads(data.content)["choices"]["language"] == "uk"
    finally:
        service.close()
