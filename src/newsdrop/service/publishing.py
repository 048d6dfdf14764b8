"""The pipeline's jobs: changes under seeds/ ask for an ingest and a build in the pipeline
process, coalesced while one runs, retried with backoff when one fails; a build's files are
served once the cache has them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from newsdrop.ingest.run import IngestReport
from newsdrop.pipeline import Built, Ingested
from newsdrop.service.base import PIPELINE, ServiceBase, iso, log_failure
from newsdrop.service.watch import Changes, finished_by_rename, temporary

log = logging.getLogger("newsdrop.service")


RETRY_FIRST = 2.0  # seconds after a failed ingest or build (a full disk), doubling


RETRY_MAX = 300.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed ingests or builds in a row."""
    return float(min(RETRY_FIRST * 2 ** min(failures, 16), RETRY_MAX))


CACHE_POLL_SECONDS = 2.0  # notices a `newsdrop build` run from cron


def _sort_changes(changes: Changes, seeds: Path) -> tuple[set[str], bool]:
    """The files a batch of events finished by a rename, and whether it wants an ingest
    (a change to a file ingest reads: temporaries alone do not)."""
    wanted = any(not temporary(Path(path).name) for _, path in changes)
    return finished_by_rename(changes, seeds), wanted


class PipelineJobs(ServiceBase):
    """The pipeline's jobs: changes under seeds/ ask for an ingest and a build in the
    pipeline process, coalesced while one runs, retried with backoff when one fails; a
    build's files are served once the cache has them."""

    def changed(self, changes: Changes) -> None:
        """A batch of the watcher's events. Sorting them grows with the batch (a flood
        renames thousands of files at once), so it is done in a thread, never on the loop."""
        task = asyncio.create_task(self.note_changes(changes))
        self.noting.add(task)  # a reference, so the task is not collected half-way
        task.add_done_callback(self.noting.discard)

    async def note_changes(self, changes: Changes) -> None:
        complete, wanted = await asyncio.to_thread(_sort_changes, changes, self.settings.seeds_dir)
        self.complete |= complete
        if wanted:
            self.request()

    async def pipeline(self) -> None:
        while not self.stopping.is_set():
            waiting = asyncio.create_task(self.wanted.wait())
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait([waiting, stop], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stop.cancel()
            if self.stopping.is_set():
                return
            self.wanted.clear()
            await self.ingest_and_build()

    async def ingest_and_build(self) -> None:
        if not self.leading():  # the leader ingests a shared seeds/ folder, once
            # Kept, not dropped: a stall may outlast the lease's margin while this instance
            # still holds the lease, and then no change of leader would ask again.
            self.deferred = True
            return
        settle_ns = self.settings.watch.settle_ms * 1_000_000
        complete, self.complete = self.complete, set()
        try:
            job = self.pipeline_process.publish(
                now=datetime.now(UTC), settle_ns=settle_ns, complete=complete
            )
            published = await self.elsewhere(PIPELINE, job)
        except Exception as exc:  # one bad run must not end the service
            self.metrics.ingests.labels("failed").inc()
            self.complete |= complete  # still complete at the next try
            # Tried again by itself (a full state/ gets space back): the changes this run
            # missed may bring no other event, and a rescan is an hour away.
            delay = retry_delay(self.ingest_failures)
            self.ingest_failures += 1
            log_failure(
                f"ingest failed; trying again in {delay:.0f} s",
                exc,
                path=str(self.settings.seeds_dir),
            )
            self.retry_pipeline(delay)  # ingest, then build, as any request
            return
        self.ingest_failures = 0
        # Files held by the ingest are looked at again once they may have settled: counted
        # from the ingest's end, so a build that outlasts the settle time asks at once.
        built_for = published.built.seconds if published.built is not None else 0.0
        await self.ingested(published.ingested, max(0.0, settle_ns / 1e9 - built_for))
        if published.build_error is not None:
            self.build_failed(published.build_error)
        elif published.built is not None:
            await self.built(published.built)

    async def ingested(self, done: Ingested, settle_left: float) -> None:
        report = done.report
        self.metrics.ingests.labels("ok").inc()
        self.metrics.ingest_seconds.observe(done.seconds)
        self.health.last_ingest = datetime.now(UTC)
        if report.held:  # files still being written: look again once they may have settled
            asyncio.get_running_loop().call_later(settle_left + 0.05, self.request)
        # What follows grows with the files (problems, their log lines): in a thread.
        await asyncio.to_thread(self.log_ingest, report, done.seconds)
        if done.record_error:
            log.error(done.record_error)
        self.status["last_ingest"] = iso(self.health.last_ingest)

    def log_ingest(self, report: IngestReport, seconds: float) -> None:
        """Log what an ingest did. Per file: call it from a thread."""
        # A problem is logged when it appears or its reason changes, not at every ingest
        # while it stands (`status` lists the standing ones).
        fresh = [p for p in report.problems if self.problems_logged.get(p.source) != p.reason]
        held = {s: self.problems_logged[s] for s in report.held if s in self.problems_logged}
        self.problems_logged = {p.source: p.reason for p in report.problems} | held
        if report.changed or fresh:
            log.info(
                report.summary(),
                extra={"seconds": round(seconds, 3), "held": len(report.held)},
            )
        for problem in fresh:
            log.warning("problem: %s", problem.reason, extra={"path": problem.source})

    def build_failed(self, exc: Exception) -> None:
        self.metrics.builds.labels("failed").inc()
        self.health.last_build_error = str(exc) or exc.__class__.__name__
        self.status["last_build_error"] = self.health.last_build_error
        # Tried again by itself (a full disk gets space back), not at the next document.
        delay = retry_delay(self.build_failures)
        self.build_failures += 1
        log_failure(
            f"build failed; the feeds served are the previous ones; trying again in {delay:.0f} s",
            exc,
        )
        self.retry_pipeline(delay)
        self.write_status()

    async def built(self, done: Built) -> None:
        report = done.report
        self.build_failures = 0
        self.metrics.builds.labels("ok").inc()
        self.metrics.build_seconds.observe(done.seconds)
        if report.changed:  # served before /healthz says the build is done
            await asyncio.to_thread(self.cache.refresh, report.changed)
        self.health.last_build = datetime.now(UTC)
        self.health.last_build_error = ""
        self.status.update(last_build=iso(self.health.last_build), last_build_error="")
        if report.changed:
            log.info(
                f"build: {len(report.written)} written, {len(report.removed)} removed",
                extra={"seconds": round(done.seconds, 3), "published": report.published},
            )
            if self.pinger is not None and done.topics:
                self.pinger.submit(done.topics)
            self.wake_digests()  # new entries: `instant` subscribers hear of them now
        upcoming = await asyncio.to_thread(self.store.next_publication, now=datetime.now(UTC))
        if upcoming is not None and not self.stopping.is_set():  # a future-dated entry's time
            self.scheduler.add_job(
                self.request, "date", run_date=upcoming, id="publish", replace_existing=True
            )
        self.write_status()

    def retry_pipeline(self, delay: float) -> None:
        if self.pipeline_retry is not None:
            self.pipeline_retry.cancel()
        self.pipeline_retry = asyncio.get_running_loop().call_later(delay, self.request)

    async def poll_cache(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=CACHE_POLL_SECONDS)
            # A build of ours refreshes the cache when its files are all in place.
            if not self.stopping.is_set() and PIPELINE not in self.busy:
                await asyncio.to_thread(self.cache.refresh)
