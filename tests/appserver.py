"""The service's web app in this process: ``Web.app()`` under uvicorn exactly as
`newsdrop run` configures it (``web.server_config``), in a thread with its own event loop,
on a free port of 127.0.0.1. For tests that patch one handler to force a failure, or
that look at the protocol layer without a whole service around it."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from newsdrop import loop
from newsdrop.config import load_settings
from newsdrop.serve.files import FileCache
from newsdrop.serve.guard import Guard
from newsdrop.serve.metrics import Metrics
from newsdrop.serve.web import Health, Web, server_config
from newsdrop.store import Store


class AppServer:
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.settings = load_settings(home, environ={**os.environ, **(env or {})})
        self.store = Store.open(self.settings.store_url)
        now = datetime.now(UTC)
        self.cache = FileCache(self.settings.feeds_dir)
        self.cache.refresh()
        self.web = Web(
            self.settings,
            self.store,
            secret=b"a test secret of enough length",
            cache=self.cache,
            metrics=Metrics(self.store),
            health=Health(started=now, last_build=now),
        )
        self.app = self.web.app()
        self.server = uvicorn.Server(server_config(self.app, self.settings.server))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.http = httpx.Client(base_url=self.base, timeout=5)

    def _serve(self) -> None:  # uvicorn installs no signal handlers outside the main thread
        loop.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the in-process server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.store.close()

    def web_guard(self) -> Guard:
        guard = self.app
        assert isinstance(guard, Guard)
        return guard

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)
