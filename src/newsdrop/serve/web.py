"""The web server of `newsdrop run`: feeds/ over HTTP, and the pages subscribers use.

Two layers. `HotFiles` answers GET and HEAD for the files every feed reader
polls (head feeds, tag feeds, the index) from memory: their bytes, a gzip copy
and the response headers are prepared once when a build writes the file, so a
request costs a dictionary look-up. Everything else goes to a Starlette app:
the archive, entry and day pages from disk (memory does not grow with the
archive), subscribe, confirm, unsubscribe, the digest web view, `/healthz` and
`/metrics`. Every answer carries the same security headers; no path outside
feeds/ can be read.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import hmac
import ipaddress
import logging
import mimetypes
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from newsdrop import disk, media, templates
from newsdrop.config import ServerSettings, Settings
from newsdrop.errors import NewsdropError, UsageError
from newsdrop.model import Site, SubscriberState
from newsdrop.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from newsdrop.serve.metrics import Metrics
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
# The body each route may receive, in bytes; a larger one answers 413 before it is read.
# (The console's uploads and the API get their own rows when they come.)
BODY_LIMITS = {
    "/subscribe": 8 * 1024,  # a form of a few hundred bytes
    "/confirm": 1024,  # the button's empty form
    "/unsubscribe": 1024,  # RFC 8058's "List-Unsubscribe=One-Click"
}
OTHER_BODY_LIMIT = 1024  # every other route reads no body
MAX_FORM_FIELDS = 20  # the subscribe form has two
MAX_HEAD = 64 * 1024  # request line and headers; browsers send a few KB
MAX_IN_FLIGHT = 1000  # requests the app works on at once (idle connections are not requests)
GZIP_FROM = 256  # smaller bodies grow when compressed
Headers = list[tuple[bytes, bytes]]


# --- files --------------------------------------------------------------------------------


def content_type(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    if base == "atom.xml" or base.endswith(".atom.xml"):
        return "application/atom+xml; charset=utf-8"
    if base == "rss.xml" or base.endswith(".rss.xml"):
        return "application/rss+xml; charset=utf-8"
    if base == "feed.json" or (name.startswith("tags/") and base.endswith(".json")):
        return "application/feed+json; charset=utf-8"
    guessed = mimetypes.guess_type(base)[0] or "application/octet-stream"
    textual = guessed.startswith("text/") or guessed.endswith(("xml", "json"))
    return f"{guessed}; charset=utf-8" if textual else guessed


@dataclass(frozen=True, slots=True)
class Representation:
    """One file ready to send: body, gzip copy (None: not worth it) and validators."""

    body: bytes
    gzipped: bytes | None
    etag: str
    modified: datetime  # whole seconds, as Last-Modified says it
    content_type: str
    stamp: tuple[int, int]  # (mtime_ns, size) of the file it was read from

    @property
    def etags(self) -> tuple[str, str]:
        return self.etag, self.etag[:-1] + '-gz"'  # distinct, as the bytes differ

    def headers(self, *, gzipped: bool, cache_control: str) -> dict[str, str]:
        return {
            "etag": self.etags[1] if gzipped else self.etag,
            "last-modified": format_datetime(self.modified, usegmt=True),
            "cache-control": cache_control,
            "vary": "Accept-Encoding",
        }


def read_representation(root: Path, name: str) -> Representation | None:
    """The file ``name`` under ``root`` (an already checked relative path), or None when it
    is not a regular file there. Reads through one descriptor, so that a file replaced by a
    build meanwhile gives its old or its new bytes and their own validators, never a mix."""
    try:  # O_NOFOLLOW: builds write real files; a symbolic link may lead out of feeds/
        with os.fdopen(os.open(root / name, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            body = handle.read()
    except OSError:
        return None
    kind = content_type(name)
    compressible = "charset=" in kind and len(body) >= GZIP_FROM
    return Representation(
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0) if compressible else None,
        etag=f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"',
        modified=datetime.fromtimestamp(info.st_mtime_ns // 1_000_000_000, UTC),
        content_type=kind,
        stamp=(info.st_mtime_ns, info.st_size),
    )


def is_hot(name: str) -> bool:
    """Files every reader polls: the top level of feeds/ and the tag feeds."""
    return "/" not in name or (name.startswith("tags/") and name.count("/") == 1)


def safe_name(root: Path, path: str, raw_path: bytes | None) -> str | None:
    """The file a URL path names under root, or None for anything that could leave it
    (``..``, encoded slashes, backslashes, NUL, hidden files, symlinks out)."""
    if raw_path is not None and any(bad in raw_path.lower() for bad in (b"%2f", b"%5c", b"%00")):
        return None
    name = path.lstrip("/")
    if not name or name.endswith("/"):
        name += "index.html"
    parts = name.split("/")
    if "\\" in name or "\x00" in name or any(p in ("", ".", "..") or p[0] == "." for p in parts):
        return None
    try:
        real = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root.resolve()) or not real.is_file():
        return None
    return name


class FileCache:
    """The hot files in memory. A refresh (in a thread) makes a new table and puts it in
    place in one assignment; the event loop reads whichever table is in place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Representation] = {}
        self.lock = threading.Lock()  # one refresh at a time: each starts from the last

    def refresh(self, names: Iterable[str] | None = None) -> list[str]:
        """Reload these names (None: every hot file on disk whose stamp moved); returns the
        names that changed. They switch at once: a reader never gets a new Atom feed beside
        the old RSS one. A file that moves again while being read (a build renaming the
        three head feeds) is read again. Blocking file I/O: call it from a thread."""
        with self.lock:
            files = dict(self.files)
            wanted = set(files) | set(self._hot_on_disk()) if names is None else set(names)
            changed: set[str] = set()
            for _ in range(3):
                moved = self._reload(files, [n for n in wanted if is_hot(n)])
                changed |= moved
                if not any(self._stamp(name) != _stamp_of(files.get(name)) for name in moved):
                    break
            if changed:
                self.files = files
            return sorted(changed)

    def _reload(self, files: dict[str, Representation], names: list[str]) -> set[str]:
        """Bring ``files`` in line with the disk for ``names``; the names that changed."""
        changed = set()
        for name in names:
            old = files.get(name)
            stamp = self._stamp(name)
            if old is not None and stamp is not None and old.stamp == stamp:
                continue
            fresh = read_representation(self.root, name)
            if fresh is None:
                if files.pop(name, None) is not None:
                    changed.add(name)
            else:
                files[name] = fresh
                changed.add(name)
        return changed

    def _stamp(self, name: str) -> tuple[int, int] | None:
        try:
            info = os.stat(self.root / name)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _hot_on_disk(self) -> Iterable[str]:
        # Never through a symbolic link: builds write real files, and a link may lead out.
        for top in _listing(self.root):
            if top.is_file(follow_symlinks=False):
                yield top.name
            elif top.is_dir(follow_symlinks=False) and top.name == "tags":
                for tag in _listing(Path(top.path)):
                    if tag.is_file(follow_symlinks=False):
                        yield f"tags/{tag.name}"


