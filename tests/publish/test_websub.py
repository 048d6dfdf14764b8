"""WebSub pings reach a real HTTP server on 127.0.0.1; a failing hub is retried, never blocks."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from click.testing import CliRunner

from newsdrop.cli.main import cli
from newsdrop.publish.websub import Pinger


class Hub:
    """A tiny hub: records each publish ping; answers 503 to the first ``fail`` requests."""

    def __init__(self, fail: int = 0) -> None:
        self.pings: list[dict[str, list[str]]] = []
        self.fail = fail
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                if hub.fail > 0:
                    hub.fail -= 1
                    self.send_response(503)
                else:
                    hub.pings.append(parse_qs(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub(fail=1)
    yield server
    server.close()


def test_build_pings_the_hub_for_every_changed_feed(home: Path, hub: Hub) -> None:
    (home / "seeds" / "a.md").write_text("---\ntitle: Hello\ntags: [news]\n---\nBody.\n")
    env = {"NEWSDROP_FEEDS__WEBSUB_HUB": hub.url}
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "ingest"], env=env).exit_code == 0
    started = time.monotonic()
    result = runner.invoke(cli, ["--home", str(home), "build"], env=env)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 10  # the first 503 was retried after a second
    topics = sorted(p["hub.url"][0] for p in hub.pings)
    assert all(p["hub.mode"] == ["publish"] for p in hub.pings)
    base = "http://127.0.0.1:8080/"
    assert topics == sorted(
        base + name
        for name in (
            "atom.xml",
            "rss.xml",
            "feed.json",
            "tags/news.atom.xml",
            "tags/news.rss.xml",
            "tags/news.json",
        )
    )
    atom = (home / "feeds" / "atom.xml").read_text()
    assert f'<link href="{hub.url}" rel="hub"/>' in atom and 'rel="self"' in atom
    assert f'href="{hub.url}" rel="hub"' in (home / "feeds" / "rss.xml").read_text()
    hub.pings.clear()
    assert runner.invoke(cli, ["--home", str(home), "build"], env=env).exit_code == 0
    assert hub.pings == []  # nothing changed, nothing to tell


def test_a_dead_hub_is_given_up_on_without_blocking() -> None:
    pinger = Pinger("http://127.0.0.1:9/", timeout=0.5, backoff=(0.0, 0.05))  # discard port
    started = time.monotonic()
    pinger.submit(["http://example.org/atom.xml"])
    pinger.close(wait=5)
    assert pinger.failed == ["http://example.org/atom.xml"] and pinger.delivered == []
    assert time.monotonic() - started < 5


def test_publish_ingests_builds_and_pings_in_one_run(home: Path, hub: Hub) -> None:
    """`newsdrop publish`: the pipeline the service runs, once, for cron: both summaries,
    the run recorded, the hub told of the changed feeds; then nothing to do, nothing told."""
    (home / "seeds" / "a.md").write_text("---\ntitle: Hello\ntags: [news]\n---\nBody.\n")
    env = {"NEWSDROP_FEEDS__WEBSUB_HUB": hub.url}
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(home), "publish", "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["ingest"]["added"] == 1 and "atom.xml" in summary["build"]["written"]
    assert "Hello" in (home / "feeds" / "atom.xml").read_text()
    assert len(hub.pings) == 6  # the site's three feeds and the tag's three
    hub.pings.clear()
    again = runner.invoke(cli, ["--home", str(home), "publish"], env=env)
    assert again.exit_code == 0, again.output
    assert "ingest: 0 added" in again.output and "build: nothing changed" in again.output
    assert hub.pings == []
    status = runner.invoke(cli, ["--home", str(home), "status", "--json"])
    assert json.loads(status.output)["last_ingest_summary"]["unchanged"] == 1  # recorded


def test_publish_whose_build_fails_keeps_the_ingest_and_says_why(home: Path) -> None:
    (home / "seeds" / "a.md").write_text("# Hello\n\nBody.\n")
    shutil.rmtree(home / "feeds")
    (home / "feeds").write_text("not a folder")  # the build cannot write there
    result = CliRunner().invoke(cli, ["--home", str(home), "publish"])
    assert result.exit_code == 1 and "ingest: 1 added" in result.output
    assert "Traceback" not in result.output and "feeds" in result.output
    listed = CliRunner().invoke(cli, ["--home", str(home), "entries", "list", "--json"])
    assert json.loads(listed.output.splitlines()[0])["title"] == "Hello"  # the ingest stands
