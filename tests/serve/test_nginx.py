"""contrib/nginx.conf, the README's snippet for a deployment behind a proxy, run with
Debian's nginx in front of `newsdrop run` on free ports: a feed, a page and a subscription
go through it, and newsdrop sees each client's own address (X-Forwarded-For, believed
because [server] trusted_proxies names the proxy)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from smtpd import PASSWORD, SmtpServer, free_port
from urllib.parse import quote

import feedparser
import httpx
import pytest

from live import RunningService, publish, served_entries, until

NGINX = Path("/usr/sbin/nginx")
SNIPPET = Path(__file__).resolve().parents[2] / "contrib" / "nginx.conf"

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK),
    reason=f"Debian's nginx ({NGINX}) is not installed: apt-get install nginx (.ci/run does)",
)


def nginx_conf(folder: Path, *, listen: int, upstream: int) -> Path:
    """The shipped snippet, on our ports, inside the smallest nginx.conf that runs it."""
    snippet = SNIPPET.read_text()
    for shipped, ours in [
        ("listen 80;", f"listen 127.0.0.1:{listen};"),
        ("listen [::]:80;", ""),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};"),
    ]:
        assert shipped in snippet, f"{SNIPPET} no longer says {shipped!r}: update this test"
        snippet = snippet.replace(shipped, ours)
    (folder / "newsdrop.conf").write_text(snippet)
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    conf = folder / "nginx.conf"
    conf.write_text(
        f"daemon off;\nmaster_process off;\npid {folder / 'nginx.pid'};\n"
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"error_log {folder / 'error.log'} warn;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  {temp}\n  uwsgi_temp_path {folder / 'uwsgi'};\n"
        f"  scgi_temp_path {folder / 'scgi'};\n  include {folder / 'newsdrop.conf'};\n}}\n"
    )
    return conf


@pytest.fixture
def behind_nginx(
    home: Path, smtp: SmtpServer, tmp_path: Path
) -> Iterator[tuple[str, RunningService]]:
    env = {
        **smtp.env(),
        "NEWSDROP_SMTP_PASSWORD": PASSWORD,
        "NEWSDROP_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
        "NEWSDROP_SERVER__SUBSCRIBE_LIMIT_PER_CLIENT": "1/minute",
    }
    service = RunningService(home, env=env).start()
    folder = tmp_path / "nginx"
    folder.mkdir()
    port = free_port()
    conf = nginx_conf(folder, listen=port, upstream=service.port)
    with (folder / "stderr").open("wb") as stderr:
        nginx = subprocess.Popen(
            [str(NGINX), "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}/"

    def answering() -> bool:
        if nginx.poll() is not None:
            raise AssertionError(
                f"nginx exited: {nginx.stderr.read().decode() if nginx.stderr else ''}"
            )
        try:
            return httpx.get(base + "healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        until(answering, timeout=10, what="nginx to answer")
        yield base, service
    finally:
        nginx.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()
        service.close()


def test_a_feed_a_page_and_a_subscription_through_nginx(
    home: Path, behind_nginx: tuple[str, RunningService]
) -> None:
    base, service = behind_nginx
    publish(
        home / "seeds",
        "proxied.md",
        "---\ntitle: Through the proxy\ntags: [україна]\n---\nHello.\n",
    )
    until(lambda: served_entries(service).get("Through the proxy"), timeout=10, what="the entry")
    with httpx.Client(base_url=base, timeout=5) as http:
        feed = http.get("/atom.xml")
        assert feed.status_code == 200
        parsed = feedparser.parse(feed.content)
        assert parsed.bozo == 0 and [e.title for e in parsed.entries] == ["Through the proxy"]
        tag_feed = http.get(f"/tags/{quote('україна')}.atom.xml")  # a tag in its own script
        assert tag_feed.status_code == 200
        assert [e.title for e in feedparser.parse(tag_feed.content).entries] == [
            "Through the proxy"
        ]
        page = http.get("/entries/through-the-proxy.html")
        assert page.status_code == 200 and "Through the proxy" in page.text
        assert page.headers["x-content-type-options"] == "nosniff"
        etag = feed.headers["etag"]
        assert http.get("/atom.xml", headers={"if-none-match": etag}).status_code == 304

        def subscribe(client: str, email: str) -> int:
            answer = http.post(
                "/subscribe", data={"email": email}, headers={"x-forwarded-for": client}
            )
            return answer.status_code

        # One request a minute per client: newsdrop tells the clients apart by the address
        # nginx forwards, not by nginx's own (which is every request's peer).
        assert subscribe("203.0.113.7", "p1@example.org") == 200
        assert subscribe("203.0.113.7", "p2@example.org") == 429
        assert subscribe("203.0.113.8", "p3@example.org") == 200
        metrics = http.get("/metrics", headers={"x-forwarded-for": "203.0.113.7"})
        assert metrics.status_code == 403  # an outside client, though nginx is loopback
    assert service.http.get("/metrics").status_code == 200  # loopback, directly
