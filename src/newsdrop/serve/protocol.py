"""The one place that relies on uvicorn's internals: its httptools protocol, bounded. uvicorn
has no public setting for a bound on the request head or for a header timeout; this subclass
adds both and nothing else. pyproject.toml bounds uvicorn's version, and
tests/serve/test_uvicorn_contract.py fails when what it relies on changes."""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from newsdrop.serve.headers import SECURITY_FIELDS

_NOT_ASCII = re.compile(rb"[\x80-\xff]")


def _percent(byte: re.Match[bytes]) -> bytes:
    return b"%%%02X" % byte.group()[0]


MAX_HEAD = 64 * 1024  # request line and headers; browsers send a few KB


STATUS_LINES = {
    code: f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\n".encode() for code in (400, 408, 431)
}


class BoundedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with two bounds uvicorn has no setting for:

    - on the request head (request line and headers): httptools itself buffers a head of
      any size, so one client could make the server hold megabytes. Past MAX_HEAD bytes
      without the end of the head the answer is 431 and the connection closes; a body that
      comes with its head is the route's business (BODY_LIMITS), not the head's;
    - on the time a head may take (``[server] header_timeout_s``): the head must be
      complete within it after the connection opens, or after the first byte of the next
      request on a kept-alive one (until then the idle timeout, uvicorn's
      ``timeout_keep_alive``, runs). Else 408 (nothing, to a connection that sent nothing)
      and the connection closes, so idle and slow connections cost a socket for seconds.

    Its own answers (431, 408, and uvicorn's 400 for a request it cannot parse) carry the
    security headers. Every request then goes to the app as uvicorn sends it. (uvicorn's
    ``limit_concurrency`` is not used: it counts connections, so idle ones shut everyone
    out; ``Guard`` bounds the requests in progress instead.)
    """

    header_timeout: float = 10.0  # set by ``protocol_for``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        self.heads = 0  # request heads completed on this connection
        self.in_head = True
        self.in_request_line = True  # until its line feed: see _encoded_request_line
        self.began = False  # a request head has begun and is not complete
        self.head_timer: asyncio.TimerHandle | None = None  # runs while a head is awaited

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.in_request_line:
            data = self._encoded_request_line(data)
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

    def _encoded_request_line(self, data: bytes) -> bytes:
        """A path may come in raw UTF-8 (a tag feed's name as a reader sees it, from a client
        that does not encode it); httptools refuses such a request line. Its bytes over 127
        percent-encoded first, the raw and the encoded form are one request."""
        end = data.find(b"\n")
        if end < 0:
            return _NOT_ASCII.sub(_percent, data)
        self.in_request_line = False
        return _NOT_ASCII.sub(_percent, data[:end]) + data[end:]

    def on_message_begin(self) -> None:
        self.began = True  # the first byte of a request: a head is under way
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self.began = self.in_head = False
        self.head_bytes = 0
        self.heads += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = self.in_request_line = True

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

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, with the security headers."""
        self._refuse(400, msg)

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        parts = [STATUS_LINES[status]]
        for name, value in SECURITY_FIELDS:
            parts += [name, b": ", value, b"\r\n"]
        parts.append(
            b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.transport.write(b"".join(parts))
        self.transport.close()


def protocol_for(*, header_timeout: float) -> type[BoundedHttp]:
    """The protocol class for uvicorn's ``http=``, with this server's header timeout."""
    return type("NewsdropHttp", (BoundedHttp,), {"header_timeout": header_timeout})
