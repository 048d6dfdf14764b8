"""`newsdrop run` as a real subprocess: files dropped into seeds/ are served over HTTP,
digests go to a real SMTP server, subscribers come and go through the web pages."""

from __future__ import annotations

import gzip
import html as html_module
import http.client
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from newsdrop.config import instance_secret, load_settings
from newsdrop.model import SubscriberState
from newsdrop.subscribers import unsubscribe_token

from conftest import CliRun
from live import RunningService, publish, received, served_entries, state_of, subscriber, until

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL


def start(home: Path, smtp: SmtpServer, **env: str) -> RunningService:
    return RunningService(home, env={**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD, **env})


@pytest.fixture
def service(home: Path, smtp: SmtpServer) -> Iterator[RunningService]:
    running = start(home, smtp).start()
    yield running
    running.close()


def raw_get(service: RunningService, path: str) -> tuple[int, bytes]:
    """A request with the path sent exactly as given (httpx would normalise it)."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_dropped_edited_moved_and_deleted_documents_are_served(service: RunningService) -> None:
    seeds = service.home / "seeds"
    dropped = time.monotonic()
    publish(seeds, "first.md", "---\ntitle: First light over the river\n---\nA morning story.\n")
    first = until(
        lambda: served_entries(service).get("First light over the river"),
        timeout=5,
        what="the new document in atom.xml",
    )
    assert time.monotonic() - dropped < 2.0  # the promise: within a second or two

    publish(seeds, "first.md", "---\ntitle: First light, revised\n---\nA longer morning story.\n")
    edited = until(
        lambda: served_entries(service).get("First light, revised"),
        timeout=5,
        what="the edit in atom.xml",
    )
    assert edited.id == first.id  # the same entry, updated
    assert "First light over the river" not in served_entries(service)

    (seeds / "moved").mkdir()
    os.replace(seeds / "first.md", seeds / "moved" / "first.md")
    until(
        lambda: any("1 renamed" in r.get("message", "") for r in service.log_records()),
        timeout=5,
        what="the move to be ingested as a rename",
    )
    time.sleep(0.5)  # and built
    entries = served_entries(service)
    assert [e.id for e in entries.values()] == [first.id]  # still one entry, same id
    withdrawals = [r for r in service.log_records() if "1 withdrawn" in r.get("message", "")]
    assert withdrawals == []  # never withdrawn in between, though the moved file was fresh

    (seeds / "moved" / "first.md").unlink()
    until(lambda: not served_entries(service), timeout=5, what="the withdrawal in atom.xml")


def test_a_standing_problem_is_logged_once_not_at_every_ingest(service: RunningService) -> None:
    seeds = service.home / "seeds"
    publish(seeds, "bad.md", "---\ndate: not a date\n---\nBody.\n")
    for n in range(3):  # three more ingests while bad.md stands
        publish(seeds, f"good-{n}.md", f"---\ntitle: Good story {n}\n---\nBody {n}.\n")
        until(lambda n=n: served_entries(service).get(f"Good story {n}"), timeout=5,
              what=f"good-{n}.md in atom.xml")  # fmt: skip

    def logged() -> list[dict[str, object]]:
        return [r for r in service.log_records() if "bad.md" in str(r.get("message", ""))]

    assert len(logged()) == 1, [(r["time"], r["message"][:50], r.get("path")) for r in logged()]


def test_a_half_written_file_is_published_once_complete(service: RunningService) -> None:
    path = service.home / "seeds" / "slow.md"
    seen: list[str] = []
    with path.open("w", encoding="utf-8") as handle:
        handle.write("---\ntitle: Written slowly\n---\nThe first part.")
        for part in range(8):  # pauses shorter than the settle time (300 ms here)
            handle.flush()
            time.sleep(0.15)
            seen += [e.summary for e in served_entries(service).values()]
            handle.write(f" Part {part}.")
        handle.write(" The end.\n")
    entry = until(
        lambda: served_entries(service).get("Written slowly"),
        timeout=5,
        what="the finished document in atom.xml",
    )
    assert entry.summary.endswith("The end.")
    assert seen == []  # nothing was served before the writer finished
    ingests = [r for r in service.log_records() if r.get("message", "").startswith("ingest:")]
    assert [r["message"].split(",")[:2] for r in ingests] == [["ingest: 1 added", " 0 updated"]]


def test_validators_gzip_head_and_types(service: RunningService) -> None:
    text = "---\ntitle: Caching\ntags: [Rivers]\n---\n" + "Words. " * 200
    publish(service.home / "seeds", "a.md", text)
    until(lambda: served_entries(service).get("Caching"), timeout=5, what="the entry")
    http = service.http
    for name, kind in [
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/tags/rivers.atom.xml", "application/atom+xml; charset=utf-8"),
        ("/tags/rivers.json", "application/feed+json; charset=utf-8"),
        ("/entries/caching.html", "text/html; charset=utf-8"),  # from disk, not the cache
    ]:
        plain = http.get(name, headers={"accept-encoding": "identity"})
        assert plain.status_code == 200, name
        assert plain.headers["content-type"] == kind
        assert plain.headers["cache-control"] == "public, max-age=60"
        assert plain.headers["x-content-type-options"] == "nosniff"
        etag, modified = plain.headers["etag"], plain.headers["last-modified"]
        again = http.get(name, headers={"if-none-match": etag, "accept-encoding": "identity"})
        assert (again.status_code, again.content) == (304, b"")
        assert http.get(name, headers={"if-modified-since": modified}).status_code == 304
        stale = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
        assert http.get(name, headers={"if-modified-since": stale}).status_code == 200
        with http.stream("GET", name, headers={"accept-encoding": "gzip"}) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            raw = b"".join(zipped.iter_raw())
        assert gzip.decompress(raw) == plain.content
        assert zipped.headers["etag"] != etag  # another representation, another validator
        head = http.head(name, headers={"accept-encoding": "identity"})
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(plain.content)
        assert http.post(name).status_code == 405


def test_answers_from_memory_keep_or_close_the_connection_as_asked(
    service: RunningService,
) -> None:
    """Feeds held in memory are answered with a response head made once per file and
    second: it must still say what this request asked (close or keep the connection) and
    what the file now holds."""
    import socket

    def exchange(request: bytes, count: int = 1) -> list[tuple[bytes, bytes]]:
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as client:
            client.sendall(request * count)
            data, answers = b"", []
            while len(answers) < count:
                while b"\r\n\r\n" not in data:
                    chunk = client.recv(65536)
                    assert chunk, data
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                while len(data) < length:
                    data += client.recv(65536)
                answers.append((head.lower(), data[:length]))
                data = data[length:]
            if b"connection: close" in answers[-1][0]:
                assert client.recv(1) == b""  # and closed, as it said
            return answers

    publish(service.home / "seeds", "a.md", "---\ntitle: First\n---\nWords.\n")
    until(lambda: served_entries(service).get("First"), timeout=5, what="the entry")
    (old,) = exchange(b"GET /atom.xml HTTP/1.0\r\nHost: x\r\n\r\n")
    assert old[0].startswith(b"http/1.1 200") and b"connection: close" in old[0]
    assert b"\r\ndate: " in old[0] and b"<title>First</title>" in old[1]
    kept = exchange(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n", count=3)
    assert [body for _, body in kept] == [old[1]] * 3
    assert not any(b"connection: close" in head for head, _ in kept)
    publish(service.home / "seeds", "b.md", "---\ntitle: Second\n---\nMore words.\n")
    until(lambda: served_entries(service).get("Second"), timeout=5, what="the new entry")
    ((head, body),) = exchange(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"<title>Second</title>" in body and b"connection: close" in head


def test_no_path_outside_feeds_can_be_read(service: RunningService) -> None:
    home = service.home
    (home / "feeds" / "leak.toml").symlink_to(home / "config" / "newsdrop.toml")
    (home / "feeds" / "entries").mkdir(exist_ok=True)
    (home / "feeds" / "entries" / "out").symlink_to(home / "state")
    secret = (home / "state" / "secret").read_bytes().strip()
    for path in [
        "/../config/newsdrop.toml",
        "/%2e%2e/config/newsdrop.toml",
        "/%2E%2E%2Fconfig%2Fnewsdrop.toml",
        "/entries/..%2f..%2fconfig/newsdrop.toml",
        "/entries%2f..%2f..%2fstate%2fsecret",
        "/..%5cconfig%5cnewsdrop.toml",
        "//etc/passwd",
        "/leak.toml",
        "/entries/out/secret",
        "/.%2e/.%2e/state/secret",
        "/%ff%fe.html",
        "/index.html%00.txt",
    ]:
        status, body = raw_get(service, path)
        assert status == 404, path
        assert b"[site]" not in body and secret not in body and b"root:" not in body


def add_subscriber(home: Path, run: CliRun, email: str) -> int:
    """Add an active subscriber with the CLI, as an operator does; their id."""
    result = run("subscribers", "add", email, "--name", "Ada", "--tz", "UTC")
    assert result.exit_code == 0, result.output
    return subscriber(home, email).id


def test_unsubscribe_with_a_good_a_forged_and_a_replayed_token(
    home: Path, run: CliRun, service: RunningService
) -> None:
    subscriber_id = add_subscriber(home, run, "ada@example.org")
    token = unsubscribe_token(instance_secret(load_settings(home)), subscriber_id)
    page = service.http.get(f"/unsubscribe?token={token}")
    assert page.status_code == 200 and "<form" in page.text and "Unsubscribe" in page.text
    assert state_of(home, "ada@example.org") is SubscriberState.ACTIVE  # a GET changes nothing
    first = service.http.post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"})
    assert first.status_code == 200 and "You are unsubscribed" in first.text
    assert state_of(home, "ada@example.org") is SubscriberState.UNSUBSCRIBED
    replay = service.http.post(
        f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"}
    )
    assert (replay.status_code, replay.text) == (first.status_code, first.text)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (forged, f"{subscriber_id + 1}.{token.partition('.')[2]}", "", "x" * 5000):
        answer = service.http.post("/unsubscribe", params={"token": bad})
        assert answer.status_code == 400
        assert "ada@example.org" not in answer.text and "Ada" not in answer.text


def test_subscribe_confirm_by_mail_and_the_limits(
    home: Path, run: CliRun, smtp: SmtpServer
) -> None:
    add_subscriber(home, run, "known@example.org")
    service = start(home, smtp, NEWSDROP_SERVER__SUBSCRIBE_LIMIT_PER_CLIENT="3/minute").start()
    try:
        index = service.http.get("/")
        assert 'action="' + service.base + 'subscribe"' in index.text
        new = service.http.post("/subscribe", data={"email": "New@Example.org"})
        known = service.http.post("/subscribe", data={"email": "known@example.org"})
        assert new.status_code == known.status_code == 200
        # The same answer whether or not the address is known.
        assert new.text.replace("New@example.org", "X") == known.text.replace(
            "known@example.org", "X"
        )
        assert state_of(home, "New@example.org") is SubscriberState.PENDING
        mail = until(lambda: received(smtp, "New@example.org"), timeout=10, what="the confirmation")
        assert received(smtp, "known@example.org") == []  # an active address gets nothing
        text = mail[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        link = re.search(r"http://\S+/confirm\?token=\S+", text)
        assert link, text
        url = link.group(0).removeprefix(service.base)
        page = service.http.get(f"/{url}")
        assert page.status_code == 200 and "<form" in page.text
        assert state_of(home, "New@example.org") is SubscriberState.PENDING  # a GET is no click
        done = service.http.post(f"/{url}")
        assert done.status_code == 200 and "You are subscribed" in done.text
        assert state_of(home, "New@example.org") is SubscriberState.ACTIVE
        tampered = url[:-3] + ("aaa" if not url.endswith("aaa") else "bbb")
        assert service.http.post(f"/{tampered}").status_code == 400
        bad = service.http.post("/subscribe", data={"email": "not an address"})
        assert bad.status_code == 400
        limited = service.http.post("/subscribe", data={"email": "late@example.org"})
        assert limited.status_code == 429  # the fourth request from this client this minute
        assert service.http.get("/healthz").status_code == 200  # and the service answers
    finally:
        service.close()


def test_digest_at_its_time_then_sigterm_and_a_restart_without_duplicates(
    home: Path, run: CliRun, smtp: SmtpServer
) -> None:
    subscriber_id = add_subscriber(home, run, "ada@example.org")
    # Far enough ahead that a slow start (PostgreSQL under CI load) still publishes the entry
    # before the digest is due: with 6 s, CI once closed the period first and mailed nothing.
    send_at = (datetime.now(UTC) + timedelta(seconds=10)).strftime("%H:%M:%S")
    env = {"NEWSDROP_DIGEST__SEND_AT": send_at}
    service = start(home, smtp, **env).start()
    try:
        publish(home / "seeds", "news.md", "---\ntitle: Морська новина 🌊\n---\nThe story.\n")
        until(lambda: served_entries(service).get("Морська новина 🌊"), timeout=5, what="entry")
        mail = until(lambda: received(smtp, "ada@example.org"), timeout=15, what="the digest")
        assert "Морська новина 🌊" in mail[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]

        # The web view of that very digest, at its signed address.
        html = mail[0].get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        view = re.search(r'href="(http://[^"]+/digest/\d+\?sig=[^"]+)"', html)
        assert view, "no view-in-browser link"
        shown = service.http.get(view.group(1).replace("&amp;", "&"))
        assert shown.status_code == 200  # (the HTML spells non-ASCII as character references)
        assert "Морська новина 🌊" in html_module.unescape(shown.text)
        assert service.http.get(view.group(1)[:-4] + "AAAA").status_code == 404

        # One-click unsubscribe from the List-Unsubscribe header works on the service.
        header = str(mail[0]["List-Unsubscribe"]).strip("<>")
        assert header == f"{service.base}unsubscribe?token=" + unsubscribe_token(
            instance_secret(load_settings(home)), subscriber_id
        )

        stopped = time.monotonic()
        assert service.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopped < 10
        assert '"stopped"' in service.logs()

        again = start(home, smtp, **env).start()
        try:
            time.sleep(2)  # the catch-up at start has run
            assert len(received(smtp, "ada@example.org")) == 1
            status = run("digest", "status")
            assert re.search(r"sent\s+1", status.output), status.output
        finally:
            assert again.stop() == 0
            again.close()
    finally:
        service.close()


def test_an_instant_subscriber_is_mailed_as_soon_as_an_entry_is_served(
    home: Path, run: CliRun, smtp: SmtpServer
) -> None:
    """The build that publishes an entry wakes the digest job: an `instant` subscriber's mail
    comes within seconds, not at the next scheduled check (ten minutes)."""
    result = run("subscribers", "add", "fast@example.org", "--frequency", "instant")
    assert result.exit_code == 0, result.output
    service = start(home, smtp).start()
    try:
        publish(home / "seeds", "flash.md", "---\ntitle: Flash\n---\nNews now.\n")
        until(lambda: served_entries(service).get("Flash"), timeout=10, what="entry")
        mail = until(lambda: received(smtp, "fast@example.org"), timeout=10, what="the mail")
        assert "Flash" in mail[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    finally:
        service.close()


def test_a_second_run_on_the_same_instance_refuses(home: Path, service: RunningService) -> None:
    second = RunningService(home, env={"NEWSDROP_SERVER__PORT": "0"}).start(wait=False)
    assert second.process is not None
    assert second.process.wait(timeout=20) == 2
    assert "already running" in second.logs()
    assert service.http.get("/healthz").status_code == 200
    second.close()


def test_health_metrics_and_status(home: Path, run: CliRun, service: RunningService) -> None:
    publish(home / "seeds", "a.md", "---\ntitle: Counted\n---\nText.\n")
    (home / "seeds" / "empty.txt").write_bytes(b"")
    until(lambda: served_entries(service).get("Counted"), timeout=5, what="the entry")
    health = service.http.get("/healthz").json()
    assert health["status"] == "ok" and health["store"] == "ok" and health["last_build"]
    metrics = until(  # the empty file waits out the settle time, then is a problem
        lambda: (m := service.http.get("/metrics")).text.count("newsdrop_problems 1.0") and m,
        timeout=5,
        what="the problem in /metrics",
    )
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'newsdrop_entries{state="published"} 1.0' in text
    assert "newsdrop_problems 1.0" in text
    assert re.search(r'newsdrop_builds_total\{outcome="ok"\} [1-9]', text)
    assert "newsdrop_queue_depth 0.0" in text
    status = run("status")
    assert f"service: running (pid {service.process.pid}" in status.output  # type: ignore[union-attr]
    assert service.stop() == 0
    assert "service: not running" in run("status").output
    loggers = {(r["logger"], r["level"]) for r in service.log_records()}
    assert ("uvicorn", "info") in loggers  # uvicorn's start-up lines, not as "uvicorn.error"
    assert ("uvicorn.error", "info") not in loggers


def test_a_future_dated_document_is_published_at_its_time(service: RunningService) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    publish(
        service.home / "seeds", "later.md", f"---\ntitle: Embargoed\ndate: {when}\n---\nSoon.\n"
    )
    time.sleep(1.5)
    assert "Embargoed" not in served_entries(service)  # held until its date
    until(lambda: served_entries(service).get("Embargoed"), timeout=8, what="publication")


def test_client_addresses_come_from_trusted_proxies_only(home: Path, smtp: SmtpServer) -> None:
    limit = {"NEWSDROP_SERVER__SUBSCRIBE_LIMIT_PER_CLIENT": "1/minute"}

    def attempts(service: RunningService) -> list[int]:
        return [
            service.http.post(
                "/subscribe",
                data={"email": f"p{n}@example.org"},
                headers={"x-forwarded-for": f"203.0.113.{n}"},
            ).status_code
            for n in range(3)
        ]

    untrusted = start(home, smtp, **limit).start()
    try:  # the header is anyone's to write: all three come from 127.0.0.1
        assert attempts(untrusted) == [200, 429, 429]
    finally:
        assert untrusted.stop() == 0
        untrusted.close()
    behind_proxy = start(
        home, smtp, NEWSDROP_SERVER__TRUSTED_PROXIES='["127.0.0.1"]', **limit
    ).start()
    try:  # our proxy says who the client is: three clients, one request each
        assert attempts(behind_proxy) == [200, 200, 200]
    finally:
        behind_proxy.close()


def test_sigterm_during_a_large_ingest_exits_promptly_and_a_restart_finishes_it(
    home: Path, smtp: SmtpServer
) -> None:
    count = 3000
    batch = home / "batch"
    batch.mkdir()
    for number in range(count):
        (batch / f"doc-{number}.txt").write_text(
            f"Report number {number} from the river\n\n" + f"Paragraph {number}. " * 60
        )
    service = start(home, smtp).start()
    try:
        os.replace(batch, home / "seeds" / "batch")
        time.sleep(0.5)  # the ingest is under way
        stopped = time.monotonic()
        try:
            code = service.stop(signal.SIGTERM, timeout=15)
        except subprocess.TimeoutExpired:  # say what the service was doing (CI saw this once)
            pytest.fail("still running 15 s after SIGTERM:\n" + service.logs()[-4000:])
        assert code == 0
        assert time.monotonic() - stopped < 10
    finally:
        service.close()
    again = start(home, smtp).start()
    try:

        def published() -> int:
            found = re.search(
                r'newsdrop_entries\{state="published"\} (\d+)', again.http.get("/metrics").text
            )
            return int(found.group(1)) if found else 0

        until(lambda: published() == count, timeout=60, what=f"{count} entries after the restart")
        assert again.stop() == 0
    finally:
        again.close()
