"""The state of `newsdrop run` that its jobs share, and the few steps every job takes: work in
a thread or a worker process that the shutdown knows of, whether this instance leads, asking
for a pipeline run, writing the status file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from newsdrop.config import Settings, instance_secret
from newsdrop.errors import NewsdropError, StoreFullError
from newsdrop.files import write_atomic
from newsdrop.model import Site
from newsdrop.serve.files import FileCache
from newsdrop.serve.metrics import Metrics
from newsdrop.serve.web import Health
from newsdrop.service.pipeline_process import PipelineProcess
from newsdrop.service.status import STATUS_FILE, state_file
from newsdrop.store import Store

log = logging.getLogger("newsdrop.service")


T = TypeVar("T")


DIGEST_RUN = "a digest run"


PIPELINE = "an ingest and build"


LEADER = "leader"  # the lease of the instance that ingests, builds and opens periods


def in_words(exc: BaseException) -> str:
    """What /healthz says of a store that cannot be written: no SQL, no absolute path."""
    if isinstance(exc, StoreFullError):
        return (
            f"the store cannot be written: the disk holding {exc.where} is full; free space there"
        )
    if isinstance(exc, NewsdropError):
        return "the store cannot be written; see the service's log"
    return "the store does not answer; see the service's log"


def log_failure(what: str, exc: BaseException, **context: str) -> None:
    if isinstance(exc, NewsdropError):
        log.error("%s: %s", what, exc, extra=context)
    else:  # a bug: keep the traceback for the report
        log.error("%s: %s: %s", what, exc.__class__.__name__, exc, exc_info=exc, extra=context)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class ServiceBase:
    """The state of `newsdrop run` that its jobs share, and the few steps every job
    takes: work in a thread or a worker process that the shutdown knows of, whether this
    instance leads, asking for a pipeline run, writing the status file."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.secret = instance_secret(settings)
        self.site = Site.from_settings(settings)
        self.health = Health(started=datetime.now(UTC))
        self.metrics = Metrics(store)
        self.cache = FileCache(settings.feeds_dir)
        self.stopping = asyncio.Event()
        self.stop_sending = threading.Event()  # asks a digest run in its thread to stop
        self.wanted = asyncio.Event()  # an ingest and build is wanted
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.status: dict[str, Any] = {"pid": os.getpid(), "started": iso(self.health.started)}
        self.pinger: Any = None
        self.subscribers_seen: tuple[int, str] | None = None
        self.complete: set[str] = set()  # renamed into place since the last ingest
        self.busy: set[str] = self.health.busy  # blocking work under way in threads
        self.instance = settings.cluster.instance
        self.problems_logged: dict[str, str] = {}  # source -> reason, as last logged
        self.leader = False
        self.lease_deadline = 0.0  # monotonic: when this instance stops counting as leader
        self.deferred = False  # an ingest and build was asked for while not leading
        self.build_failures = 0  # in a row: the backoff before the next try
        self.ingest_failures = 0  # the same for ingests
        self.pipeline_retry: asyncio.TimerHandle | None = None
        self.noting: set[asyncio.Task[None]] = set()  # batches of events being sorted
        self._pipeline_process: PipelineProcess | None = None
        self.exit_at_stop = False  # end the process once stopped (`newsdrop run`)

    @property
    def pipeline_process(self) -> PipelineProcess:
        """The worker process that ingests and builds, started on first use (from the
        event loop's thread)."""
        if self._pipeline_process is None:
            self._pipeline_process = PipelineProcess(self.settings)
        return self._pipeline_process

    async def work(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work in a thread, remembering what is under way for the shutdown."""
        return await self.elsewhere(what, asyncio.to_thread(function, *args, **kwargs))

    async def elsewhere(self, what: str, work: Awaitable[T]) -> T:
        """Wait for work done in a thread or a worker process, remembering what is under
        way for the shutdown."""
        self.busy.add(what)
        try:
            return await work
        finally:
            self.busy.discard(what)

    def leading(self) -> bool:
        """This instance holds the leader's lease (with a margin before it runs out)."""
        return self.leader and time.monotonic() < self.lease_deadline

    def request(self) -> None:
        """Ask for an ingest and build; requests made while one runs make one more run."""
        self.wanted.set()

    def write_status(self) -> None:
        """state/service.json: what `newsdrop status` shows about this service."""
        data = json.dumps(self.status, indent=2).encode()
        with contextlib.suppress(OSError):  # a full disk must not stop the service
            write_atomic(
                self.settings.state_dir / state_file(self.settings, STATUS_FILE),
                data,
                durable=False,
            )

    def wake_digests(self) -> None:
        """Run the digest job now (DigestJobs has it): a leader that takes over, say."""
        raise NotImplementedError
