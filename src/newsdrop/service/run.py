"""`newsdrop run`: the watcher, the scheduler and the web server in one asyncio process.

The event loop only waits and answers: ingest and builds go to a worker process
(``pipeline_process``), digest runs and every store call to worker threads, so
the server answers while a 10,000-file ingest runs. APScheduler is a
wake-up, never the truth: the digest ledger decides what is due, so a missed,
early or doubled wake-up costs nothing. The process owns its shutdown (uvicorn's
own signal handling would re-raise SIGTERM and exit 143): stop accepting, let
SMTP transactions in flight finish, exit 0 within ten seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from newsdrop import loop
from newsdrop.config import Settings, instance_secret
from newsdrop.errors import ConfigError, NewsdropError, StoreFullError, UsageError
from newsdrop.ingest.run import IngestReport
from newsdrop.mail.deliver import send_digests
from newsdrop.mail.dkim import dkim_key
from newsdrop.mail.schedule import Schedule
from newsdrop.model import Site, SubscriberState
from newsdrop.publish.build import write_atomic
from newsdrop.serve.files import FileCache
from newsdrop.serve.metrics import Metrics
from newsdrop.serve.web import Health, Web, server_config
from newsdrop.service.pipeline_process import PipelineProcess
from newsdrop.service.watch import Changes, finished_by_rename, temporary, watch_seeds
from newsdrop.store import Store

log = logging.getLogger("newsdrop.service.run")
T = TypeVar("T")

LOCK_FILE = "run.lock"
STATUS_FILE = "service.json"
SHUTDOWN_SECONDS = 8.0  # of the ten a supervisor allows, with a margin
PIPELINE_GRACE_SECONDS = 2.0  # an ingest or build may finish within this at shutdown
DIGEST_RUN = "a digest run"
BUILD = "a build"
RETRY_FIRST = 2.0  # seconds after a failed ingest or build (a full disk), doubling
RETRY_MAX = 300.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed ingests or builds in a row."""
    return float(min(RETRY_FIRST * 2 ** min(failures, 16), RETRY_MAX))


DIGEST_CHECK = timedelta(minutes=10)  # the longest sleep between looks at the ledger
PAUSED_RETRY = timedelta(minutes=1)  # after a pause (server down, a template broken)
CACHE_POLL_SECONDS = 2.0  # notices a `newsdrop build` run from cron
SUBSCRIBERS_POLL_SECONDS = 60.0  # notices `newsdrop subscribers add` while running
HELPER_POLL_SECONDS = 1.0  # how soon an instance that does not lead joins a send
LEADER = "leader"  # the lease of the instance that ingests, builds and opens periods


# --- the instance lock and the status file ---------------------------------------------------


def _own(settings: Settings, name: str) -> str:
    """state/ file names are per instance when [cluster] instance names one."""
    instance = settings.cluster.instance
    return name if not instance else name.replace(".", f"-{instance}.", 1)


