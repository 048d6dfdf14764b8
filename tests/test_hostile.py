"""`newsdrop run` against hostile clients and a full disk (issue #6): oversized and
malformed requests, slow clients, a subscribe burst, secrets kept out of every
output, and feeds/ on a tiny file system."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from conftest import CliRun
from live import RunningService, publish, served_entries, until


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
    assert big_body.status_code in (400, 413)  # 400 when the body came with the head
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


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounts a small tmpfs for feeds/, which needs root (CI runs as root)",
)
def test_a_full_disk_fails_the_build_keeps_serving_and_recovers(
    home: Path, smtp: SmtpServer
) -> None:
    feeds = home / "feeds"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(feeds)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
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
            subprocess.run(["mount", "-o", "remount,size=20m", str(feeds)], check=True)
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
    finally:
        subprocess.run(["umount", "-l", str(feeds)], check=False)
