"""`newsdrop run` against hostile clients and a full disk (issue #6): oversized and
malformed requests, slow clients, a subscribe burst, secrets kept out of every
output, and feeds/ on a tiny file system."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import httpx
import pytest
import sqlalchemy as sa
from starlette.responses import PlainTextResponse, Response

from newsdrop.config import instance_secret, load_settings
from newsdrop.errors import StoreError
from newsdrop.serve import guard as guard_module
from newsdrop.serve.web import Web
from newsdrop.store import Store
from newsdrop.subscribers import unsubscribe_token

from appserver import AppServer
from conftest import CliRun
from live import RunningService, publish, served_entries, until
from small_disk import needs_root, resize, small_disk


@pytest.fixture
def service(home: Path, smtp: SmtpServer) -> Iterator[RunningService]:
    env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD}
    running = RunningService(home, env=env).start()
    yield running
    running.close()


def raw(port: int, request: bytes, *, timeout: float = 5) -> bytes:
    """Send bytes as they are; the first bytes of the answer (b'' if the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        try:
            return conn.recv(200)
        except (ConnectionResetError, TimeoutError):
            return b""


def status_of(answer: bytes) -> int:
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def test_malformed_and_oversized_requests_get_4xx_and_the_service_goes_on(
    service: RunningService,
) -> None:
    port = service.port
    cases = {
        "huge header": b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 200_000
        + b"\r\n\r\n",
        "many headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 20_000 + b"\r\n",
        "huge query": b"GET /unsubscribe?token=" + b"9" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "invalid utf-8 path": b"GET /\xff\xfe.html HTTP/1.1\r\nHost: x\r\n\r\n",
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(100),
        "bad method": b"BREW /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for what, request in cases.items():
        answer = raw(port, request)
        assert answer == b"" or 400 <= status_of(answer) < 500, (what, answer)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        assert service.http.request(method, "/atom.xml").status_code == 405, method
    big_body = service.http.post(
        "/subscribe",
        content=b"email=" + b"a" * 2_000_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big_body.status_code == 413  # the route's limit, even when it came with the head
    assert service.http.get("/healthz").status_code == 200


def test_slow_clients_do_not_starve_the_others(service: RunningService) -> None:
    idle = []
    try:
        for _ in range(200):  # each sends half a request line and then nothing
            conn = socket.create_connection(("127.0.0.1", service.port), timeout=5)
            conn.sendall(b"GET /atom.xml HT")
            idle.append(conn)
        started = time.monotonic()
        assert service.http.get("/atom.xml").status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for conn in idle:
            conn.close()


def test_a_subscribe_burst_is_limited_and_the_service_stays_responsive(
    home: Path, smtp: SmtpServer
) -> None:
    env = {
        **smtp.env(),
        "NEWSDROP_SMTP_PASSWORD": PASSWORD,
        "NEWSDROP_SERVER__SUBSCRIBE_LIMIT": "20/minute",
        "NEWSDROP_SERVER__SUBSCRIBE_LIMIT_PER_CLIENT": "1000/minute",  # one client here
    }
    service = RunningService(home, env=env).start()
    try:

        def attempt(n: int) -> int:
            return service.http.post("/subscribe", data={"email": f"b{n}@example.org"}).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(attempt, range(200)))
            started = time.monotonic()
            assert service.http.get("/atom.xml").status_code == 200
            assert time.monotonic() - started < 1.0
        assert answers.count(200) == 20 and answers.count(429) == 180
    finally:
        service.close()


def test_secrets_never_appear_in_logs_pages_or_status(
    home: Path, run: CliRun, smtp: SmtpServer
) -> None:
    wrong = "wrong-password-Zq81"  # the server refuses it: errors are logged
    env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": wrong, "NEWSDROP_DIGEST__INTERVAL_SECONDS": "2"}
    run("subscribers", "add", "ada@example.org")
    service = RunningService(home, env=env).start()
    try:
        publish(home / "seeds", "a.md", "---\ntitle: Secretive\n---\nText.\n")
        until(lambda: served_entries(service).get("Secretive"), timeout=5, what="the entry")
        until(lambda: "sending paused" in service.logs(), timeout=15, what="the AUTH failure")
        pages = [service.http.get(p).text for p in ("/", "/healthz", "/metrics", "/nope")]
        pages.append(service.http.post("/subscribe", data={"email": "x@example.org"}).text)
    finally:
        service.close()
    secret = (home / "state" / "secret").read_text().strip()
    status = run("status").output + run("status", "--json").output + run("digest", "status").output
    for text in [service.logs(), status, *pages]:
        assert wrong not in text and secret not in text


@needs_root
def test_a_full_disk_fails_the_build_keeps_serving_and_recovers(
    home: Path, smtp: SmtpServer
) -> None:
    feeds = home / "feeds"
    with small_disk(feeds, "400k"):
        env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD}
        service = RunningService(home, env=env).start()
        try:
            publish(home / "seeds", "small.md", "---\ntitle: Before the disk filled\n---\nOk.\n")
            until(
                lambda: served_entries(service).get("Before the disk filled"), timeout=5, what="1"
            )
            for n in range(8):  # pages of these fill 400 KB
                body = f"Long story {n}. " * 6000
                publish(home / "seeds", f"big-{n}.md", f"---\ntitle: Big {n}\n---\n{body}\n")
            until(
                lambda: service.http.get("/healthz").status_code == 503,
                timeout=10,
                what="the failed build to show in /healthz",
            )
            health = service.http.get("/healthz").json()
            assert "No space left on device" in health["build"]
            assert "Before the disk filled" in served_entries(service)  # the previous feeds
            resize(feeds, "20m")
            publish(home / "seeds", "after.md", "---\ntitle: After the space came back\n---\nOk.\n")
            until(
                lambda: served_entries(service).get("After the space came back"),
                timeout=10,
                what="a build once space is back",
            )
            assert service.http.get("/healthz").status_code == 200
            assert {f"Big {n}" for n in range(8)} <= set(served_entries(service))
        finally:
            service.close()


def test_bad_tokens_forms_and_bodies_get_a_4xx_page_and_no_traceback(
    home: Path, run: CliRun, service: RunningService
) -> None:
    run("subscribers", "add", "ada@example.org")
    secret = instance_secret(load_settings(home))
    real = unsubscribe_token(secret, 1)
    http = service.http
    for path in [
        "/unsubscribe?token=%C2%B2.x",  # '²' is a digit to str.isdigit(), not to int()
        "/confirm?token=1.%C2%B2.x",
        "/unsubscribe?token=" + real.replace("1.", "%D9%A1.", 1),  # Arabic-Indic one
        "/confirm?token=%EF%BC%91.%EF%BC%91.x",  # fullwidth digits
    ]:
        for method in ("GET", "POST"):
            answer = http.request(method, path)
            assert answer.status_code == 400, (method, path, answer.text)
            assert "This link does not work" in answer.text
    assert http.post(path_of(real)).status_code == 200  # the real token still works
    many = {f"f{n}": "x" for n in range(130)} | {"email": "bob@example.org"}
    answer = http.post("/subscribe", data=many)
    assert answer.status_code == 400 and "more than 120 fields" in answer.text
    form = {"content-type": "application/x-www-form-urlencoded"}
    for size in (9_000, 100_000, 2_000_000):  # over the form's 8 KB, with a Content-Length
        answer = http.post("/subscribe", content=b"email=" + b"a" * size, headers=form)
        assert answer.status_code == 413, size
    chunked = http.post("/subscribe", content=iter([b"email=", b"a" * 9_000]), headers=form)
    assert chunked.status_code == 413  # no Content-Length: counted as it arrives
    one_click = http.post(path_of(real), content=b"x" * 5_000, headers=form)
    assert one_click.status_code == 413  # each route has its own limit
    assert http.get("/healthz").status_code == 200
    logs = service.logs()
    assert "Traceback" not in logs and "Exception in ASGI application" not in logs


def path_of(token: str) -> str:
    return f"/unsubscribe?token={token}"


def test_every_answer_carries_the_security_headers(service: RunningService) -> None:
    answers = {
        "405": service.http.request("DELETE", "/atom.xml"),
        "404": service.http.get("/nothing-here.html"),
        "413": service.http.post("/subscribe", content=b"a" * 10_000),
        "200 hot": service.http.get("/atom.xml"),
        "200 page": service.http.get("/subscribe"),
    }
    for what, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert "default-src 'none'" in answer.headers.get("content-security-policy", ""), what
        assert answer.headers.get_list("content-security-policy") == [
            answer.headers["content-security-policy"]
        ], what  # once, not twice
    assert answers["405"].status_code == 405 and "GET" in answers["405"].headers["allow"]
    # A 304 has no body to protect: the answer feed readers poll for most is spared them.
    etag = answers["200 hot"].headers["etag"]
    unchanged = service.http.get("/atom.xml", headers={"if-none-match": etag})
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == etag
    assert "content-security-policy" not in unchanged.headers
    for what, request in {
        "uvicorn's 400": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "431": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    }.items():
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as conn:
            conn.sendall(request)
            head = conn.recv(4096)
        assert status_of(head) in (400, 431), what
        assert b"x-content-type-options: nosniff" in head, what
        assert b"content-security-policy: default-src 'none'" in head, what


def test_a_500_carries_the_security_headers_and_no_traceback(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Web, request: object) -> None:
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(Web, "digest_view", broken)
    with AppServer(home) as server:
        answer = server.http.get("/digest/1?sig=x")
    assert answer.status_code == 500
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "a bug in a handler" not in answer.text and "Traceback" not in answer.text


def test_idle_and_half_head_connections_keep_no_client_from_any_page(
    home: Path, smtp: SmtpServer
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2_000 + 200 + 200  # this test's sockets and some to spare
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard limit on open files is {hard}; this test needs {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD}
    service = RunningService(home, env={**env, "NEWSDROP_SERVER__HEADER_TIMEOUT_S": "6"})
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # a common default, inherited
    try:
        service.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    assert "open files: the limit is raised from 1024" in service.logs()
    idle: list[socket.socket] = []
    try:
        publish(home / "seeds", "quiet.md", "---\ntitle: Quiet\n---\nA quiet day.\n")
        until(lambda: served_entries(service).get("Quiet"), timeout=10, what="the entry")
        opened = time.monotonic()
        for n in range(2_200):  # 2,000 send nothing, 200 half a request head
            conn = socket.create_connection(("127.0.0.1", service.port), timeout=5)
            if n >= 2_000:
                conn.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n")
            idle.append(conn)
        assert time.monotonic() - opened < 4, "opening the sockets took most of the timeout"
        with httpx.Client(base_url=service.base, timeout=2) as fresh:  # a new connection each
            for path in ("/healthz", "/subscribe", "/entries/quiet.html", "/atom.xml"):
                started = time.monotonic()
                answer = fresh.get(path, headers={"connection": "close"})
                assert answer.status_code == 200, (path, answer.status_code)
                assert time.monotonic() - started < 2, path
        idle[0].settimeout(10)
        assert idle[0].recv(100) == b""  # closed without a word: it never asked anything
        assert time.monotonic() - opened < 6 + 3
        idle[-1].settimeout(5)
        assert idle[-1].recv(100).startswith(b"HTTP/1.1 408 ")  # told why
    finally:
        for conn in idle:
            conn.close()
        service.close()


def test_health_says_what_is_wrong_in_words_without_paths(home: Path, smtp: SmtpServer) -> None:
    (home / "feeds" / "entries").write_text("a file where the build wants a folder")
    env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD}
    service = RunningService(home, env=env).start(wait=False)
    try:
        publish(home / "seeds", "a.md", "---\ntitle: Blocked\n---\nText.\n")

        def failed() -> dict[str, object] | None:
            try:
                answer = service.http.get("/healthz")
            except httpx.TransportError:
                return None
            health = answer.json()
            return health if str(health["build"]).startswith("failing") else None

        health = until(failed, timeout=15, what="the failed build in /healthz")
        text = json.dumps(health)
        assert health["status"] == "failing" and str(health["build"]).startswith("failing: ")
        assert str(home) not in text and "/entries" not in text and "Errno" not in text
        assert "the service log" in str(health["build"])
        assert str(home / "feeds" / "entries") in service.logs()  # the details are there
    finally:
        service.close()


def test_health_hides_the_store_error_and_logs_it_once(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_ping(self: Store) -> None:  # a real SQL error, as a broken store gives
        try:
            with self.begin() as conn:
                conn.execute(sa.text(f"SELECT secret FROM missing WHERE home = '{home}'"))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"the store does not answer: {exc}") from exc

    monkeypatch.setattr(Store, "ping", failing_ping)
    with caplog.at_level(logging.WARNING, logger="newsdrop.serve.web"), AppServer(home) as server:
        answers = [server.http.get("/healthz") for _ in range(3)]
    assert {a.status_code for a in answers} == {503}
    for answer in answers:
        assert answer.json()["store"].startswith("failing: ")
        assert "SELECT" not in answer.text and "missing" not in answer.text
        assert str(home) not in answer.text
    logged = [r.getMessage() for r in caplog.records if "store is failing" in r.getMessage()]
    assert len(logged) == 1 and "SELECT secret FROM missing" in logged[0]


def test_metrics_answer_only_allowed_addresses_after_trusted_proxies(home: Path) -> None:
    proxied = {"NEWSDROP_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]'}
    with AppServer(home, proxied) as server:
        assert server.http.get("/metrics").status_code == 200  # loopback: allowed by default
        outside = server.http.get("/metrics", headers={"x-forwarded-for": "203.0.113.9"})
        assert outside.status_code == 403 and "metrics_allow" in outside.text
        assert "x-content-type-options" in outside.headers
        inside = server.http.get("/metrics", headers={"x-forwarded-for": "127.0.0.1"})
        assert inside.status_code == 200 and "newsdrop_" in inside.text
    with AppServer(home, {"NEWSDROP_SERVER__METRICS_ALLOW": '["203.0.113.0/24"]'}) as server:
        direct = server.http.get("/metrics", headers={"x-forwarded-for": "203.0.113.9"})
        assert direct.status_code == 403  # no trusted proxy: the header is anyone's to write


def test_the_bound_is_on_requests_in_progress_not_on_connections(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    async def slow(self: Web, request: object) -> Response:
        await asyncio.to_thread(release.wait, 10)
        return PlainTextResponse("done")

    monkeypatch.setattr(guard_module, "MAX_IN_FLIGHT", 2)
    monkeypatch.setattr(Web, "digest_view", slow)
    (home / "feeds" / "atom.xml").write_text("<feed/>")
    with AppServer(home) as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        idle = [server.connect() for _ in range(50)]  # far more connections than the bound
        try:
            assert server.http.get("/subscribe").status_code == 200
            held = [pool.submit(server.http.get, "/digest/1?sig=x") for _ in range(2)]
            until(lambda: server.web_guard().in_flight == 2, timeout=5, what="two in progress")
            busy = server.http.get("/subscribe")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert server.http.get("/atom.xml").status_code == 503  # every request counts
            release.set()
            assert [f.result(timeout=10).status_code for f in held] == [200, 200]
            assert server.http.get("/subscribe").status_code == 200
            assert server.http.get("/atom.xml").status_code == 200
        finally:
            release.set()
            for conn in idle:
                conn.close()
