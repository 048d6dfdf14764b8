"""WebSub publisher pings: tell the hub which feeds changed, in the background.

A ping is an HTTP POST of ``hub.mode=publish&hub.url=<feed>`` to the hub. A hub
that is down or answers with an error is logged and retried with backoff; a
build never waits for it. ``Pinger.close`` gives pending pings a bounded time
to finish, so a one-shot ``newsdrop build`` neither hangs nor drops them early.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence

import httpx

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = (0.0, 1.0, 4.0, 15.0)  # seconds before each attempt


class Pinger:
    """One background thread that pings a hub for each submitted feed URL."""

    def __init__(
        self, hub: str, *, timeout: float = 10.0, backoff: Sequence[float] = DEFAULT_BACKOFF
    ) -> None:
        self.hub = hub
        self.timeout = timeout
        self.backoff = tuple(backoff)
        self.delivered: list[str] = []
        self.failed: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="websub-pinger", daemon=True)
        self._thread.start()

    def submit(self, feed_urls: Iterable[str]) -> None:
        for url in feed_urls:
            self._queue.put(url)

    def close(self, *, wait: float = 30.0) -> None:
        """Let pending pings finish for at most ``wait`` seconds, then give up on the rest."""
        self._queue.put(None)
        self._thread.join(wait)
        if self._thread.is_alive():
            self._stop.set()
            log.warning("WebSub: gave up on pings still pending after %.0f s", wait)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while (url := self._queue.get()) is not None:
                if self._ping(client, url):
                    self.delivered.append(url)
                else:
                    self.failed.append(url)

    def _ping(self, client: httpx.Client, url: str) -> bool:
        for attempt, delay in enumerate(self.backoff, start=1):
            if self._stop.wait(delay):
                return False
            try:
                response = client.post(self.hub, data={"hub.mode": "publish", "hub.url": url})
            except httpx.HTTPError as exc:
                reason = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.is_success:
                    log.info("WebSub: hub %s told about %s", self.hub, url)
                    return True
                reason = f"HTTP {response.status_code}"
            log.warning(
                "WebSub: ping of %s for %s failed (%s), attempt %d of %d",
                self.hub, url, reason, attempt, len(self.backoff),
            )  # fmt: skip
        return False
