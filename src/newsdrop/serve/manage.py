"""The preference centre, /manage/<token>: from the link in each of a subscriber's mails,
they see and change their choices, pause and resume, unsubscribe and come back; and their
digests as a private feed, /me/<feed token>/digests.atom (a token of its own, read-only).

Opening the page changes nothing (mail scanners follow links). Every change is a POST
that carries the page's CSRF token and, when the browser says where it comes from, comes
from this site; it answers with a redirect to the page (post, redirect, get), which says
what was done."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from newsdrop.i18n import N_, languages, moment_name
from newsdrop.mail.compose import view_signature
from newsdrop.mail.digest_feed import FEED_DIGESTS, SentDigest, digest_feed
from newsdrop.mail.schedule import period_label, zone_of
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.publish.feeds import feed_item
from newsdrop.serve.choices import PAUSES, ChoiceForm, read_form
from newsdrop.serve.subscriptions import SubscriptionPages, read_body
from newsdrop.subscribers import describe, feed_url, link_token_holds, link_token_id

log = logging.getLogger(__name__)

DONE = {  # what the page says after each change (the redirect names it; translated there)
    "saved": N_("Saved. Your next mail follows these choices."),
    "unchanged": N_("Nothing changed: these were already your choices."),
    "paused": N_("Paused. Nothing is sent until the date below."),
    "resumed": N_("Resumed. Your mail starts again from now."),
    "resumed-missed": N_("Resumed. What you missed comes in one mail, the next you get."),
    "unsubscribed": N_("You are unsubscribed: nothing more is sent. You can come back below."),
    "resubscribed": N_("Welcome back. Your mail starts again from now."),
    "link-sent": N_(
        "A link is on its way to your address: open it to change your address, download "
        "your data or delete everything. It works for an hour."
    ),
    "busy": N_("A mail to you is already on its way; please try again in a few minutes."),
}


def csrf_token(secret: bytes, token: str) -> str:
    """The form token of one manage page: only who can read the page can post to it."""
    digest = hmac.digest(secret, f"csrf:{token}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest[:18]).decode()


class ManagePages(SubscriptionPages):
    """The /manage/<token> route (``Web`` has it)."""

    async def manage(self, request: Request) -> Response:
        token = request.path_params["token"]
        person = await asyncio.to_thread(self._holder, token)
        if person is None:
            return self.page(
                N_("This link does not work"),
                N_(
                    "This manage link is not valid, or it was replaced by a newer one. Use "
                    "the link in your latest mail from us."
                ),
                status=404,
            )
        if request.method != "POST":
            return await self._manage_page(token, person, request.query_params.get("done", ""))
        if not self._same_site(request):
            return self.page(
                N_("Forbidden"),
                N_("This form can only be sent from its own page. Open the manage link again."),
                status=403,
            )
        form = await read_body(request)
        if form is None:
            return self.too_many_fields()
        if not self.form_holds(form, token):
            return self.page(
                N_("This form has expired"),
                N_("Open the manage link from your latest mail again, then make the change."),
                status=403,
            )
        action = (form.get("do") or [""])[0]
        if action == "save" and person.state in _CHOOSING:
            shown, choices = read_form(
                form,
                self.settings,
                with_email=False,
                gettext=self.gettext(),
                languages=languages(self.settings.home),
                fallback_language=person.language,
            )
            if choices is None:
                return await self._manage_page(token, person, "", form=shown, status=400)
            done = await asyncio.to_thread(
                self.store.set_choices,
                person.id,
                replace(choices, email=person.email),
                now=datetime.now(UTC),
                by="subscriber",
            )
            outcome = "saved" if done else "unchanged"
        else:
            outcome = await asyncio.to_thread(self._act, person, action, form)
            if not outcome:
                return self.page(
                    N_("Not a change we can make"),
                    N_(
                        "That button does not fit this subscription as it is now. Open the "
                        "manage link again to see it."
                    ),
                    status=400,
                )
        self.subscribers_changed()  # a due instant may have moved, or a catch-up is due
        log.info("subscriber %d: %s from the manage page", person.id, outcome)
        # Back to the page as the browser asked for it (behind a proxy, on a preview).
        url = f"{request.url.path}?done={outcome}"
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})

    async def private_feed(self, request: Request) -> Response:
        """/me/<feed token>/digests.atom: the digests sent to one subscriber, as Atom."""
        token = request.path_params["token"]
        data = await asyncio.to_thread(self._private_feed, token)
        if data is None:
            return self.not_found()
        return Response(
            data,
            media_type="application/atom+xml; charset=utf-8",
            headers={"cache-control": "private, max-age=300"},
        )

    def _private_feed(self, token: str) -> bytes | None:
        person = self._holder(token, purpose="feed")
        if person is None:
            return None
        base = self.site.base_url
        digests = [
            SentDigest(
                id=sent.id,
                label=period_label(sent.due, person, self.site.timezone, self.site.language),
                sent=sent.changed,
                view_url=f"{base}digest/{sent.id}?sig={view_signature(self.secret, sent.id)}",
                items=tuple(
                    feed_item(stored, base_url=base, default_author="")
                    for stored in self.store.entries_by_id(sent.entry_ids)
                ),
            )
            for sent in self.store.sent_deliveries(person.id, limit=FEED_DIGESTS)
        ]
        return digest_feed(
            title=self.gettext()(N_("{title}: your digests")).format(title=self.site.title),
            self_url=feed_url(base, self.secret, person),
            home_url=base,
            language=self.site.language,
            digests=digests,
        )

    def form_holds(self, form: dict[str, list[str]], token: str) -> bool:
        """Whether a posted form carries its page's CSRF token (compared in constant time)."""
        given = (form.get("csrf") or [""])[0]
        return hmac.compare_digest(given.encode(), csrf_token(self.secret, token).encode())

    def _holder(self, token: str, *, purpose: str = "manage") -> Subscriber | None:
        """The subscriber a manage (or feed) token belongs to, if it is theirs and current."""
        subscriber_id = link_token_id(token)
        if subscriber_id is None:
            return None
        person = self.store.subscribers_by_id([subscriber_id]).get(subscriber_id)
        if person is None or not link_token_holds(self.secret, purpose, token, person):
            return None
        return person

    def _same_site(self, request: Request) -> bool:
        """Whether the browser says the form came from this site: Sec-Fetch-Site when it
        sends it, else Origin. (Under our no-referrer policy a browser's Origin is "null",
        which says nothing; a client that says nothing is let through: the CSRF token
        still holds.)"""
        fetched_from = request.headers.get("sec-fetch-site")
        if fetched_from is not None:
            return fetched_from in ("same-origin", "none")
        origin = request.headers.get("origin", "null")
        if origin == "null":
            return True
        # This site: where it is published, or the host the request was sent to (a
        # preview served on another address than [site] base_url).
        ours = {urlsplit(self.site.base_url).netloc, request.headers.get("host", "")}
        return urlsplit(origin).netloc in ours

    def _act(self, person: Subscriber, action: str, form: dict[str, list[str]]) -> str:
        """Carry out a pause, resume, unsubscribe or comeback; what was done, or "" when
        the action does not fit the subscription's state."""
        now = datetime.now(UTC)
        store = self.store
        if action == "pause" and person.state in _CHOOSING and not person.paused(now):
            weeks = (form.get("weeks") or [""])[0]
            if weeks not in {str(w) for w in PAUSES}:
                return ""
            store.pause_subscriber(person.id, until=now + timedelta(weeks=int(weeks)), now=now)
            return "paused"
        if action in ("resume", "resume-missed") and person.paused(now):
            store.resume_subscriber(person.id, missed=action == "resume-missed", now=now)
            return "resumed-missed" if action == "resume-missed" else "resumed"
        if action == "unsubscribe" and person.state in _CHOOSING:
            store.set_subscriber_state(
                person.id, SubscriberState.UNSUBSCRIBED, now=now, by="subscriber"
            )
            return "unsubscribed"
        if action == "account-link":  # to the address itself: a digest may be forwarded
            queued = store.queue_confirmation(person.id, now=now, kind="account")
            if queued:
                self.confirmation_queued()
            return "link-sent" if queued else "busy"
        if action == "resubscribe" and person.state is SubscriberState.UNSUBSCRIBED:
            # The link came to their mailbox: that confirms the address, as the first time.
            store.set_subscriber_state(person.id, SubscriberState.ACTIVE, now=now, by="subscriber")
            return "resubscribed"
        return ""

    async def _manage_page(
        self,
        token: str,
        person: Subscriber,
        done: str,
        *,
        form: ChoiceForm | None = None,
        status: int = 200,
    ) -> Response:
        now = datetime.now(UTC)
        paused = ""
        if person.paused(now) and person.paused_until is not None:
            zone = zone_of(person, self.settings.site.timezone)
            when = moment_name(person.paused_until, self.settings.site.language, zone, weekday=True)
            paused = f"{when} ({person.timezone})"
        return await self.choices_page(
            "manage.html.j2",
            form or ChoiceForm.of(person),
            status=status,
            person=person,
            status_line=self._status(person, paused),
            notice=self.gettext()(DONE[done]) if done in DONE else "",
            active=person.state in _CHOOSING,
            paused_until=paused,
            pauses=PAUSES,
            action=token,  # relative: the page itself, wherever it is served
            csrf=csrf_token(self.secret, token),
            feed_url=feed_url(self.site.base_url, self.secret, person),
        )

    def _status(self, person: Subscriber, paused: str) -> str:
        _ = self.gettext()
        if person.state is SubscriberState.UNSUBSCRIBED:
            return _(N_("you are unsubscribed, and nothing is sent to you."))
        if person.state is SubscriberState.BOUNCED:
            return _(
                N_(
                    "mail to this address was refused too often, so nothing is sent. Reply "
                    "to any of our mails to have it checked."
                )
            )
        chosen = describe(person, self.settings, _)
        if person.state is SubscriberState.PENDING:
            words = N_("waiting for you to confirm with the link we sent; then you get {chosen}.")
        elif paused:
            words = N_("paused until {date}; then you get {chosen}.")
        else:
            words = N_("you get {chosen}.")
        return _(words).format(chosen=chosen, date=paused)


_CHOOSING = (SubscriberState.ACTIVE, SubscriberState.PENDING)  # may change their choices
