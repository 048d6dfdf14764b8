"""What is due: each subscriber's periods (a period is named by its due instant in UTC: their
hour, else [digest] send_at, on a local day of their zone: every day, their weekday, or the
first of the month), the periods to open in the
ledger, what a subscriber wants of the entries, and the next period a preview shows. The
ledger and `digest preview` both go by these; pure but for the store reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsdrop.config import Settings
from newsdrop.i18n import N_, day_name, moment_name, month_name, translations, weekday_name
from newsdrop.model import WEEKDAYS, StoredEntry, Subscriber, SubscriberState
from newsdrop.store import Period, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a subscriber's periods fall due."""

    zone: ZoneInfo
    send_at: time
    weekday: int | None  # 0 = Monday; None for daily and monthly
    monthly: bool  # on the first day of each month
    interval: int  # seconds; > 0 replaces every frequency (testing and demonstrations)

    @classmethod
    def of(cls, subscriber: Subscriber, settings: Settings) -> Schedule:
        digest = settings.digest
        weekly = subscriber.frequency == "weekly"
        day = subscriber.weekday or digest.weekday
        return cls(
            zone=zone_of(subscriber, settings.site.timezone),
            send_at=time.fromisoformat(subscriber.send_at)
            if subscriber.send_at
            else digest.send_time,
            weekday=WEEKDAYS.index(day) if weekly else None,
            monthly=subscriber.frequency == "monthly",
            interval=digest.interval_seconds,
        )

    @staticmethod
    def key(subscriber: Subscriber) -> tuple[str, str, str | None, str | None]:
        """What a subscriber's schedule depends on besides the settings: most share one."""
        return subscriber.timezone, subscriber.frequency, subscriber.send_at, subscriber.weekday

    def due_on(self, day: date) -> datetime | None:
        """The due instant (UTC) of a local date, or None if no period ends that day."""
        if self.weekday is not None and day.weekday() != self.weekday:
            return None
        if self.monthly and day.day != 1:
            return None
        return self._at(day)

    def _at(self, day: date) -> datetime:
        """The instant (UTC) of the send time on a local date."""
        return datetime.combine(day, self.send_at, self.zone).astimezone(UTC)

    def last_due(self, now: datetime) -> datetime:
        """The latest due instant at or before ``now``."""
        if self.interval:
            seconds = int(now.timestamp()) // self.interval * self.interval
            return datetime.fromtimestamp(seconds, UTC)
        day = now.astimezone(self.zone).date() + timedelta(days=1)
        while True:  # at most three steps back, from one day that may be due to the next
            day = self._on_or_before(day)
            due = self._at(day)
            if due <= now:
                return due
            day -= timedelta(days=1)

    def next_due(self, after: datetime) -> datetime:
        """The first due instant strictly after ``after``."""
        if self.interval:
            seconds = int(after.timestamp()) // self.interval * self.interval + self.interval
            return datetime.fromtimestamp(seconds, UTC)
        day = after.astimezone(self.zone).date() - timedelta(days=1)
        while True:  # at most three steps on
            day = self._on_or_after(day)
            due = self._at(day)
            if due > after:
                return due
            day += timedelta(days=1)

    def _on_or_before(self, day: date) -> date:
        """The latest day on or before ``day`` on which a period may end."""
        if self.weekday is not None:
            return day - timedelta(days=(day.weekday() - self.weekday) % 7)
        return day.replace(day=1) if self.monthly else day

    def _on_or_after(self, day: date) -> date:
        """The earliest day on or after ``day`` on which a period may end."""
        if self.weekday is not None:
            return day + timedelta(days=(self.weekday - day.weekday()) % 7)
        if self.monthly and day.day != 1:
            return (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        return day


def wanted(subscriber: Subscriber, entries: list[StoredEntry]) -> list[StoredEntry]:
    """The entries a subscriber asked for: all, or those with one of their tags."""
    if not subscriber.tags:
        return entries
    tags = {t.lower() for t in subscriber.tags}
    return [s for s in entries if tags & {t.lower() for t in s.entry.tags}]


_ZONES_WARNED: set[str] = set()


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    # zoneinfo keeps 8 zones strongly; subscribers in hundreds of zones read each zone's
    # file again and again without this.
    return ZoneInfo(name)


def zone_of(subscriber: Subscriber, site_zone: str) -> ZoneInfo:
    """A subscriber's time zone; the site's when this system's IANA database lacks theirs
    (a zone it dropped, or one missing on a new machine), said once per zone: a choice
    never breaks a digest."""
    try:
        return _zone(subscriber.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        if subscriber.timezone not in _ZONES_WARNED:
            _ZONES_WARNED.add(subscriber.timezone)
            log.warning(
                "time zone %r (subscriber %d, and any other who chose it) is not in this "
                "system's IANA database: their digests go by the site's zone %s until it is "
                "fixed (newsdrop subscribers edit EMAIL --tz ZONE)",
                subscriber.timezone, subscriber.id, site_zone,
            )  # fmt: skip
        return ZoneInfo(site_zone)


def period_label(
    due: datetime,
    subscriber: Subscriber,
    site_zone: str,
    language: str = "en",
    home: Path | None = None,
) -> str:
    """How a digest names its period, in ``language``: the day, the week or the month it
    ends (an instant mail: the minute it closed, in the subscriber's zone)."""
    zone = zone_of(subscriber, site_zone)
    local = due.astimezone(zone)
    if subscriber.frequency == "weekly":
        week = translations(language, home).gettext(N_("the week to %(day)s"))
        return week % {"day": day_name(local, language)}
    if subscriber.frequency == "monthly":
        return month_name(local - timedelta(days=1), language)  # due on the 1st: the one before
    if subscriber.frequency == "instant":
        return moment_name(local, language, zone, weekday=True)
    return weekday_name(local, language)


def due_periods(
    settings: Settings, store: Store, *, now: datetime, close_now: bool = False
) -> list[Period]:
    """The period each active subscriber has due at ``now`` that the ledger lacks. One
    period spans everything since the last one, however many were missed."""
    return [
        period
        for page in due_period_pages(settings, store, now=now, close_now=close_now)
        for period in page
    ]


def due_period_pages(
    settings: Settings, store: Store, *, now: datetime, close_now: bool = False
) -> Iterator[list[Period]]:
    """``due_periods`` a page of subscribers at a time (read as the pages are consumed), so
    that opening them does not hold every subscriber in memory."""
    top = store.max_seq()  # entries published after this go to the next digests
    windows: dict[int, list[StoredEntry]] = {}  # most subscribers share one window
    seq_at = lru_cache(maxsize=4096)(store.seq_at)  # most joined at one of a few instants
    contents: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}  # one tuple, shared
    dues: dict[tuple[str, str, str | None, str | None], datetime] = {}  # by Schedule.key
    for people in store.subscriber_pages(state=SubscriberState.ACTIVE):
        periods = []
        for person in people:
            if person.paused(now):
                continue
            start, low = window_start(store, person, seq_at=seq_at)
            instant = person.frequency == "instant"
            if instant:
                due = instant_due(person, start, settings, now=now, close_now=close_now)
            else:
                key = Schedule.key(person)
                if key not in dues:
                    dues[key] = now if close_now else Schedule.of(person, settings).last_due(now)
                due = dues[key]
            if due is None or due <= start:
                continue  # nothing has come due since the last digest (or since they joined)
            if low not in windows:
                if len(windows) >= 64:  # bounded: a list of one-off windows
                    windows.clear()
                    contents.clear()
                windows[low] = store.published_after_seq(low, top)
            ids = contents.get((low, person.tags))
            if ids is None:
                if len(contents) >= 1024:
                    contents.clear()
                ids = tuple(s.entry.id for s in wanted(person, windows[low]))
                contents[(low, person.tags)] = ids
            if instant and not ids:
                continue  # an instant mail is for something new: none, no period
            empty = not ids and settings.digest.skip_empty
            periods.append(
                Period(
                    subscriber_id=person.id,
                    due=due,
                    window_start=start,
                    window_end=due,
                    seq_start=low,
                    seq_end=top,
                    entry_ids=ids,
                    state="skipped" if empty else "queued",
                )
            )
        if periods:
            yield periods


def instant_due(
    person: Subscriber, start: datetime, settings: Settings, *, now: datetime, close_now: bool
) -> datetime | None:
    """When an ``instant`` subscriber's period may close: now, once [digest]
    instant_min_minutes have passed since their last mail (the first one after they join
    goes at once); None before. Two runs that close it at different instants still record
    one period: the ledger keeps one per subscriber and window start."""
    earliest = start
    if person.period_end is not None and start == person.period_end:
        earliest = start + timedelta(minutes=settings.digest.instant_min_minutes)
    return now if close_now or earliest <= now else None


def next_instant(person: Subscriber, settings: Settings) -> datetime | None:
    """When an ``instant`` subscriber may next be mailed, if later than their last mail."""
    if person.period_end is None:
        return None
    return person.period_end + timedelta(minutes=settings.digest.instant_min_minutes)


def window_start(
    store: Store, person: Subscriber, *, seq_at: Callable[[datetime], int] | None = None
) -> tuple[datetime, int]:
    """Where a subscriber's next digest starts: (instant, last seq already sent or skipped).
    The end of their last period, or the moment they (re)joined or their pause ended: no
    backlog. (Resuming with "what I missed" clears the pause: the window reaches back.)"""
    joined = person.activated or person.created
    if person.paused_until is not None:  # back from a pause: nothing from before it
        joined = max(joined, person.paused_until)
    if person.period_end is None or joined > person.period_end:
        return joined, max(person.period_seq, (seq_at or store.seq_at)(joined))
    return person.period_end, person.period_seq


def next_period(
    store: Store,
    settings: Settings,
    person: Subscriber,
    *,
    now: datetime,
    on: datetime | None = None,
) -> Period:
    """A subscriber's next period as a preview shows it, nothing recorded: its due instant
    (the next one, or the first on the local date of ``on``), from where their last period
    ended, with what is published so far and they want."""
    schedule = Schedule.of(person, settings)
    if person.frequency == "instant":  # whenever something new comes, the gap allowing
        due = max(now, next_instant(person, settings) or now)
    elif on is None:
        due = schedule.next_due(now)
    else:  # the first due instant of that local date (or after it)
        midnight = datetime.combine(on.date(), time(), schedule.zone)
        due = schedule.next_due(midnight.astimezone(UTC) - timedelta(microseconds=1))
    start, low = window_start(store, person)
    high = store.seq_at(min(due, now))
    ids = tuple(s.entry.id for s in wanted(person, store.published_after_seq(low, high)))
    return Period(person.id, due, start, due, low, high, ids, "queued")
