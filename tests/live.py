"""`newsdrop run` as a real subprocess on a free port, for the service tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from smtpd import SmtpServer, free_port
from typing import Any

import feedparser
import httpx

from newsdrop.config import load_settings
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.store import Store


class RunningService:
    def __init__(self, home: Path, *, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.env = {
            **os.environ,
            "NEWSDROP_SERVER__PORT": str(self.port),
            "NEWSDROP_SITE__BASE_URL": self.base,
            "NEWSDROP_WATCH__SETTLE_MS": "300",
            **(env or {}),
        }
        self.log = home / f"service-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base, timeout=10)

    def start(self, *, wait: bool = True) -> RunningService:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "newsdrop",
                    "--home",
                    str(self.home),
                    "run",
                    "--log-format",
                    "json",
                ],
                stdout=log,
                stderr=log,
                env=self.env,
            )
        if wait:
            until(lambda: self._healthy(), timeout=20, what="the service to answer /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"newsdrop run exited with {self.process.returncode}:\n{self.logs()}"
            )
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 10) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        return code

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.logs().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.http.close()


def until(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def publish(seeds: Path, name: str, text: str) -> None:
    """The sure way the README gives publishers: write NAME.part, then rename it."""
    partial = seeds / f"{name}.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, seeds / name)


def served_entries(service: RunningService) -> dict[str, feedparser.FeedParserDict]:
    response = service.http.get("/atom.xml")
    assert response.status_code == 200
    feed = feedparser.parse(response.content)
    assert feed.bozo == 0, feed.bozo_exception
    return {entry.title: entry for entry in feed.entries}


def subscriber(home: Path, email: str) -> Subscriber:
    """The instance's subscriber with this address, read from its store."""
    store = Store.open(load_settings(home).store_url)
    try:
        person = store.subscriber(email)
        assert person is not None, f"{email} is not a subscriber"
        return person
    finally:
        store.close()


def state_of(home: Path, email: str) -> SubscriberState:
    return subscriber(home, email).state


def received(smtp: SmtpServer, to: str) -> list[EmailMessage]:
    return [m for m in smtp.sink.received if m["To"] and to in str(m["To"])]