def _stamp_of(rep: Representation | None) -> tuple[int, int] | None:
    return None if rep is None else rep.stamp


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as items:
            return [item for item in items if not item.name.startswith(".")]
    except OSError:
        return []


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, rep: Representation
) -> bool:
    """RFC 9110 section 13.1: If-None-Match (weak comparison) wins over If-Modified-Since."""
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or bool(tags & set(rep.etags))
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return rep.modified <= since
    return False


def file_response(request: Request, rep: Representation, cache_control: str) -> Response:
    gz = rep.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
    headers = rep.headers(gzipped=gz, cache_control=cache_control)
    inm = request.headers.get("if-none-match")
    if not_modified(inm, request.headers.get("if-modified-since"), rep):
        return Response(status_code=304, headers=headers)
    body = rep.gzipped if gz and rep.gzipped is not None else rep.body
    if gz:
        headers["content-encoding"] = "gzip"
    headers["content-length"] = str(len(body))
    if request.method == "HEAD":
        return Response(b"", headers=headers, media_type=rep.content_type)
    return Response(body, headers=headers, media_type=rep.content_type)


class HotFiles:
    """Cached files answered without routing or a Request, at two levels: as raw ASGI in
    front of Starlette, and straight from the HTTP protocol (``BoundedHttp``), which skips
    uvicorn's per-request task. The header lists of each representation are made once,
    when the file changes."""

    def __init__(self, cache: FileCache, app: ASGIApp, *, cache_control: str) -> None:
        self.cache = cache
        self.app = app
        self.cache_control = cache_control
        self.prepared: dict[str, tuple[Representation, list[Headers]]] = {}
        self.heads: dict[tuple[int, bool], tuple[Headers, Headers, bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            answer = self.answer(scope.get("raw_path") or b"/", scope["headers"])
            if answer is not None:
                status, headers, body = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                if scope["method"] == "HEAD":
                    body = b""
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def answer(
        self, raw_path: bytes, request_headers: Headers
    ) -> tuple[int, Headers, bytes] | None:
        """(status, headers, body) for a GET of a cached file; None for anything else (an
        encoded path, a file not in memory), which goes the long way."""
        if b"%" in raw_path:
            return None
        name = raw_path[1:].decode("latin-1") or "index.html"
        rep = self.cache.files.get(name)
        if rep is None:
            return None
        encoding = inm = ims = None
        for key, value in request_headers:
            if key == b"accept-encoding":
                encoding = value
            elif key == b"if-none-match":
                inm = value
            elif key == b"if-modified-since":
                ims = value
        gz = (
            rep.gzipped is not None
            and encoding is not None
            and accepts_gzip(encoding.decode("latin-1"))
        )
        lists = self._headers(name, rep)
        if (inm is not None or ims is not None) and not_modified(
            None if inm is None else inm.decode("latin-1"),
            None if ims is None else ims.decode("latin-1"),
            rep,
        ):
            return 304, lists[gz], b""
        body = rep.gzipped if gz and rep.gzipped is not None else rep.body
        return 200, lists[2 + gz], body

    def head(self, status: int, headers: Headers, defaults: Headers, keep_alive: bool) -> bytes:
        """The response head as it travels. Made once for each header list and uvicorn's
        default headers (a new list each second, for Date): building it for every request
        was a tenth of an answer's time."""
        known = self.heads.get((id(headers), keep_alive))
        if known is not None and known[0] is headers and known[1] is defaults:
            return known[2]  # (the identity checks: an id may be reused once freed)
        parts = [STATUS_LINES[status]]
        for name, value in (*defaults, *headers):
            parts += [name, b": ", value, b"\r\n"]
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        if len(self.heads) >= 4096:  # bounded: four lists for each file in memory
            self.heads.clear()
        self.heads[(id(headers), keep_alive)] = (headers, defaults, head)
        return head

    def _headers(self, name: str, rep: Representation) -> list[Headers]:
        """[304 plain, 304 gzip, 200 plain, 200 gzip] header lists of this representation."""
        known = self.prepared.get(name)
        if known is not None and known[0] is rep:
            return known[1]
        lists: list[Headers] = []
        for status in (304, 200):
            for gz in (False, True):
                fields = rep.headers(gzipped=gz, cache_control=self.cache_control)
                if status == 200:
                    body = rep.gzipped if gz and rep.gzipped is not None else rep.body
                    fields["content-type"] = rep.content_type
                    fields["content-length"] = str(len(body))
                    if gz:
                        fields["content-encoding"] = "gzip"
                lists.append([(k.encode(), v.encode()) for k, v in fields.items()])
        self.prepared[name] = (rep, lists)
        return lists


ERROR_PAGES = {  # what a refused request is told (the heading is the status's phrase)
    404: "There is nothing at this address.",
    405: "This address does not answer that method: pages answer GET, forms also POST.",
    408: "The request did not arrive in time; please try again.",
    413: "That request was too large for this address.",
}
STATUS_LINES = {
    code: f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\n".encode() for code in (200, 304, 408, 431)
}


class BoundedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with four changes:

    - a bound on the request head (request line and headers): httptools itself buffers a
      head of any size, so one client could make the server hold megabytes. Past MAX_HEAD
      bytes without the end of the head the answer is 431 and the connection closes; a
      body that comes with its head is the route's business (BODY_LIMITS), not the head's;
    - a header timeout (``[server] header_timeout_s``; uvicorn has no setting for it): the
      head must be complete within it after the connection opens, or after the first byte
      of the next request on a kept-alive one (until then the idle timeout, uvicorn's
      ``timeout_keep_alive``, runs). Else 408 (nothing, to a connection that sent nothing)
      and the connection closes, so idle and slow connections cost a socket for seconds;
    - a GET or HEAD of a file held in memory (``hot``) is answered right here, in the
      parser's callback, without the ASGI task, scope and event uvicorn makes for each
      request; everything else goes to the app as usual.
    - uvicorn's ``limit_concurrency`` is not used (it counts connections, so idle ones shut
      everyone out): ``Guard`` bounds the requests in progress instead.

    HttpToolsProtocol is uvicorn's, not a public API: this class is the one place that
    relies on its internals, pyproject.toml bounds uvicorn's version, and
    tests/serve/test_uvicorn_contract.py fails when what this class relies on changes.
    """

    hot: HotFiles | None = None  # set by ``protocol_for``
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        self.heads = 0  # request heads completed on this connection
        self.in_head = True
        self.began = False  # a request head has begun and is not complete
        self.answered = False  # the current request was answered by the fast path
        self.head_timer: asyncio.TimerHandle | None = None  # runs while a head is awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.in_head:
            super().data_received(data)
        elif len(data) <= MAX_HEAD - self.head_bytes:
            self.head_bytes += len(data)
            super().data_received(data)
        else:  # feed what a head may hold; a head that ends inside it lets the rest through
            room, heads = MAX_HEAD - self.head_bytes, self.heads
            self.head_bytes = MAX_HEAD
            super().data_received(data[:room])
            if self.transport.is_closing():
                return
            if self.heads == heads:
                self._refuse(431, "Request line or headers too large")
                return
            self.data_received(data[room:])
            return
        if self.began and self.head_timer is None and not self.transport.is_closing():
            self._arm_head_timer()  # a head is under way (on a kept-alive connection)

    def on_message_begin(self) -> None:
        self.began = True  # the first byte of a request: a head is under way
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self.began = self.in_head = False
        self.head_bytes = 0
        self.heads += 1
        self.answered = self._fast()
        if not self.answered:
            super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # the previous answer is still being made: not the client's
            return
        if self.began:
            self._refuse(408, f"The request head did not arrive within {self.header_timeout:g} s")
        else:  # a connection opened ahead of need, or an idle one: no answer is due
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        parts = [STATUS_LINES[status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts.append(
            b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.transport.write(b"".join(parts))
        self.transport.close()

    def _fast(self) -> bool:
        method = self.parser.get_method()
        if self.hot is None or method not in (b"GET", b"HEAD") or self.parser.should_upgrade():
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # a pipelined request behind a slow one keeps its order
        if any(k in (b"content-length", b"transfer-encoding") for k, _ in self.headers):
            return False  # a GET with a body: the long way, which reads it
        answer = self.hot.answer(self.url.split(b"?", 1)[0], self.headers)
        if answer is None:
            return False
        status, headers, body = answer
        keep_alive = self.parser.get_http_version() == "1.1" and self.parser.should_keep_alive()
        head = self.hot.head(status, headers, self.server_state.default_headers, keep_alive)
        if method == b"GET" and body:
            self.transport.writelines((head, body))  # one writev: the body is not copied
        else:
            self.transport.write(head)
        self.server_state.total_requests += 1
        if not keep_alive:
            self.transport.close()
        return True

    def on_body(self, body: bytes) -> None:
        if not self.answered:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.answered:
            self.answered = False
            if not self.transport.is_closing():  # as uvicorn does after a response
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
        else:
            super().on_message_complete()
        self.in_head = True


def protocol_for(hot: HotFiles, *, header_timeout: float) -> type[BoundedHttp]:
    """The protocol class for uvicorn's ``http=``, bound to this server's hot files."""
    return type("NewsdropHttp", (BoundedHttp,), {"hot": hot, "header_timeout": header_timeout})


def server_config(app: HotFiles, settings: ServerSettings) -> uvicorn.Config:
    """How uvicorn serves the app (the caller owns the socket and the signals)."""
    proxies = list(settings.trusted_proxies)
    return uvicorn.Config(
        app,
        http=protocol_for(app, header_timeout=settings.header_timeout_s),
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
        limit = BODY_LIMITS.get(scope["path"], OTHER_BODY_LIMIT)
        for key, value in scope["headers"]:
            if key == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _plain(send, 413, f"The request body is over {limit} bytes.")
                return
        self.in_flight += 1
        try:
            await self.app(scope, self._bounded(receive, limit), send)
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
    headers.append((b"content-length", str(len(body)).encode()))
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- the application -------------------------------------------------------------------------


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

    def app(self) -> HotFiles:
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
        guarded = Guard(starlette, body_timeout=self.settings.server.header_timeout_s)
        return HotFiles(self.cache, guarded, cache_control=self.settings.server.cache_control)

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
