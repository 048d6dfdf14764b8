"""The digest job: sends what is due at each subscriber's time, wakes for a queued confirmation
mail or a new subscriber, and joins a send of the leader's when this instance does not lead."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from newsdrop.errors import StoreFullError
from newsdrop.mail.deliver import send_digests
from newsdrop.mail.schedule import Schedule, next_instant
from newsdrop.model import SubscriberState
from newsdrop.service.base import DIGEST_RUN, ServiceBase, in_words, iso, log_failure

log = logging.getLogger("newsdrop.service")


DIGEST_CHECK = timedelta(minutes=10)  # the longest sleep between looks at the ledger


PAUSED_RETRY = timedelta(minutes=1)  # after a pause (server down, a template broken)


SUBSCRIBERS_POLL_SECONDS = 60.0  # notices `newsdrop subscribers add` while running


HELPER_POLL_SECONDS = 1.0  # how soon an instance that does not lead joins a send


class DigestJobs(ServiceBase):
    """The digest job: sends what is due at each subscriber's time, wakes for a queued
    confirmation mail or a new subscriber, and joins a send of the leader's when this
    instance does not lead."""

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
            log_failure("digest run failed", exc)
            if isinstance(exc, StoreFullError):  # (opening periods): said by /healthz too
                self.health.store_write = in_words(exc)
                paused = True
        else:
            self.metrics.digest_runs.labels("ok").inc()
            paused = bool(report.paused)  # deliver.py logs each failure
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
                self.status["last_digest"] = iso(datetime.now(UTC))
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
        seen: set[tuple[str, str, str | None, str | None]] = set()  # most share a schedule
        for person in self.store.subscribers(state=SubscriberState.ACTIVE):
            if person.frequency == "instant":  # (new entries wake the job: see `built`)
                gap_ends = next_instant(person, self.settings)
                if gap_ends is not None and gap_ends > now:
                    soonest = min(soonest, gap_ends)
            elif (key := Schedule.key(person)) not in seen:
                seen.add(key)
                soonest = min(soonest, Schedule.of(person, self.settings).next_due(now))
        for retry in (self.store.next_retry(), self.store.next_confirmation()):
            if retry is not None:  # (a confirmation queued during the run: at once)
                soonest = min(soonest, max(retry, now + timedelta(seconds=1)))
        return soonest + timedelta(milliseconds=200)  # just after the instant, never before
