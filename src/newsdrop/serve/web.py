"""The web server of `newsdrop run`: feeds/ over HTTP, and the pages subscribers use. Guard
(requests in progress, body limits) in front of HotFiles (the files every feed reader polls,
from memory) in front of a Starlette app: the archive, entry and day pages from disk,
subscribe, confirm, unsubscribe, the digest web view, /healthz and /metrics. Every answer
carries the same security headers; no path outside feeds/ can be read."""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from limits import parse as parse_rate
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from newsdrop import disk, media, templates
from newsdrop.config import ServerSettings, Settings
from newsdrop.errors import NewsdropError, UsageError
from newsdrop.model import Site, SubscriberState
from newsdrop.serve.files import FileCache, HotFiles, file_response, read_representation, safe_name
from newsdrop.serve.guard import Guard
from newsdrop.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from newsdrop.serve.metrics import Metrics
from newsdrop.serve.protocol import protocol_for
from newsdrop.store import Store
from newsdrop.subscribers import (
    MAX_NAME,
    confirm_token_subscriber,
    new_subscriber,
    token_subscriber,
)

log = logging.getLogger(__name__)


# On every answer, as uvicorn's default headers (``server_config``): the server's own
# 400s and 500s, the hot files answered in the protocol and every page alike.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # unsubscribe and view links carry tokens
}


MAX_FORM_FIELDS = 20  # the subscribe form has two


ERROR_PAGES = {  # what a refused request is told (the heading is the status's phrase)
    404: "There is nothing at this address.",
    405: "This address does not answer that method: pages answer GET, forms also POST.",
    408: "The request did not arrive in time; please try again.",
    413: "That request was too large for this address.",
}


def server_config(app: ASGIApp, settings: ServerSettings) -> uvicorn.Config:
    """How uvicorn serves the app (the caller owns the socket and the signals)."""
    proxies = list(settings.trusted_proxies)
    return uvicorn.Config(
        app,
        http=protocol_for(header_timeout=settings.header_timeout_s),
        ws="none",
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=settings.idle_timeout_s,
        server_header=False,
        headers=list(SECURITY_HEADERS.items()),  # on every answer, uvicorn's own included
        # No limit_concurrency: it counts connections, so idle ones shut everyone out;
        # Guard bounds the requests in progress instead.
    )


@dataclass(slots=True)
class Health:
    """What the service last did, for /healthz and `newsdrop status`."""

    started: datetime
    last_build: datetime | None = None
    last_build_error: str = ""
    last_ingest: datetime | None = None
    leader: bool = True  # this instance ingests and builds (one of several may)
    store_write: str = ""  # why the store could not be written at the last try, in words
    busy: set[str] = field(default_factory=set)  # blocking work under way (the service's)


