"""The service's pipeline (newsdrop/pipeline.py), in a worker process of its own.

Run in the service's threads, they shared its interpreter lock with the event loop:
while 10,000 files were taken, /atom.xml waited up to 40 ms at p99 (23x idle). Here
both run in one spawned process, kept warm, with its own store connection; its log
lines come back to the service's handlers through a queue.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from newsdrop import logs
from newsdrop.config import Settings
from newsdrop.errors import NewsdropError
from newsdrop.pipeline import Published, publish
from newsdrop.store import opened
from newsdrop.workers import die_with

T = TypeVar("T")

NICENESS = 10  # the pipeline yields the cores to the web answers


class PipelineProcess:
    """A warm worker process that ingests and builds for the service, one run at a time
    as the pipeline asks, at a lower priority (``NICENESS``, its render processes too),
    so that on a small machine it takes what the web answers leave. Made from the event
    loop's thread (Linux ends a worker when the thread that started it ends), and made
    again if it dies (killed for memory, say): the next run gets a new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("spawn")
        self.lines: Any = self.context.Queue()  # log records from the worker
        self.listener = logging.handlers.QueueListener(
            self.lines, *logging.getLogger().handlers, respect_handler_level=True
        )
        self.listener.start()
        self.worker = self._start()

    def _start(self) -> ProcessPoolExecutor:
        worker = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self.context,
            initializer=_start,
            initargs=(os.getpid(), self.lines, logs.levels()),
        )
        worker.submit(_warm)  # started now, from this thread, and warm for the first run
        return worker

    async def publish(self, **options: Any) -> Published:
        """An ingest and the build after it (``options``: those of ``pipeline.publish``)."""
        published: Published = await self._run(_publish, self.settings, options)
        return published

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.wrap_future(self.worker.submit(function, *args))
        except BrokenProcessPool as exc:
            self.worker.shutdown(wait=False)
            self.worker = self._start()
            raise NewsdropError(  # said as what it is, not as a bug with its traceback
                "the service's pipeline process ended unexpectedly (out of memory, or "
                "killed?); a new one is started, and the work is tried again"
            ) from exc

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)  # idle: it ends at once
        self.listener.stop()


# --- in the worker processes ---------------------------------------------------------------


def _start(parent: int, lines: Any, levels: dict[str, int]) -> None:
    die_with(parent)
    os.nice(NICENESS)
    logs.forward(logging.handlers.QueueHandler(lines), levels)


def _warm() -> None:
    """Nothing: the imports are done when the worker starts."""


def _publish(settings: Settings, options: dict[str, Any]) -> Published:
    # Woken by every file event: a run that changed nothing is not recorded.
    return publish(settings, opened(settings.store_url), record_idle=False, **options)
