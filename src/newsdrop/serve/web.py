"""The web server of `newsdrop run`: feeds/ over HTTP, and the pages subscribers use. Guard
(requests in progress, body limits) in front of HotFiles (the files every feed reader polls,
from memory) in front of a Starlette app: the archive, entry and day pages from disk,
subscribe, confirm, unsubscribe, manage, account, the digest web view, /healthz and /metrics. Every answer
with a body carries the security headers (serve/headers.py); no path outside feeds/ can be
read."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

import uvicorn
from limits import parse as parse_rate
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from newsdrop import disk, media
from newsdrop.config import ServerSettings, Settings
from newsdrop.errors import NewsdropError
from newsdrop.i18n import N_
from newsdrop.model import Site
from newsdrop.serve.account import AccountPages
from newsdrop.serve.files import FileCache, HotFiles, file_response, read_representation, safe_name
from newsdrop.serve.guard import Guard
from newsdrop.serve.headers import secured
from newsdrop.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from newsdrop.serve.metrics import Metrics
from newsdrop.serve.protocol import protocol_for
from newsdrop.store import Store

log = logging.getLogger(__name__)


ERROR_PAGES = {  # what a refused request is told (the heading is the status's phrase)
    404: N_("There is nothing at this address."),
    405: N_("This address does not answer that method: pages answer GET, forms also POST."),
    408: N_("The request did not arrive in time; please try again."),
    413: N_("That request was too large for this address."),
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


class Web(AccountPages):
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
            Route("/manage/{token}", self.manage, methods=["GET", "HEAD", "POST"]),
            Route("/me/{token}/digests.atom", self.private_feed, methods=["GET", "HEAD"]),
            Route("/account/{token}", self.account, methods=["GET", "HEAD", "POST"]),
            Route("/account/{token}/data.json", self.account_data, methods=["GET", "HEAD"]),
            Route("/address/{token}", self.new_address, methods=["GET", "HEAD", "POST"]),
            Route("/digest/{delivery_id:int}", self.digest_view, methods=["GET", "HEAD"]),
            Route("/{path:path}", self.file, methods=["GET", "HEAD"]),
        ]
        starlette = Starlette(routes=routes, exception_handlers={HTTPException: self.refused})
        hot = HotFiles(
            self.cache, secured(starlette), cache_control=self.settings.server.cache_control
        )
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
            return self.not_found()
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

    # --- the digest web view -----------------------------------------------------------------

    # --- pages ---------------------------------------------------------------------------------


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