class Web:
    """The Starlette side: each handler is a method; store calls go to threads."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        secret: bytes,
        cache: FileCache,
        metrics: Metrics,
        health: Health,
        confirmation_queued: Callable[[], None] = lambda: None,
        subscribers_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.secret = secret
        self.cache = cache
        self.metrics = metrics
        self.health = health
        self.confirmation_queued = confirmation_queued
        self.subscribers_changed = subscribers_changed
        self.site = Site.from_settings(settings)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_client = parse_rate(settings.server.subscribe_limit_per_client)
        self.overall = parse_rate(settings.server.subscribe_limit)
        self.metrics_allow = [
            ipaddress.ip_network(item, strict=False) for item in settings.server.metrics_allow
        ]
        self.store_trouble = ""  # what /healthz last logged about the store
        self.tasks: set[asyncio.Task[None]] = set()

    def app(self) -> Guard:
        routes = [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics_page, methods=["GET", "HEAD"]),
            Route("/subscribe", self.subscribe, methods=["GET", "HEAD", "POST"]),
            Route("/confirm", self.confirm, methods=["GET", "HEAD", "POST"]),
            Route("/unsubscribe", self.unsubscribe, methods=["GET", "HEAD", "POST"]),
            Route("/digest/{delivery_id:int}", self.digest_view, methods=["GET", "HEAD"]),
            Route("/{path:path}", self.file, methods=["GET", "HEAD"]),
        ]
        starlette = Starlette(routes=routes, exception_handlers={HTTPException: self.refused})
        hot = HotFiles(self.cache, starlette, cache_control=self.settings.server.cache_control)
        return Guard(hot, body_timeout=self.settings.server.header_timeout_s)

    async def refused(self, request: Request, exc: Exception) -> Response:
        """The page for a request refused by routing or a limit (404, 405, 408, 413...)."""
        if not isinstance(exc, HTTPException):  # registered for HTTPException alone
            raise exc
        heading = HTTPStatus(exc.status_code).phrase
        message = ERROR_PAGES.get(exc.status_code, exc.detail)
        return self.page(heading, message, status=exc.status_code, headers=exc.headers)

    # --- files from disk ---------------------------------------------------------------------

    async def file(self, request: Request) -> Response:
        root = self.settings.feeds_dir
        raw = request.scope.get("raw_path")
        name = safe_name(root, request.url.path, raw)
        rep = None if name is None else await asyncio.to_thread(read_representation, root, name)
        if rep is None:
            return self.page("Not found", "There is nothing at this address.", status=404)
        response = file_response(request, rep, self.settings.server.cache_control)
        if name and name.startswith("media/"):  # nothing published as media may run
            response.headers.update(media.headers(name))
        return response

    # --- health and metrics ------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """What is wrong, in words: no statement, path or exception text (an outsider may
        read this page); the service log has the details."""
        report: dict[str, Any] = {
            "started": self.health.started.isoformat(),
            "last_build": self.health.last_build.isoformat() if self.health.last_build else None,
            "last_ingest": self.health.last_ingest.isoformat() if self.health.last_ingest else None,
        }
        trouble = ""
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), timeout=5)
            report["store"] = "ok"
        except TimeoutError:
            report["store"] = "failing: the store gave no answer within 5 s"
            trouble = "no answer within 5 s"
        except NewsdropError as exc:
            report["store"] = "failing: the store does not answer; the service log says why"
            trouble = str(exc)
        if trouble != self.store_trouble:  # once per change, not once per probe
            if trouble:
                log.warning("/healthz: the store is failing: %s", trouble)
            self.store_trouble = trouble
        # Ready once the start-up build is done; an instance that does not lead serves the
        # leader's builds.
        built = self.health.last_build is not None or not self.health.leader
        if self.health.last_build_error:
            report["build"] = build_trouble(self.health.last_build_error)
        else:
            report["build"] = "ok" if built else "not yet"
        report["leader"] = self.health.leader
        report["working_on"] = sorted(self.health.busy)
        state = self.settings.state_dir
        if disk.is_full(state):  # the store (by default), the outbox and the status file
            report["disk"] = (
                f"{disk.shown(state, self.settings.home)} is full: free space there; until then "
                "nothing is sent or recorded"
            )
        else:
            report["disk"] = self.health.store_write or "ok"
        ok = report["store"] == "ok" and report["build"] == "ok" and report["disk"] == "ok"
        report["status"] = "ok" if ok else "failing"
        return JSONResponse(report, status_code=200 if ok else 503)

    async def metrics_page(self, request: Request) -> Response:
        host = request.client.host if request.client else ""
        if not address_in(host, self.metrics_allow):
            return self.page(
                "Forbidden",
                "/metrics answers only the addresses in [server] metrics_allow, and "
                f"{host or 'this client'} is not one of them.",
                status=403,
            )
        body = await asyncio.to_thread(self.metrics.render)
        return Response(body, headers={"content-type": METRICS_TYPE})

    # --- subscribers --------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        if request.method != "POST":
            return self.page(
                "Subscribe",
                f"Use the form on the front page of {self.site.title} to get its digest by email.",
            )
        client = request.client.host if request.client else "unknown"
        if not self.limiter.hit(self.per_client, "client", client) or not self.limiter.hit(
            self.overall, "all"
        ):
            return self.page(
                "Too many requests",
                "There have been too many subscription requests; please try again later.",
                status=429,
                headers={"retry-after": "600"},
            )
        form = await _form(request)
        if form is None:
            return self.page(
                "Not a subscription form",
                f"That form has more than {MAX_FORM_FIELDS} fields; use the form on the front "
                f"page of {self.site.title}.",
                status=400,
            )
        email = form.get("email", "").strip()
        try:
            wanted = new_subscriber(
                email,
                name=form.get("name", "").strip()[:MAX_NAME],
                timezone=self.settings.site.timezone,
                frequency="daily",
                tags="",
            )
        except UsageError:
            return self.page(
                "Not an email address",
                f"“{email[:200]}” is not an email address we can send to; please check it and "
                "try again.",
                status=400,
            )
        # Whatever the address's story, the answer is the same (no one learns who subscribes).
        if await asyncio.to_thread(self._pending, wanted):
            self.confirmation_queued()  # kept in the store: sent (and retried) from there
        hours = self.settings.server.confirm_hours
        return self.page(
            "Check your inbox",
            f"If {wanted.email} can receive digests from {self.site.title}, a message with a "
            f"link to confirm is on its way. The link works for {hours:g} hours; nothing is "
            "sent until you confirm.",
        )

    def _pending(self, wanted: Any) -> bool:
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
            self.store.set_subscriber_state(known.id, SubscriberState.PENDING, now=now)
        elif known.state is not SubscriberState.PENDING:
            return False
        return self.store.queue_confirmation(known.id, now=now)

    async def confirm(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        now = int(datetime.now(UTC).timestamp())
        subscriber_id = confirm_token_subscriber(self.secret, token, now=now)
        if subscriber_id is None:
            return self.page(
                "This link does not work",
                "The confirmation link is not valid, or it has expired. Subscribe again from "
                "the front page to get a new one.",
                status=400,
            )
        if request.method != "POST":
            return self.page(
                "Confirm your subscription",
                f"One more step: confirm that you want the {self.site.title} digest by email.",
                action=f"{self.site.base_url}confirm?token={token}",
                button="Confirm",
            )
        await asyncio.to_thread(self._activate, subscriber_id)
        self.subscribers_changed()  # their first digest may be due sooner than the next wake
        return self.page(
            "You are subscribed",
            f"Your first {self.site.title} digest comes with the next daily edition. Every "
            "digest has a link to unsubscribe.",
        )

    def _activate(self, subscriber_id: int) -> None:
        found = self.store.subscribers_by_id([subscriber_id]).get(subscriber_id)
        if found is not None and found.state is SubscriberState.PENDING:
            self.store.set_subscriber_state(
                subscriber_id, SubscriberState.ACTIVE, now=datetime.now(UTC)
            )
            log.info("subscriber %d confirmed", subscriber_id)

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
                "This link does not work",
                "The unsubscribe link is not valid. Copy the whole link from the digest, or "
                "reply to the digest to ask to be removed.",
                status=400,
            )
        if request.method != "POST":
            return self.page(
                "Unsubscribe",
                f"Stop receiving the {self.site.title} digest by email?",
                action=f"{self.site.base_url}unsubscribe?token={token}",
                button="Unsubscribe",
            )
        # Mail providers may repeat the RFC 8058 one-click POST: a repeat is the same success.
        person = known[subscriber_id]
        if person.state is not SubscriberState.UNSUBSCRIBED:
            await asyncio.to_thread(
                self.store.set_subscriber_state,
                subscriber_id,
                SubscriberState.UNSUBSCRIBED,
                now=datetime.now(UTC),
            )
            log.info("subscriber %d unsubscribed", subscriber_id)
        return self.page(
            "You are unsubscribed",
            f"You will receive no more {self.site.title} digests. If that was a mistake, "
            "subscribe again from the front page.",
        )

    # --- the digest web view -----------------------------------------------------------------

    async def digest_view(self, request: Request) -> Response:
        from newsdrop.mail.compose import view_signature

        delivery_id = int(request.path_params["delivery_id"])
        given = request.query_params.get("sig", "")
        expected = view_signature(self.secret, delivery_id)
        if not _same(given, expected):
            return self.page("Not found", "There is nothing at this address.", status=404)
        html = await asyncio.to_thread(self._digest_html, delivery_id)
        if html is None:
            return self.page("Not found", "There is nothing at this address.", status=404)
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

    # --- pages ---------------------------------------------------------------------------------

    def page(
        self,
        heading: str,
        message: str,
        *,
        status: int = 200,
        action: str = "",
        button: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        html = templates.render(
            self.settings.home,
            "service.html.j2",
            site=self.site,
            feeds=self.site.feed_urls,
            heading=heading,
            message=message,
            action=action,
            button=button,
        )
        extra = {"cache-control": "no-store", **(headers or {})}
        return HTMLResponse(html, status_code=status, headers=extra)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def _form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (Guard bounds its size); None when it has more fields than
    any form of ours."""
    body = await request.body()
    if "urlencoded" not in request.headers.get("content-type", ""):
        return {}
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # "Max number of fields exceeded"
        return None
    return {key: values[0] for key, values in fields.items()}


def address_in(
    host: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether a client address (after ``trusted_proxies``) is in one of the networks; an
    IPv4 address seen as IPv6 (``::ffff:127.0.0.1``) counts as itself."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


# The reasons a build fails that an operator can act on, by the words the OS uses.
_BUILD_REASONS = tuple(
    os.strerror(code)
    for code in (
        errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
        errno.EMFILE, errno.ENFILE, errno.ENOTDIR, errno.EISDIR,
    )
)  # fmt: skip


def build_trouble(error: str) -> str:
    """A failed build in words for /healthz: the OS's reason when there is one, never the
    path or the exception's text."""
    reason = next((r for r in _BUILD_REASONS if r in error), "")
    if reason:
        return (
            f"failing: the last build could not write feeds/ ({reason}); the service log says where"
        )
    return "failing: the last build failed; the service log says why"
