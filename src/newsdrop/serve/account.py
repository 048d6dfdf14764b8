"""What a subscriber does only from a fresh link mailed to their address (a digest, and its
manage link, may have been forwarded): change their address (the new one confirmed by a
link sent to it before it takes effect), download their data, delete everything.

/account/<token> comes from the "account" mail the manage page asks for, valid for
mail/confirmations.py's ACCOUNT_HOURS; /address/<token> from the mail to the new address, valid for [server]
confirm_hours. Opening either changes nothing; each change is a POST with the page's
CSRF token."""

from __future__ import annotations

import asyncio
import json
import logging
import mailbox
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsdrop.errors import UsageError
from newsdrop.i18n import N_
from newsdrop.mail.compose import digest_subject
from newsdrop.mail.relay import utf8_local_parts
from newsdrop.model import Subscriber
from newsdrop.serve.manage import ManagePages, csrf_token
from newsdrop.serve.subscriptions import read_body
from newsdrop.store import Delivery
from newsdrop.subscribers import (
    describe,
    expiring_token_holder,
    normalize_address,
    suppression_key,
    wire_address,
)

log = logging.getLogger(__name__)

DONE = {  # translated where shown
    "address-sent": N_(
        "A link to confirm is on its way to your new address. Your address changes when you "
        "open it."
    ),
    "busy": N_("A mail to you is already on its way; please try again in a few minutes."),
}


