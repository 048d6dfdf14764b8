"""What `/metrics` reports, in Prometheus text format (the official client library).

Counters and histograms of this process's own work are kept as it goes; the
store's figures (entries, problems, deliveries, queue depth) are read at scrape
time by a collector, so that a `digest send` from cron shows up too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from newsdrop.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One registry per service (tests start several in one process)."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.builds = Counter(
            "newsdrop_builds", "Builds of feeds/, by outcome.", ["outcome"], registry=self.registry
        )
        self.build_seconds = Histogram(
            "newsdrop_build_seconds",
            "Time a build of feeds/ took.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.ingests = Counter(
            "newsdrop_ingests", "Ingest runs over seeds/, by outcome.", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.ingest_seconds = Histogram(
            "newsdrop_ingest_seconds",
            "Time an ingest run took.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.digest_runs = Counter(
            "newsdrop_digest_runs", "Digest runs, by outcome.", ["outcome"], registry=self.registry
        )
        self.registry.register(_StoreCollector(store))

    def render(self) -> bytes:
        """The exposition; blocking (it queries the store), so the server calls it in a thread."""
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        counts = self.store.counts(now=now)
        entries = GaugeMetricFamily("newsdrop_entries", "Entries in the store.", labels=["state"])
        for state in ("published", "scheduled", "withdrawn"):
            entries.add_metric([state], counts[state])
        yield entries
        yield GaugeMetricFamily(
            "newsdrop_problems", "Documents in seeds/ that are problems.", value=counts["problems"]
        )
        by_state = self.store.delivery_counts()
        deliveries = GaugeMetricFamily(
            "newsdrop_deliveries", "Digest deliveries in the ledger.", labels=["state"]
        )
        for state in ("queued", "sending", "retrying", "sent", "failed", "skipped", "cancelled"):
            deliveries.add_metric([state], by_state.get(state, 0))
        yield deliveries
        yield GaugeMetricFamily(
            "newsdrop_queue_depth",
            "Digests waiting to be sent (queued, sending or retrying).",
            value=sum(by_state.get(s, 0) for s in ("queued", "sending", "retrying")),
        )
        mails = GaugeMetricFamily(
            "newsdrop_confirmations", "Confirmation mails (double opt-in).", labels=["state"]
        )
        confirming = self.store.confirmation_counts()
        for state in ("queued", "sending", "retrying", "sent", "failed", "cancelled"):
            mails.add_metric([state], confirming.get(state, 0))
        yield mails
        for period in self.store.returned_by_period(periods=1):  # the latest that sent
            for name, value, what in (
                ("bounce", period.bounce_rate, "came back as a failure"),
                ("complaint", period.complaint_rate, "came back as a complaint"),
            ):
                yield GaugeMetricFamily(
                    f"newsdrop_last_period_{name}_ratio",
                    f"Of the last period's digests, the share that {what}.",
                    value=value,
                )
            yield GaugeMetricFamily(
                "newsdrop_complaints_over_warning",
                "1 when the last period's complaints passed 0.1% of its digests (providers "
                "refuse mail from 0.3%).",
                value=float(period.complaints_high),
            )
        kept = GaugeMetricFamily(
            "newsdrop_returned_mail",
            "Returned mail kept, by what came of it (dropped: forged or stale).",
            labels=["outcome"],
        )
        for outcome, count in self.store.returned_counts().items():
            kept.add_metric([outcome], count)
        yield kept
        last = self.store.last_sent()
        yield GaugeMetricFamily(
            "newsdrop_last_digest_timestamp_seconds",
            "When the last digest was delivered (Unix time; 0: never).",
            value=last.timestamp() if last else 0,
        )
