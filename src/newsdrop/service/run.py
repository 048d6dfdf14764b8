"""`newsdrop run`: the watcher, the scheduler and the web server in one asyncio process, and
its start and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import uvicorn

from newsdrop import loop
from newsdrop.config import Settings
from newsdrop.errors import ConfigError
from newsdrop.mail.dkim import dkim_key
from newsdrop.serve.web import Web, server_config
from newsdrop.service.base import DIGEST_RUN, iso
from newsdrop.service.leadership import Leadership
from newsdrop.service.publishing import PipelineJobs
from newsdrop.service.returns import ReturnsJobs
from newsdrop.service.sending import SUBSCRIBERS_POLL_SECONDS, DigestJobs
from newsdrop.service.status import instance_lock
from newsdrop.service.watch import watch_seeds
from newsdrop.store import Store

log = logging.getLogger("newsdrop.service")


SHUTDOWN_SECONDS = 8.0  # of the ten a supervisor allows, with a margin


PIPELINE_GRACE_SECONDS = 2.0  # an ingest or build may finish within this at shutdown


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the service decides when and how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, made here so that a taken port is one clear error (uvicorn
    would log it and call sys.exit)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; another program may be "
            "using that port: change [server] port (or NEWSDROP_SERVER__PORT)"
        ) from None
    sock.setblocking(False)
    return sock


def _raise_open_file_limit() -> None:
    """Let the process open as many files as its hard limit allows (the soft limit is often
    1024, which a thousand idle connections would use up: accept() then fails for all)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        log.info("open files: the limit is %d", soft)
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning(
            "open files: the limit stays %d (raising it to %d failed: %s)", soft, wanted, exc
        )
        return
    log.info("open files: the limit is raised from %d to %d", soft, wanted)


def run_service(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM; the caller exits 0 after it returns."""
    if not settings.seeds_dir.is_dir():
        raise ConfigError(
            f"the seeds folder {settings.seeds_dir} does not exist; create it, or fix "
            f"[paths] seeds in {settings.source}"
        )
    dkim_key(settings)  # a missing or broken key stops the start, not every digest later
    with instance_lock(settings):
        store = Store.open(settings.store_url)
        try:
            service = Service(settings, store)
            service.exit_at_stop = True  # this process is the service: it ends with it
            loop.run(service.run())
        finally:
            store.close()


class Service(Leadership, PipelineJobs, DigestJobs, ReturnsJobs):
    """`newsdrop run`: the watcher, the scheduler and the web server in one asyncio
    process, and its start and shutdown."""

    async def run(self) -> None:
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, self.stopping.set)
        server_settings = self.settings.server
        _raise_open_file_limit()  # each connection is a descriptor, idle ones included
        sock = _listen(server_settings.host, server_settings.port)
        host, port = sock.getsockname()[:2]
        self.status["url"] = f"http://{host}:{port}/"
        if mismatch := self.settings.site.local_address_mismatch(host, port):
            log.warning(mismatch)
        self.instance = self.settings.cluster.instance or f"{socket.gethostname()}:{port}"
        self.status["instance"] = self.instance
        await self.lead()  # before the first ingest: a lone instance leads at once
        self.subscribers_seen = await asyncio.to_thread(self.store.subscribers_version)
        self.web = web = Web(
            self.settings,
            self.store,
            secret=self.secret,
            cache=self.cache,
            metrics=self.metrics,
            health=self.health,
            confirmation_queued=self.wake_digests,  # the digest job sends them first
            subscribers_changed=self.wake_digests,
        )
        server = _Server(server_config(web.app(), server_settings))
        await asyncio.to_thread(self.cache.refresh)  # serve what is on disk at once
        if self.settings.feeds.websub_hub:
            from newsdrop.publish.websub import Pinger

            self.pinger = Pinger(self.settings.feeds.websub_hub)
        returns = await self.start_returns()  # before serving: a taken port stops the start
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        background = [
            *returns,
            asyncio.create_task(self.pipeline()),
            asyncio.create_task(watch_seeds(self.settings.seeds_dir, self.changed, self.stopping)),
            asyncio.create_task(self.poll_cache()),
            asyncio.create_task(self.keep_leading()),
        ]
        self.scheduler.start()
        self.scheduler.add_job(
            self.request, "interval", minutes=self.settings.watch.rescan_minutes, id="rescan"
        )
        self.scheduler.add_job(
            self.digests, "date", run_date=datetime.now(UTC), id="digests", replace_existing=True
        )
        self.scheduler.add_job(
            self.watch_subscribers,
            "interval",
            # With short test periods, a new subscriber is noticed within one of them.
            seconds=min(SUBSCRIBERS_POLL_SECONDS, self.settings.digest.interval_seconds or 60),
            id="subscribers",
        )
        self.request()  # the reconcile scan at start
        log.info(
            "serving %s on %s", self.settings.feeds_dir, self.status["url"],
            extra={"home": str(self.settings.home), "pid": os.getpid()},
        )  # fmt: skip
        self.write_status()
        stop_waiter = asyncio.create_task(self.stopping.wait())
        await asyncio.wait([serving, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
        if serving.done() and not self.stopping.is_set():
            log.error("the web server stopped on its own; shutting down")
        await self.shutdown(server, serving, background)

    async def shutdown(
        self, server: uvicorn.Server, serving: asyncio.Task[None], background: list[Any]
    ) -> None:
        log.info("stopping: no new requests, digests in flight finish")
        self.stopping.set()
        self.stop_sending.set()
        server.should_exit = True
        self.stop_returns()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        # Requests in flight and confirmation mails being sent may finish.
        await asyncio.wait([serving, *self.web.tasks], timeout=SHUTDOWN_SECONDS)
        # Digests in flight may finish (an SMTP transaction is worth waiting for); an
        # ingest or build gets a short grace, since the next start redoes it anyway.
        grace = time.monotonic() + PIPELINE_GRACE_SECONDS
        while self.busy and time.monotonic() < deadline:
            if DIGEST_RUN not in self.busy and time.monotonic() > grace:
                break
            await asyncio.sleep(0.05)
        # Taken before the cancels: a cancelled task forgets its work at its next step,
        # while the thread or worker process it waited for goes on.
        unfinished = sorted(self.busy)
        for task in [serving, *background, *self.web.tasks]:
            task.cancel()
        if self.pinger is not None:
            await asyncio.to_thread(self.pinger.close, wait=1)
        # A pipeline process that is closed waits for its render processes (the pages an
        # ingest rendered ahead) and blocks the loop: one that ends with this process is not.
        if self._pipeline_process is not None and not unfinished and not self.exit_at_stop:
            self._pipeline_process.close()
        self.status["stopped"] = iso(datetime.now(UTC))
        self.write_status()
        with contextlib.suppress(Exception):  # hand over at once, not when the lease runs out
            await asyncio.wait_for(asyncio.to_thread(self.step_down), timeout=2)
        if unfinished:
            log.warning(
                "stopped with %s under way; the next start finishes it", " and ".join(unfinished)
            )
        else:
            log.info("stopped")
        if unfinished or self.exit_at_stop:
            # A thread cannot be interrupted, and the loop's close waits for every one still
            # at work (a store call waiting on a lock, say: CI once saw a stop take over 15 s),
            # as Python waits for the pipeline process's run at exit. What they were doing
            # is safe to cut: ingest and the ledger commit in transactions, files are replaced
            # atomically, the worker processes die with this one, the instance lock goes with
            # the process, and the next start redoes what is missing.
            logging.shutdown()
            os._exit(0)