class AccountPages(ManagePages):
    """/account/<token>, /account/<token>/data.json and /address/<token> (``Web`` has them)."""

    async def account(self, request: Request) -> Response:
        token = request.path_params["token"]
        person = await asyncio.to_thread(self._account_holder, token, "account")
        if person is None:
            return self._expired()
        if request.method != "POST":
            done = request.query_params.get("done", "")
            notice = self.gettext()(DONE[done]) if done in DONE else ""
            return self._account_page(token, person, notice=notice)
        form = await read_body(request)
        if form is None:
            return self.too_many_fields()
        if not self._same_site(request) or not self.form_holds(form, token):
            return self.page(
                N_("This form has expired"),
                N_("Open the link from your latest mail again, then make the change."),
                status=403,
            )
        action = (form.get("do") or [""])[0]
        if action == "address":
            return await self._new_address(request, token, person, form)
        if action == "delete":
            if (form.get("sure") or [""])[0] != "yes":
                error = self.gettext()(N_("Tick the box to say you want everything deleted."))
                return self._account_page(token, person, error=error, status=400)
            await asyncio.to_thread(self._delete, person)
            return self.page(
                N_("Everything is deleted"),
                N_(
                    "Your subscription to {title} and every record of your address are gone. "
                    "Nothing more will be sent to you."
                ),
                title=self.site.title,
            )
        return self.page(N_("Not a change we can make"), N_("Open the link again."), status=400)

    async def account_data(self, request: Request) -> Response:
        """Everything kept about them, as JSON: address, choices, every mail with its date
        and subject, every recorded change."""
        person = await asyncio.to_thread(
            self._account_holder, request.path_params["token"], "account"
        )
        if person is None:
            return self._expired()
        data = await asyncio.to_thread(self._data_of, person)
        body = json.dumps(data, ensure_ascii=False, indent=2).encode()
        return Response(
            body,
            media_type="application/json",
            headers={
                "cache-control": "no-store",
                "content-disposition": 'attachment; filename="my-subscription.json"',
            },
        )

    async def new_address(self, request: Request) -> Response:
        """/address/<token>, from the mail to the new address: confirm it (a POST)."""
        token = request.path_params["token"]
        now = int(datetime.now(UTC).timestamp())
        found = expiring_token_holder(self.secret, "address", token, now=now)
        person = None
        if found is not None:
            people = await asyncio.to_thread(self.store.subscribers_by_id, [found[0]])
            person = people.get(found[0])
        if found is None or person is None:
            return self._expired()
        address = found[1]
        if request.method != "POST":
            return self.page(
                N_("Confirm your new address"),
                N_("Mail from {title} will go to {new} instead of {old}."),
                action=token,
                button=N_("Confirm the new address"),
                title=self.site.title,
                new=address,
                old=person.email,
            )
        changed = await asyncio.to_thread(
            self.store.change_address, person.id, address, now=datetime.now(UTC)
        )
        if not changed:
            return self.page(
                N_("That address already subscribes"),
                N_(
                    "{address} already has a subscription. Unsubscribe one of them first, "
                    "from the manage link in its mails."
                ),
                status=409,
                address=address,
            )
        log.info("subscriber %d changed their address", person.id)
        return self.page(
            N_("Your address is changed"), N_("Mail now goes to {address}."), address=address
        )

    # --- the work ------------------------------------------------------------------------

    async def _new_address(
        self, request: Request, token: str, person: Subscriber, form: dict[str, list[str]]
    ) -> Response:
        _ = self.gettext()
        raw = (form.get("email") or [""])[0].strip()
        utf8 = await asyncio.to_thread(utf8_local_parts, self.settings, self.store)
        try:
            address = normalize_address(raw, utf8_local=utf8)
            wire_address(address)
        except UsageError:
            error = _(N_("Enter an email address we can send to, such as name@example.org."))
            return self._account_page(token, person, error=error, typed=raw, status=400)
        if address.lower() == person.email.lower():
            error = _(N_("That is the address you have."))
            return self._account_page(token, person, error=error, typed=raw, status=400)
        queued = await asyncio.to_thread(
            self.store.queue_confirmation,
            person.id, now=datetime.now(UTC), kind="address", address=address,
        )  # fmt: skip
        if queued:
            self.confirmation_queued()
        done = "address-sent" if queued else "busy"
        return RedirectResponse(f"{request.url.path}?done={done}", status_code=303)

    def _account_holder(self, token: str, purpose: str) -> Subscriber | None:
        now = int(datetime.now(UTC).timestamp())
        found = expiring_token_holder(self.secret, purpose, token, now=now)
        if found is None:
            return None
        return self.store.subscribers_by_id([found[0]]).get(found[0])

    def _delete(self, person: Subscriber) -> None:
        self.store.delete_subscriber(
            person.id, suppress=suppression_key(self.secret, person.email), now=datetime.now(UTC)
        )
        removed = remove_mail_to(self.settings.state_dir / "outbox", person.email)
        log.info("subscriber %d deleted at their request (%d stored messages)", person.id, removed)

    def _data_of(self, person: Subscriber) -> dict[str, Any]:
        sent = self.store.sent_deliveries(person.id, limit=100_000)
        mails = [
            {"sent": delivery.changed.isoformat(), "subject": self._subject(person, delivery)}
            for delivery in sent
        ]
        notice = self.store.confirmation_state(person.id)
        return {
            "address": person.email,
            "name": person.name,
            "state": str(person.state),
            "joined": person.created.isoformat(),
            "choices": {
                "frequency": person.frequency,
                "topics": list(person.tags),
                "time_zone": person.timezone,
                "time_of_day": person.send_at or self.settings.digest.send_at[:5],
                "weekday": person.weekday or self.settings.digest.weekday,
                "language": person.mail_language(self.settings.site.language),
                "in_words": describe(person, self.settings),
                "paused_until": person.paused_until.isoformat() if person.paused_until else None,
            },
            "digests": mails,
            "last_other_mail": None
            if notice is None or notice[2] is None
            else {"state": notice[0], "sent": notice[2].isoformat()},
            "changes": [
                {"at": at.isoformat(), "by": by, "what": what}
                for at, by, what in self.store.subscriber_changes(person.id)
            ],
        }

    def _subject(self, person: Subscriber, delivery: Delivery) -> str:
        return digest_subject(
            self.settings.home,
            self.settings.digest.subject,
            site=self.site,
            base_url=self.site.base_url,
            subscriber=person,
            entries=self.store.entries_by_id(delivery.entry_ids),
            due=delivery.due,
        )

    def _account_page(
        self,
        token: str,
        person: Subscriber,
        *,
        notice: str = "",
        error: str = "",
        typed: str = "",
        status: int = 200,
    ) -> Response:
        return self.rendered(
            "account.html.j2",
            status=status,
            person=person,
            notice=notice,
            error=error,
            typed=typed,
            action=token,
            data_url=f"{token}/data.json",
            csrf=csrf_token(self.secret, token),
        )

    def _expired(self) -> Response:
        return self.page(
            N_("This link does not work"),
            N_(
                "The link is not valid, or it has expired. Ask for a new one from the manage "
                "link in any mail from us."
            ),
            status=404,
        )


def remove_mail_to(outbox: Path, email: str) -> int:
    """Delete the stored messages addressed to ``email`` from a Maildir outbox (only the
    headers are read); how many went."""
    if not outbox.is_dir():
        return 0
    box = mailbox.Maildir(outbox, factory=None, create=False)
    wanted = {email.lower(), wire_address(email).lower()}
    parser = BytesHeaderParser()
    removed = 0
    for key in list(box.iterkeys()):
        try:
            with box.get_file(key) as handle:
                headers = parser.parse(handle)  # type: ignore[arg-type]
        except (KeyError, OSError):  # gone meanwhile
            continue
        to = {address.lower() for _, address in getaddresses(headers.get_all("To", []))}
        if to & wanted:
            box.discard(key)
            removed += 1
    return removed
