"""The service's ingest and build, in worker processes of their own.

Run in the service's threads, they shared its interpreter lock with the event loop:
while 10,000 files were taken, /atom.xml waited up to 40 ms, and an ingest and a build
could not use two cores at once. Here each runs in a spawned process (two, kept warm:
an ingest and a build may run together), with its own store connection; their log
lines come back to the service's handlers through a queue.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, TypeVar

from newsdrop import logs
from newsdrop.build import BuildReport
from newsdrop.build import build as run_build
from newsdrop.config import Settings
from newsdrop.ingest import IngestReport
from newsdrop.ingest import ingest as run_ingest
from newsdrop.store import Store
from newsdrop.workers import die_with

log = logging.getLogger("newsdrop.service")
T = TypeVar("T")

BUILD_NICENESS = 10  # the build yields the cores to the ingest and the web server


class PipelineProcesses:
    """A warm worker process that ingests and one that builds, for the service: a build
    of what a long ingest committed so far runs beside it. The builder runs at a lower
    priority (``BUILD_NICENESS``, its render workers too), so that on a small machine it
    takes only what the ingest and the answers leave. Made from the event loop's thread
    (Linux ends a worker when the thread that started it ends), and made again if one
    dies (killed for memory, say): the next run gets a new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.lines: Any = self.context.Queue()  # log records from the workers
        self.listener = logging.handlers.QueueListener(
            self.lines, *logging.getLogger().handlers, respect_handler_level=True
        )
        self.listener.start()
        self.ingester = self._worker(niceness=0)
        self.builder = self._worker(niceness=BUILD_NICENESS)

    def _worker(self, *, niceness: int) -> ProcessPoolExecutor:
        worker = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self.context,
            initializer=_start,
            initargs=(os.getpid(), self.lines, logs.levels(), niceness),
        )
        worker.submit(_warm)  # started now, from this thread, and warm for the first run
        return worker

    async def ingest(self, **options: Any) -> IngestReport:
        try:
            report: IngestReport = await _result(
                self.ingester.submit(_ingest, self.settings, options)
            )
        except BrokenProcessPool:
            self.ingester = self._worker(niceness=0)
            raise
        return report

    async def build(self, *, now: datetime) -> BuildReport:
        try:
            report: BuildReport = await _result(self.builder.submit(_build, self.settings, now))
        except BrokenProcessPool:
            self.builder = self._worker(niceness=BUILD_NICENESS)
            raise
        return report

    def close(self) -> None:
        for worker in (self.ingester, self.builder):
            worker.shutdown(wait=False, cancel_futures=True)
        self.listener.stop()


async def _result(future: Future[T]) -> T:
    try:
        return await asyncio.wrap_future(future)
    except BrokenProcessPool as exc:
        raise BrokenProcessPool(
            "a worker process of the service ended unexpectedly (out of memory?); a new "
            "one is started, and the work is tried again"
        ) from exc


# --- in the worker processes ---------------------------------------------------------------

_stores: dict[str, Store] = {}


def _start(parent: int, lines: Any, levels: dict[str, int], niceness: int) -> None:
    die_with(parent)
    os.nice(niceness)
    logs.forward(logging.handlers.QueueHandler(lines), levels)


def _warm() -> None:
    """Nothing: the imports are done when the worker starts."""


def _store(settings: Settings) -> Store:
    if settings.store_url not in _stores:
        _stores[settings.store_url] = Store.open(settings.store_url)
    return _stores[settings.store_url]


def _ingest(settings: Settings, options: dict[str, Any]) -> IngestReport:
    return run_ingest(settings, _store(settings), **options)


def _build(settings: Settings, now: datetime) -> BuildReport:
    return run_build(settings, _store(settings), now=now)