@contextlib.contextmanager
def instance_lock(settings: Settings) -> Iterator[None]:
    """One `newsdrop run` per instance: an flock on state/run.lock (run-<instance>.lock
    with [cluster] instance), released by the kernel when the process ends however it
    ends (no stale lock after a SIGKILL)."""
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    path = state / _own(settings, LOCK_FILE)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        other = read_status(settings) or {}
        raise UsageError(
            f"another `newsdrop run` (pid {other.get('pid', '?')}) is already running on "
            f"{settings.home} (it holds {path}); stop it first, or use that one"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def read_status(settings: Settings) -> dict[str, Any] | None:
    try:
        path = settings.state_dir / _own(settings, STATUS_FILE)
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def running_status(settings: Settings) -> dict[str, Any] | None:
    """What the service running on this instance last reported; None when none runs."""
    path = settings.state_dir / _own(settings, LOCK_FILE)
    try:
        handle = path.open("r")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_status(settings) or {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


# --- the service -------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the service decides when and how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Service:
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
        self.status: dict[str, Any] = {"pid": os.getpid(), "started": _iso(self.health.started)}
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

    @property
    def pipeline_process(self) -> PipelineProcess:
        """The worker process that ingests and builds, started on first use (from the
        event loop's thread)."""
        if self._pipeline_process is None:
            self._pipeline_process = PipelineProcess(self.settings)
        return self._pipeline_process

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
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        background = [
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
        if self._pipeline_process is not None and not unfinished:
            self._pipeline_process.close()
        self.status["stopped"] = _iso(datetime.now(UTC))
        self.write_status()
        with contextlib.suppress(Exception):  # hand over at once, not when the lease runs out
            await asyncio.wait_for(asyncio.to_thread(self.step_down), timeout=2)
        if unfinished:
            # A thread cannot be interrupted, and Python would wait for it (and for the
            # pipeline process's run) at exit. What it was doing is safe to cut: ingest and
            # the ledger commit in transactions, files are replaced atomically, the worker
            # processes die with this one, and the next start redoes what is missing.
            log.warning(
                "stopped with %s under way; the next start finishes it", " and ".join(unfinished)
            )
            logging.shutdown()
            os._exit(0)
        log.info("stopped")

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

    # --- leading: several instances may share the store ------------------------------------

    def leading(self) -> bool:
        """This instance holds the leader's lease (with a margin before it runs out)."""
        return self.leader and time.monotonic() < self.lease_deadline

    async def lead(self) -> None:
        """Take or renew the leader's lease, and say that this instance is alive. The leader
        ingests, builds and opens digest periods; every instance serves and sends."""
        seconds = self.settings.cluster.lease_seconds
        asked = time.monotonic()
        now = datetime.now(UTC)
        try:
            leading = await asyncio.to_thread(
                self.store.take_lease, LEADER, self.instance, now=now, seconds=seconds
            )
            await asyncio.to_thread(
                self.store.heartbeat, self.instance, pid=os.getpid(), host=socket.gethostname(),
                url=self.status["url"], started=self.health.started, now=now,
            )  # fmt: skip
        except Exception as exc:  # the store is out of reach: stop leading, keep serving
            # Said once, as what it is: not "another instance leads" (none may).
            if not self.health.store_write:
                _log_failure("this instance stops leading: the lease could not be written", exc)
            self.health.store_write = _in_words(exc)
            leading = False
        else:
            if self.health.store_write:
                log.info("the store can be written again", extra={"instance": self.instance})
            self.health.store_write = ""
        if leading:
            self.lease_deadline = asked + seconds * 0.8
        self.health.leader = leading
        if leading != self.leader:
            self.leader = leading
            self.status["leader"] = leading
            if leading or not self.health.store_write:
                log.info(
                    "this instance leads: it ingests, builds and opens digest periods"
                    if leading
                    else "another instance leads now; this one serves and sends",
                    extra={"instance": self.instance},
                )
            if leading:
                self.request()
                self.wake_digests()
            self.write_status()
        if leading and self.deferred:  # a request made while not leading runs now
            self.deferred = False
            self.request()

    async def keep_leading(self) -> None:
        every = self.settings.cluster.lease_seconds / 3
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=every)
            if not self.stopping.is_set():
                await self.lead()

    def step_down(self) -> None:
        if self.leader:
            self.store.release_lease(LEADER, self.instance)
        self.store.instance_stopped(self.instance, now=datetime.now(UTC))

    # --- ingest and build ---------------------------------------------------------------------

    def request(self) -> None:
        """Ask for an ingest and build; requests made while one runs make one more run."""
        self.wanted.set()

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
        started = time.monotonic()
        complete, self.complete = self.complete, set()
        try:
            job = self.pipeline_process.ingest(
                now=datetime.now(UTC), settle_ns=settle_ns, complete=complete
            )
            report = await self.elsewhere("an ingest", job)
        except Exception as exc:  # one bad run must not end the service
            self.metrics.ingests.labels("failed").inc()
            self.complete |= complete  # still complete at the next try
            # Tried again by itself (a full state/ gets space back): the changes this run
            # missed may bring no other event, and a rescan is an hour away.
            delay = retry_delay(self.ingest_failures)
            self.ingest_failures += 1
            _log_failure(
                f"ingest failed; trying again in {delay:.0f} s",
                exc,
                path=str(self.settings.seeds_dir),
            )
            self.retry_pipeline(delay)  # ingest, then build, as any request
            return
        self.ingest_failures = 0
        seconds = time.monotonic() - started
        self.metrics.ingests.labels("ok").inc()
        self.metrics.ingest_seconds.observe(seconds)
        self.health.last_ingest = datetime.now(UTC)
        if report.held:  # files still being written: look again once they may have settled
            asyncio.get_running_loop().call_later(settle_ns / 1e9 + 0.05, self.request)
        # What follows grows with the files (problems, their log lines): in a thread.
        try:
            await asyncio.to_thread(self.record_ingest, report, seconds, self.health.last_ingest)
        except Exception as exc:  # the record of a run (a full state/, say), not its work
            _log_failure("the ingest's record could not be written", exc)
        self.status["last_ingest"] = _iso(self.health.last_ingest)
        await self.build()

    def record_ingest(self, report: IngestReport, seconds: float, finished: datetime) -> None:
        """Log and record what an ingest did. Blocking, and per file: call it from a thread."""
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
        if report.changed or report.problems:
            self.store.record_run(
                started=finished - timedelta(seconds=seconds),
                finished=finished,
                summary=report.as_dict(),
            )
        for problem in fresh:
            log.warning("problem: %s", problem.reason, extra={"path": problem.source})

    async def build(self) -> None:
        started = time.monotonic()
        try:
            report = await self.elsewhere(BUILD, self.pipeline_process.build(now=datetime.now(UTC)))
        except Exception as exc:
            self.metrics.builds.labels("failed").inc()
            self.health.last_build_error = str(exc) or exc.__class__.__name__
            self.status["last_build_error"] = self.health.last_build_error
            # Tried again by itself (a full disk gets space back), not at the next document.
            delay = retry_delay(self.build_failures)
            self.build_failures += 1
            _log_failure(
                f"build failed; the feeds served are the previous ones; trying again in "
                f"{delay:.0f} s",
                exc,
            )
            self.retry_pipeline(delay)
            self.write_status()
            return
        self.build_failures = 0
        seconds = time.monotonic() - started
        self.metrics.builds.labels("ok").inc()
        self.metrics.build_seconds.observe(seconds)
        if report.changed:  # served before /healthz says the build is done
            await asyncio.to_thread(self.cache.refresh, report.changed)
        self.health.last_build = datetime.now(UTC)
        self.health.last_build_error = ""
        self.status.update(last_build=_iso(self.health.last_build), last_build_error="")
        if report.changed:
            log.info(
                f"build: {len(report.written)} written, {len(report.removed)} removed",
                extra={"seconds": round(seconds, 3), "published": report.published},
            )
            # A list of every file written (a flood writes thousands): sorted in a thread.
            base_url = self.settings.site.base_url
            topics = await asyncio.to_thread(report.changed_feeds, base_url)
            if self.pinger is not None and topics:
                self.pinger.submit(topics)
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
            if not self.stopping.is_set() and BUILD not in self.busy:
                await asyncio.to_thread(self.cache.refresh)

    # --- digests ------------------------------------------------------------------------------

    async def digests(self) -> None:
        """Open due periods and send what is queued (and due retries); then sleep until the
        next due instant or retry, or DIGEST_CHECK at most (subscribers added from the
        command line meanwhile are seen then)."""
        paused = False
        try:
            report = await self.work(
                DIGEST_RUN,
                send_digests,
                self.settings,
                self.store,
                now=datetime.now(UTC),
                stop=self.stop_sending,
                open_due=self.leading(),
                instance=self.instance,
            )
        except Exception as exc:
            self.metrics.digest_runs.labels("failed").inc()
            _log_failure("digest run failed", exc)
            if isinstance(exc, StoreFullError):  # (opening periods): said by /healthz too
                self.health.store_write = _in_words(exc)
                paused = True
        else:
            self.metrics.digest_runs.labels("ok").inc()
            paused = bool(report.paused)  # each failure, retry and pause is logged by the mailer
            if report.store_error:
                self.health.store_write = (
                    f"the store cannot be written: the disk holding {report.store_full} is full; "
                    "free space there"
                    if report.store_full
                    else "the store cannot be written; see the service's log"
                )
            if report.opened or report.sent or report.confirmations:
                log.info(
                    f"digests: {len(report.sent)} sent, {report.skipped} empty periods skipped, "
                    f"{len(report.retrying)} to retry, {len(report.failed)} failed",
                    extra={
                        "opened": len(report.opened),
                        "confirmations": len(report.confirmations),
                    },
                )
                self.status["last_digest"] = _iso(datetime.now(UTC))
                self.write_status()
        if not self.stopping.is_set():
            if paused:  # the server, our account or a template: try again in a while
                # (within one period with short test periods, as for new subscribers)
                seconds = self.settings.digest.interval_seconds or PAUSED_RETRY.total_seconds()
                wake = datetime.now(UTC) + min(PAUSED_RETRY, timedelta(seconds=seconds))
            elif self.leading():
                wake = await asyncio.to_thread(self.next_digest_time, datetime.now(UTC))
            else:  # a helper: look for queued digests to help send
                wake = datetime.now(UTC) + timedelta(seconds=HELPER_POLL_SECONDS)
            self.scheduler.add_job(
                self.digests, "date", run_date=wake, id="digests", replace_existing=True
            )

    def wake_digests(self) -> None:
        """Look at the ledger now: a subscriber joined, so the next due instant may be sooner."""
        if not self.stopping.is_set():
            self.scheduler.add_job(
                self.digests, "date", run_date=datetime.now(UTC), id="digests",
                replace_existing=True,
            )  # fmt: skip

    async def watch_subscribers(self) -> None:
        """Subscribers added or reactivated from the command line are noticed within a
        minute (one cheap query), not at the next DIGEST_CHECK."""
        version = await asyncio.to_thread(self.store.subscribers_version)
        if self.subscribers_seen is not None and version != self.subscribers_seen:
            self.wake_digests()
        self.subscribers_seen = version

    def next_digest_time(self, now: datetime) -> datetime:
        soonest = now + DIGEST_CHECK
        for person in self.store.subscribers(state=SubscriberState.ACTIVE):
            soonest = min(soonest, Schedule.of(person, self.settings.digest).next_due(now))
        for retry in (self.store.next_retry(), self.store.next_confirmation()):
            if retry is not None:  # (a confirmation queued during the run: at once)
                soonest = min(soonest, max(retry, now + timedelta(seconds=1)))
        return soonest + timedelta(milliseconds=200)  # just after the instant, never before

    def write_status(self) -> None:
        """state/service.json: what `newsdrop status` shows about this service."""
        data = json.dumps(self.status, indent=2).encode()
        with contextlib.suppress(OSError):  # a full disk must not stop the service
            write_atomic(
                self.settings.state_dir / _own(self.settings, STATUS_FILE), data, durable=False
            )


def _sort_changes(changes: Changes, seeds: Path) -> tuple[set[str], bool]:
    """The files a batch of events finished by a rename, and whether it wants an ingest
    (a change to a file ingest reads: temporaries alone do not)."""
    wanted = any(not temporary(Path(path).name) for _, path in changes)
    return finished_by_rename(changes, seeds), wanted


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


def _in_words(exc: BaseException) -> str:
    """What /healthz says of a store that cannot be written: no SQL, no absolute path."""
    if isinstance(exc, StoreFullError):
        return (
            f"the store cannot be written: the disk holding {exc.where} is full; free space there"
        )
    if isinstance(exc, NewsdropError):
        return "the store cannot be written; see the service's log"
    return "the store does not answer; see the service's log"


def _log_failure(what: str, exc: BaseException, **context: str) -> None:
    if isinstance(exc, NewsdropError):
        log.error("%s: %s", what, exc, extra=context)
    else:  # a bug: keep the traceback for the report
        log.error("%s: %s: %s", what, exc.__class__.__name__, exc, exc_info=exc, extra=context)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


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
            loop.run(service.run())
        finally:
            store.close()
