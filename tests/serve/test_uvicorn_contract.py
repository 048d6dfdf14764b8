"""What serve/protocol.py's BoundedHttp relies on in uvicorn's httptools protocol, which is not a public
API: the version bound in pyproject.toml, the hooks it overrides and the state it reads,
and the behaviour they make together over real connections. When an upgrade of uvicorn
changes any of it, this file fails before a user's server does."""

from __future__ import annotations

import inspect
import socket
import time
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from newsdrop.serve.protocol import MAX_HEAD, BoundedHttp

from appserver import AppServer

ROOT = Path(__file__).resolve().parents[2]

RELIED_ON = {  # method: its parameters, as BoundedHttp calls or overrides it
    "__init__": ["self", "config", "server_state", "app_state", "_loop"],
    "connection_made": ["self", "transport"],
    "connection_lost": ["self", "exc"],
    "data_received": ["self", "data"],
    "on_message_begin": ["self"],
    "on_headers_complete": ["self"],
    "on_message_complete": ["self"],
    "send_400_response": ["self", "msg"],
}
STATE = ("self.loop", "self.transport", "self.cycle", "self.server_state")  # read by it


def test_uvicorn_is_pinned_below_the_next_minor_version_and_the_installed_one_is_inside() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pin = next(Requirement(d) for d in project["dependencies"] if d.startswith("uvicorn"))
    assert any(spec.operator == "<" for spec in pin.specifier), pin  # an upper bound
    assert version("uvicorn") in pin.specifier, (version("uvicorn"), str(pin))


def test_the_hooks_and_state_boundedhttp_relies_on_are_there() -> None:
    for name, parameters in RELIED_ON.items():
        method = getattr(HttpToolsProtocol, name)
        assert list(inspect.signature(method).parameters) == parameters, name
        assert name in vars(HttpToolsProtocol), f"{name} moved out of HttpToolsProtocol"
    source = inspect.getsource(HttpToolsProtocol)
    for attribute in STATE:
        assert f"{attribute} =" in source or f"{attribute}:" in source, attribute
    # The cycle's flag that says an answer is complete, and the server's shared state.
    assert "self.response_complete = " in inspect.getsource(
        __import__("uvicorn.protocols.http.httptools_impl", fromlist=["x"]).RequestResponseCycle
    )
    assert issubclass(BoundedHttp, HttpToolsProtocol)


@pytest.fixture
def server(home: Path) -> Iterator[AppServer]:
    (home / "feeds" / "atom.xml").write_text("<feed/>" * 100)
    env = {"NEWSDROP_SERVER__HEADER_TIMEOUT_S": "0.5", "NEWSDROP_SERVER__IDLE_TIMEOUT_S": "2"}
    with AppServer(home, env) as running:
        yield running


def read_all(conn: socket.socket, *, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long it took to close."""
    conn.settimeout(timeout)
    started, data = time.monotonic(), b""
    while chunk := conn.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    server: AppServer,
) -> None:
    with server.connect() as conn:
        data, waited = read_all(conn, timeout=5)
    assert data == b"" and 0.3 < waited < 2.5


def test_half_a_head_gets_408_with_the_security_headers_after_the_header_timeout(
    server: AppServer,
) -> None:
    with server.connect() as conn:
        conn.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n")
        data, waited = read_all(conn, timeout=5)
    assert data.startswith(b"HTTP/1.1 408 ") and 0.3 < waited < 2.5
    assert b"x-content-type-options: nosniff" in data and b"content-security-policy:" in data


def test_a_kept_alive_connection_waits_the_idle_timeout_then_the_header_timeout(
    server: AppServer,
) -> None:
    request = b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    with server.connect() as conn:
        conn.sendall(request)
        conn.settimeout(5)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.0)  # longer than the header timeout, shorter than the idle timeout
        conn.sendall(b"GET /atom.xml HTTP/1.1\r\n")  # half of the next head
        data, waited = read_all(conn, timeout=5)
    assert data.startswith(b"HTTP/1.1 408 ") and waited < 2.5
    with server.connect() as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.settimeout(5)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
        data, waited = read_all(conn, timeout=5)  # idle from here: uvicorn's keep-alive
    assert data == b"" and 1.5 < waited < 4


def test_a_head_over_the_bound_is_431_but_a_large_body_is_the_routes_413(
    server: AppServer,
) -> None:
    with server.connect() as conn:
        conn.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEAD)
        data, _ = read_all(conn, timeout=5)
    assert data.startswith(b"HTTP/1.1 431 ") and b"x-content-type-options: nosniff" in data
    body = b"email=" + b"a" * 200_000
    with server.connect() as conn:  # head and body in one write, as clients send them
        conn.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        conn.settimeout(5)
        assert conn.recv(65536).startswith(b"HTTP/1.1 413 ")


def test_the_400s_uvicorn_sends_itself_carry_the_security_headers(server: AppServer) -> None:
    with server.connect() as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        data, _ = read_all(conn, timeout=5)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"x-content-type-options: nosniff" in data and b"content-security-policy:" in data


def test_a_head_begun_behind_a_complete_request_gets_the_header_timeout_too(
    server: AppServer,
) -> None:
    with server.connect() as conn:  # one write: a whole request, then half of the next
        conn.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\nGET /atom.xml HTTP/1.1\r\n")
        data, waited = read_all(conn, timeout=5)
    assert data.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 408 " in data
    assert waited < 2  # the header timeout (0.5 s), not the idle timeout (2 s)


def answers(conn: socket.socket, count: int, *, timeout: float) -> list[bytes]:
    """The status lines of the next ``count`` answers on a connection (bodies skipped)."""
    conn.settimeout(timeout)
    found: list[bytes] = []
    data = b""
    while len(found) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
            continue
        head = data[:head_end]
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(data) < head_end + 4 + length:
            chunk = conn.recv(65536)
            if not chunk:
                return found
            data += chunk
        found.append(head.split(b"\r\n")[0])
        data = data[head_end + 4 + length :]
    return found


def test_a_connection_after_pipelined_requests_stays_open_for_a_client_asking_every_second(
    server: AppServer,
) -> None:
    """The old answer-in-the-parser path left the keep-alive timer of two pipelined
    requests running: the connection closed 2 s later (the idle timeout here) under a
    client asking once a second, and the requests sent then got no answer."""
    request = b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    with server.connect() as conn:
        conn.sendall(request * 2)
        assert answers(conn, 2, timeout=5) == [b"HTTP/1.1 200 OK"] * 2
        for _ in range(5):  # 5 s: past the idle timeout counted from the pipelined pair
            time.sleep(0.2)  # (shorter than the header timeout of 0.5 s: not idle)
            conn.sendall(request)
            assert answers(conn, 1, timeout=5) == [b"HTTP/1.1 200 OK"]
            time.sleep(0.8)
