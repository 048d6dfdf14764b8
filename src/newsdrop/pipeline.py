"""The pipeline, written once for every way it runs: `newsdrop publish` (and its halves,
`ingest` and `build`) from cron, and `newsdrop run` in its pipeline process.

seeds/ into the store (the run recorded), the store into feeds/, and the feeds that
changed, for the WebSub pings. The entry pages of a large ingest are rendered while it
still runs (publish/render_ahead.py), and the build goes on with them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from newsdrop.config import Settings
from newsdrop.errors import NewsdropError
from newsdrop.ingest.run import IngestReport
from newsdrop.ingest.run import ingest as run_ingest
from newsdrop.publish.build import BuildReport
from newsdrop.publish.build import build as run_build
from newsdrop.publish.render_ahead import RenderAhead
from newsdrop.store import Store

log = logging.getLogger(__name__)

PING_WAIT_SECONDS = 30.0  # a one-shot run waits this long at most for the hub


@dataclass
class Ingested:
    """What an ingest did, how long it took, and whether its run could be recorded."""

    report: IngestReport
    seconds: float
    record_error: str = ""  # the run's record could not be written (the work stands)


@dataclass
class Built:
    """What a build wrote, how long it took, and the feed URLs a WebSub hub must hear."""

    report: BuildReport
    seconds: float
    topics: list[str] = field(default_factory=list)


@dataclass
class Published:
    """An ingest and the build after it. A build that failed leaves the ingest's work in
    the store: ``build_error`` says why, and the caller tries the build again."""

    ingested: Ingested
    built: Built | None = None
    build_error: Exception | None = None


def ingest_seeds(
    settings: Settings, store: Store, *, now: datetime, record_idle: bool = True, **options: Any
) -> Ingested:
    """Read seeds/ into the store (``options``: those of ``ingest.run.ingest``) and record
    the run; with ``record_idle`` off (the service, woken by every file event), only a
    run that changed something or met a problem is recorded."""
    started = time.monotonic()
    report = run_ingest(settings, store, now=now, **options)
    ingested = Ingested(report, time.monotonic() - started)
    if record_idle or report.changed or report.problems:
        try:
            store.record_run(started=now, finished=datetime.now(UTC), summary=report.as_dict())
        except NewsdropError as exc:  # the record of a run (a full state/, say), not its work
            ingested.record_error = f"the ingest's record could not be written: {exc}"
    return ingested


def build_feeds(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    full: bool = False,
    ahead: RenderAhead | None = None,
) -> Built:
    """Bring feeds/ in line with the store; name the feeds a WebSub hub must hear of."""
    started = time.monotonic()
    report = run_build(settings, store, now=now, full=full, ahead=ahead)
    topics = report.changed_feeds(settings.site.base_url) if settings.feeds.websub_hub else []
    return Built(report, time.monotonic() - started, topics)


def publish(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    full: bool = False,
    record_idle: bool = True,
    **options: Any,
) -> Published:
    """Ingest, then build: the whole pipeline but the pings (``ping`` from a one-shot run;
    the service keeps one pinger). An ingest that fails raises; a build that fails is
    returned, with the ingest it follows."""
    ahead = RenderAhead(settings, now=now)
    try:
        ingested = ingest_seeds(
            settings, store, now=now, record_idle=record_idle, committed=ahead.committed, **options
        )
        try:
            built = build_feeds(settings, store, now=datetime.now(UTC), full=full, ahead=ahead)
        except Exception as exc:  # the caller says it and tries again
            return Published(ingested, build_error=exc)
        return Published(ingested, built)
    finally:
        ahead.close()


def ping(settings: Settings, topics: list[str]) -> None:
    """Tell the WebSub hub of the feeds a one-shot run changed, waiting a bounded time."""
    hub = settings.feeds.websub_hub
    if not hub or not topics:
        return
    from newsdrop.publish.websub import Pinger  # httpx: only when there is a hub

    pinger = Pinger(hub)
    pinger.submit(topics)
    pinger.close(wait=PING_WAIT_SECONDS)
