"""The security headers, and the answers that carry them. Every answer with a body carries
them: the pages and error answers (``secured``, around the Starlette app), the hot files'
prepared 200s (serve/files.py), Guard's and the protocol's own refusals. A 304 has no body
to protect, so the answer every feed reader polls for most is spared them (they are not
uvicorn's default headers, which every answer would pay for)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # unsubscribe, manage and view links carry tokens
}

SECURITY_FIELDS = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


def with_script(*hashes: str) -> str:
    """The CSP of a page whose inline scripts are these (``'sha256-...'``) and no others."""
    return CSP.replace("default-src 'none';", f"default-src 'none'; script-src {' '.join(hashes)};")


def secured(app: ASGIApp) -> ASGIApp:
    """``app`` with the security headers on every answer; an answer that sets a header of its
    own (a page with a script, a media file) keeps its own."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = {name for name, _ in message.get("headers", [])}
                extra = [field for field in SECURITY_FIELDS if field[0] not in own]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await app(scope, receive, send_secured)

    return with_headers
