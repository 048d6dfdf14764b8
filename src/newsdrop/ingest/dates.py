"""Dates and front matter, pure: a document's front matter checked key by key, dates read in
the site's zone (a problem with a reason, never a crash, for a date out of range), and a
dateline in the first paragraphs."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import parser as date_parser
from dateutil import tz as dateutil_tz

from newsdrop.errors import SourceError
from newsdrop.ingest.derive import DATELINE
from newsdrop.ingest.markup import PageMeta
from newsdrop.ingest.text import URI
from newsdrop.ingest.zones import read_abbreviation


def front_matter_meta(front: dict[str, Any]) -> PageMeta:
    tags = front.get("tags") or front.get("categories") or ()
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    return PageMeta(
        title=_scalar(front.get("title")),
        description=_scalar(front.get("summary") or front.get("description")),
        author=_scalar(front.get("author")),
        published=_scalar(front.get("date") or front.get("published")),
        updated=_scalar(front.get("updated") or front.get("modified")),
        lang=_scalar(front.get("lang") or front.get("language")),
        tags=tuple(_scalar(t) for t in tags if _scalar(t)) if isinstance(tags, list) else (),
    )


def check_front_matter(front: dict[str, Any], meta: PageMeta, name: str, zone: ZoneInfo) -> None:
    """What the publisher wrote must mean what they meant: a date that is not one, an id
    that is not a URI or a language that is not a tag would otherwise be dropped in
    silence (published now, with a minted id, or in the feeds as written)."""
    for key, value in (("date", meta.published), ("updated", meta.updated)):
        try:
            parsed, _ = _utc_date(value, zone)
        except _OutOfRangeError:
            raise SourceError(
                f"{name}: front matter {key} {value!r} is out of range: in UTC it falls "
                "before the year 1 or after 9999; write the date the document was published, "
                "such as 2026-11-25T08:00:00+02:00"
            ) from None
        if value.strip() and parsed is None:
            raise SourceError(
                f"{name}: front matter {key} {value!r} is not a date; write it as "
                "2026-11-25 or 2026-11-25T08:00:00+02:00"
            )
    front_id = str(front.get("id") or "").strip()
    if front_id and not URI.fullmatch(front_id):
        raise SourceError(
            f"{name}: front matter id {front_id!r} is not a URI; use one such as "
            "tag:example.org,2026:my-story, or remove it and newsdrop mints one"
        )
    if meta.lang and not _LANGUAGE_TAG.fullmatch(meta.lang.strip()):
        raise SourceError(
            f"{name}: front matter lang {meta.lang!r} is not a language tag such as en or en-GB"
        )


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def _scalar(value: object) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class _OutOfRangeError(ValueError):
    """A date that Python can write but not move to UTC (year 1 east of Greenwich, 9999-12-31
    west of it): a mistake or a placeholder, never a publication date."""


def parse_date(text: str, zone: ZoneInfo) -> datetime | None:
    """A date in any common notation, in UTC; None when there is none (or it is out of
    range: a page's meta tags and datelines are hints, and the next one is tried)."""
    return read_date(text, zone)[0]


def read_date(text: str, zone: ZoneInfo, language: str = "") -> tuple[datetime | None, str]:
    """``parse_date``, and a note when the date's zone was guessed (an ambiguous
    abbreviation such as IST, read by ``language``) or not understood (then read in the
    site's zone): what `newsdrop status` shows of the document."""
    try:
        return _utc_date(text, zone, language)
    except _OutOfRangeError:
        return None, ""


def _utc_date(text: str, zone: ZoneInfo, language: str = "") -> tuple[datetime | None, str]:
    """A date in any common notation; naive dates are in the site's time zone."""
    if not text.strip():
        return None, ""
    notes: list[str] = []

    def zone_named(name: str | None, offset: int | None) -> tzinfo | None:
        if offset is not None:  # "+0200 (IST)": the offset written is the one meant
            return dateutil_tz.tzoffset(name, offset)
        if name and (guess := read_abbreviation(name, language)):
            notes.append(guess.note)
            return dateutil_tz.tzoffset(name, guess.reading.minutes * 60)
        if name:
            notes.append(
                f"the time zone {name!r} is not one newsdrop knows: the time was read in the "
                f"site's zone ({zone.key}); write the offset itself, such as +02:00"
            )
        return None

    try:
        parsed = date_parser.parse(text.strip(), tzinfos=zone_named)
    except (ValueError, OverflowError, date_parser.ParserError):
        return None, ""
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        moment = as_utc(parsed)
    except (OverflowError, ValueError):
        raise _OutOfRangeError(text) from None
    note = "; ".join(n for n in notes if n)
    return moment, f"date {text.strip()!r}: {note}" if note else ""


def dateline_date(paragraphs: list[str], zone: ZoneInfo) -> datetime | None:
    for paragraph in paragraphs:
        match = DATELINE.match(paragraph)
        if match:
            return parse_date(match.group("date"), zone)
    return None


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = datetime.combine(moment.date(), moment.time(), UTC)
    return moment.astimezone(UTC)
