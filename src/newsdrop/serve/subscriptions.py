"""The pages a subscriber uses: subscribe, confirm, unsubscribe, and the digest web view.
Address and token checks are subscribers.py's; the store calls go to threads."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from urllib.parse import parse_qs

from limits import RateLimitItem
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsdrop.i18n import N_, accepted_language, languages
from newsdrop.mail.relay import utf8_local_parts
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.serve.choices import ChoiceForm, read_form
from newsdrop.serve.pages import Pages
from newsdrop.store import Store
from newsdrop.subscribers import (
    NewSubscriber,
    confirm_token_subscriber,
    describe,
    suppression_key,
    token_subscriber,
)

log = logging.getLogger(__name__)

MAX_FORM_FIELDS = 120  # the choices (7), up to 100 topics, and the manage page's own


class SubscriptionPages(Pages):
    """The subscription routes of the web app (``Web`` has them)."""

    store: Store
    secret: bytes
    per_client: RateLimitItem
    overall: RateLimitItem
    confirmation_queued: Callable[[], None]
    subscribers_changed: Callable[[], None]

    def browser(self, request: Request) -> str:
        """The language the browser prefers of those mails can be in, "" for the site's."""
        header = request.headers.get("accept-language", "")
        found = accepted_language(header, languages(self.settings.home))
        return "" if found == self.site.language.split("-")[0] else found

    async def subscribe(self, request: Request) -> Response:
        if request.method != "POST":
            return await self.choices_page(
                "subscribe.html.j2",
                ChoiceForm(timezone=self.settings.site.timezone, language=self.browser(request)),
            )
        client = request.client.host if request.client else "unknown"
        if not await asyncio.to_thread(self._within_limits, client):
            return self.page(
                N_("Too many requests"),
                N_("There have been too many subscription requests; please try again later."),
                status=429,
                headers={"retry-after": "600"},
            )
        form = await read_body(request)
        if form is None:
            return self.too_many_fields()
        utf8 = await asyncio.to_thread(utf8_local_parts, self.settings, self.store)
        shown, wanted = read_form(
            form,
            self.settings,
            utf8_local=utf8,
            gettext=self.gettext(),
            languages=languages(self.settings.home),
            fallback_language=self.browser(request),
        )
        if wanted is None:
            return await self.choices_page("subscribe.html.j2", shown, status=400)
        # Whatever the address's story, the answer is the same (no one learns who subscribes).
        if await asyncio.to_thread(self._pending, wanted):
            self.confirmation_queued()  # kept in the store: sent (and retried) from there
        hours = self.settings.server.confirm_hours
        return self.page(
            N_("Check your inbox"),
            N_(
                "If {address} can receive mail from {title}, a message with a link to confirm "
                "is on its way. The link works for {hours} hours; nothing is sent until you "
                "confirm. You chose {choices}."
            ),
            address=wanted.email,
            title=self.site.title,
            hours=f"{hours:g}",
            choices=describe(wanted, self.settings, self.gettext()),
        )

    def too_many_fields(self) -> Response:
        return self.page(
            N_("Not a subscription form"),
            N_("That form has more than {most} fields; use the form at {url}."),
            status=400,
            most=MAX_FORM_FIELDS,
            url=f"{self.site.base_url}subscribe",
        )

    def _within_limits(self, client: str) -> bool:
        """One more subscription request from ``client``, counted in the store, so that the
        limits hold for all the instances serving together; False when over one."""
        now = time.time()
        for key, limit in (("client " + client, self.per_client), ("all", self.overall)):
            counted = self.store.take_hit(
                f"subscribe: {key}", amount=limit.amount, period=limit.get_expiry(), now=now
            )
            if not counted:
                return False
        return True

    def _pending(self, wanted: NewSubscriber) -> bool:
        """Record a subscription request and queue its confirmation mail; whether one was
        queued. New and unsubscribed addresses become pending; active and bounced ones are
        left alone (the operator reactivates a bounced address). A pending address with a
        mail still waiting gets no second one; once that was sent, a repeat queues a new
        link."""
        now = datetime.now(UTC)
        known = self.store.subscriber(wanted.email)
        if known is None:
            added, _ = self.store.add_subscribers([wanted], now=now, state=SubscriberState.PENDING)
            if not added:  # another request just added it
                return False
            return self.store.queue_confirmation(added[0].id, now=now)
        if known.state is SubscriberState.UNSUBSCRIBED:
            self.store.set_subscriber_state(
                known.id, SubscriberState.PENDING, now=now, by="subscriber"
            )
        elif known.state is not SubscriberState.PENDING:
            return False
        self.store.set_choices(known.id, wanted, now=now, by="subscriber")  # the latest ask
        return self.store.queue_confirmation(known.id, now=now)

    async def confirm(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        now = int(datetime.now(UTC).timestamp())
        subscriber_id = confirm_token_subscriber(self.secret, token, now=now)
        if subscriber_id is None:
            return self.page(
                N_("This link does not work"),
                N_(
                    "The confirmation link is not valid, or it has expired. Subscribe again "
                    "from the front page to get a new one."
                ),
                status=400,
            )
        if request.method != "POST":
            return self.page(
                N_("Confirm your subscription"),
                N_("One more step: confirm that you want {title} by email."),
                action=f"{self.site.base_url}confirm?token={token}",
                button=N_("Confirm"),
                title=self.site.title,
            )
        person = await asyncio.to_thread(self._activate, subscriber_id)
        if person is None:
            return self.page(
                N_("This link does not work"),
                N_("This subscription was removed. Subscribe again from the front page."),
                status=400,
            )
        self.subscribers_changed()  # their first digest may be due sooner than the next wake
        self.confirmation_queued()  # their welcome mail
        return self.page(
            N_("You are subscribed"),
            N_(
                "You get {choices}. A welcome mail with the latest is on its way; every mail "
                "has a link to change this or unsubscribe."
            ),
            choices=describe(person, self.settings, self.gettext()),
        )

    def _activate(self, subscriber_id: int) -> Subscriber | None:
        """Make a pending subscriber active and queue their welcome mail (once)."""
        found = self.store.subscribers_by_id([subscriber_id]).get(subscriber_id)
        if found is not None and found.state is SubscriberState.PENDING:
            now = datetime.now(UTC)
            self.store.set_subscriber_state(
                subscriber_id, SubscriberState.ACTIVE, now=now, by="subscriber"
            )
            self.store.queue_confirmation(subscriber_id, now=now, kind="welcome")
            # Deleted once, back by their own confirmed wish: imports may include them again.
            self.store.lift_suppression(suppression_key(self.secret, found.email))
            log.info("subscriber %d confirmed", subscriber_id)
        return found

    async def unsubscribe(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        subscriber_id = token_subscriber(self.secret, token)
        known = (
            None
            if subscriber_id is None
            else await asyncio.to_thread(self.store.subscribers_by_id, [subscriber_id])
        )
        if subscriber_id is None or not known:
            return self.page(
                N_("This link does not work"),
                N_(
                    "The unsubscribe link is not valid. Copy the whole link from the digest, "
                    "or reply to the digest to ask to be removed."
                ),
                status=400,
            )
        if request.method != "POST":
            return self.page(
                N_("Unsubscribe"),
                N_("Stop receiving {title} by email?"),
                action=f"{self.site.base_url}unsubscribe?token={token}",
                button=N_("Unsubscribe"),
                title=self.site.title,
            )
        # Mail providers may repeat the RFC 8058 one-click POST: a repeat is the same success.
        person = known[subscriber_id]
        if person.state is not SubscriberState.UNSUBSCRIBED:
            await asyncio.to_thread(
                self.store.set_subscriber_state,
                subscriber_id,
                SubscriberState.UNSUBSCRIBED,
                now=datetime.now(UTC),
                by="subscriber",
            )
            log.info("subscriber %d unsubscribed", subscriber_id)
        return self.page(
            N_("You are unsubscribed"),
            N_(
                "You will receive no more mail from {title}. If that was a mistake, "
                "subscribe again from the front page."
            ),
            title=self.site.title,
        )

    async def digest_view(self, request: Request) -> Response:
        from newsdrop.mail.compose import view_signature

        delivery_id = int(request.path_params["delivery_id"])
        given = request.query_params.get("sig", "")
        expected = view_signature(self.secret, delivery_id)
        if not _same(given, expected):
            return self.not_found()
        html = await asyncio.to_thread(self._digest_html, delivery_id)
        if html is None:
            return self.not_found()
        return HTMLResponse(html, headers={"cache-control": "private, max-age=3600"})

    def _digest_html(self, delivery_id: int) -> str | None:
        """The HTML part of that delivery's message, made again from its frozen contents."""
        from newsdrop.mail.compose import Composer

        delivery = self.store.delivery(delivery_id)
        if delivery is None:
            return None
        person = self.store.subscribers_by_id([delivery.subscriber_id]).get(delivery.subscriber_id)
        if person is None:
            return None
        data = Composer(self.settings, self.store).message(delivery, person, sent=delivery.changed)
        message = message_from_bytes(data, policy=email_policy.default)
        part = message.get_body(preferencelist=("html",))
        return None if part is None else str(part.get_content())


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def read_body(request: Request) -> dict[str, list[str]] | None:
    """An urlencoded form body (Guard bounds its size), each field with all its values;
    None when it has more fields than any form of ours."""
    body = await request.body()
    if "urlencoded" not in request.headers.get("content-type", ""):
        return {}
    try:
        return parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # "Max number of fields exceeded"
        return None
