"""ASGI, outermost: the bound on requests in progress (every request, hot files included) and
each route's body limit."""

from __future__ import annotations

import asyncio
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsdrop.serve.headers import SECURITY_FIELDS

log = logging.getLogger(__name__)


# The body each route may receive, by the path's first segment, in bytes; a larger one
# answers 413 before it is read. (The console's uploads and the API get their own rows.)
BODY_LIMITS = {
    "/subscribe": 8 * 1024,  # the choices form: a few hundred bytes, and the topics
    "/manage": 8 * 1024,  # the same form
    "/account": 2 * 1024,  # a new address, or the box that says "delete everything"
    "/address": 1024,  # the button's empty form
    "/confirm": 1024,  # the button's empty form
    "/unsubscribe": 1024,  # RFC 8058's "List-Unsubscribe=One-Click"
}


OTHER_BODY_LIMIT = 1024  # every other route reads no body


MAX_IN_FLIGHT = 1000  # requests the app works on at once (idle connections are not requests)


class Guard:
    """ASGI, in front of the Starlette app: bounds the requests in progress (past
    MAX_IN_FLIGHT, 503 at once) and each route's body (BODY_LIMITS: a declared length
    over it answers 413 before a byte is read, a chunked one when it gets there), and
    waits at most ``body_timeout`` for each piece of a body."""

    def __init__(self, app: ASGIApp, *, body_timeout: float) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.in_flight = 0
        self.refusing = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= MAX_IN_FLIGHT:
            if not self.refusing:  # once per busy spell, not once per refused request
                log.warning("%d requests in progress: answering 503 to more", self.in_flight)
                self.refusing = True
            await _plain(send, 503, "The server is busy; please try again in a moment.", 1)
            return
        self.refusing = False
        first_segment = "/" + scope["path"][1:].partition("/")[0]
        limit = BODY_LIMITS.get(first_segment, OTHER_BODY_LIMIT)
        body = False  # whether a body comes (HTTP/1.1: by its length, or chunked)
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await _plain(send, 413, f"The request body is over {limit} bytes.")
                    return
                body = value != b"0"
            elif key == b"transfer-encoding":
                body = True
        self.in_flight += 1
        try:  # (a request without a body, most of them, is spared the wrapper)
            await self.app(scope, self._bounded(receive, limit) if body else receive, send)
        finally:
            self.in_flight -= 1

    def _bounded(self, receive: Receive, limit: int) -> Receive:
        seen = 0
        done = False  # the whole body came: later calls wait for a disconnect, unbounded

        async def bounded() -> Message:
            nonlocal seen, done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                raise HTTPException(408, "The request body stopped arriving.") from None
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"The request body is over {limit} bytes.")
            done = not message.get("more_body", False)
            return message

        return bounded


async def _plain(send: Send, status: int, text: str, retry_after: int = 0) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
    headers += SECURITY_FIELDS
    headers.append((b"content-length", str(len(body)).encode()))
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
