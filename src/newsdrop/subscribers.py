"""Subscribers: address and choice validation, CSV import, unsubscribe tokens. Pure functions.

Addresses are checked for syntax by email-validator (no DNS look-ups: a digest
that cannot be delivered is the business of mail/deliver.py) and normalised. An
unsubscribe token is ``<id>.<HMAC-SHA256 of the id>``: permanent, checkable
without a database look-up, and useless without the instance secret.
"""

from __future__ import annotations

import base64
import csv
import hmac
import io
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from newsdrop.config import Settings
from newsdrop.errors import UsageError
from newsdrop.model import FREQUENCIES, WEEKDAYS, Frequency, Subscriber

CSV_COLUMNS = ("email", "name", "tz", "frequency", "tags", "at", "weekday")
EXPORT_COLUMNS = (*CSV_COLUMNS, "state", "joined", "last_sent")  # the last three: read, not set
_SEND_AT = re.compile(r"([01][0-9]|2[0-3]):(00|30)")  # on the hour or the half hour
MAX_NAME = 200  # characters
_ID = re.compile(r"0|[1-9][0-9]{0,17}")  # ASCII only: str.isdigit() takes '²' and '١' too
_EXPIRY = re.compile(r"0|[1-9][0-9]{0,11}")


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    """A validated request to subscribe someone."""

    email: str
    name: str
    timezone: str
    frequency: Frequency
    tags: tuple[str, ...]
    send_at: str | None = None  # "HH:MM" in their zone; None: the site's [digest] send_at
    weekday: str | None = None  # a weekly digest's day; None: the site's [digest] weekday


def ascii_address(email: str) -> str:
    """An address as it travels, in the envelope and the To header: its domain in IDNA
    (``mykola@xn--80aikifvh.xn--j1amh``), which every relay takes, with or without
    SMTPUTF8. (A non-ASCII local part is refused when the address is added.)"""
    if email.isascii():
        return email
    try:
        ascii_form = validate_email(email, check_deliverability=False).ascii_email
    except EmailNotValidError as exc:
        raise UsageError(f"{email!r} cannot be sent to: {exc}") from None
    if ascii_form is None:  # a non-ASCII local part, from a store older than the check
        raise UsageError(f"{email!r} cannot be sent to: its local part is not ASCII")
    return ascii_form


def normalize_address(raw: str) -> str:
    """The address in its normal form, or UsageError saying what is wrong with it."""
    try:  # allow_smtputf8=False: a non-ASCII local part cannot be sent through most relays
        return validate_email(
            raw.strip(), check_deliverability=False, allow_smtputf8=False
        ).normalized
    except EmailNotValidError as exc:
        raise UsageError(f"{raw.strip()!r} is not a valid email address: {exc}") from None


def new_subscriber(
    email: str,
    *,
    name: str = "",
    timezone: str,
    frequency: str = "daily",
    tags: str = "",
    at: str = "",
    weekday: str = "",
) -> NewSubscriber:
    """Validate every field; each error names the field, the value and what is valid.
    ``at`` and ``weekday`` left empty follow the site's [digest] send_at and weekday."""
    address = normalize_address(email)
    return NewSubscriber(
        email=address,
        name=checked_name(address, name),
        timezone=checked_timezone(address, timezone),
        frequency=checked_frequency(address, frequency),
        tags=parse_tags(tags),
        send_at=checked_send_at(address, at),
        weekday=checked_weekday(address, weekday),
    )


def changed_choices(old: Subscriber, new: NewSubscriber) -> list[str]:
    """What differs between a subscriber's choices and new ones, in words for the record
    (a name is personal: only that it changed)."""
    changes = ["name changed"] if old.name != new.name else []
    for what, before, after in (
        ("frequency", old.frequency, new.frequency),
        ("topics", ", ".join(old.tags) or "all", ", ".join(new.tags) or "all"),
        ("time zone", old.timezone, new.timezone),
        ("hour", old.send_at or "the site's", new.send_at or "the site's"),
        ("weekday", old.weekday or "the site's", new.weekday or "the site's"),
    ):
        if before != after:
            changes.append(f"{what}: {before} → {after}")
    return changes


def checked_timezone(address: str, timezone: str) -> str:
    try:
        zoneinfo.ZoneInfo(timezone)
        if timezone in ("localtime", "Factory") or ("/" not in timezone and timezone != "UTC"):
            raise ValueError(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            f"{address}: time zone {timezone!r} is not an IANA zone such as 'Europe/Kyiv' or 'UTC'"
        ) from None
    return timezone


def checked_frequency(address: str, frequency: str) -> Frequency:
    for known in FREQUENCIES:
        if frequency == known:
            return known
    raise UsageError(
        f"{address}: frequency {frequency!r} must be one of " + ", ".join(map(repr, FREQUENCIES))
    )


def checked_name(address: str, name: str) -> str:
    name = clean_name(name)
    if len(name) > MAX_NAME:
        raise UsageError(
            f"{address}: the name is {len(name)} characters long; at most {MAX_NAME} fit a greeting"
        )
    return name


def checked_send_at(address: str, at: str) -> str | None:
    """``HH:MM`` on the hour or half hour, or None (empty: the site's hour)."""
    at = at.strip()
    if not at:
        return None
    if _SEND_AT.fullmatch(at) is None:
        raise UsageError(
            f"{address}: delivery time {at!r} must be HH:MM on the hour or half hour, "
            "such as 07:00 or 18:30"
        )
    return at


def checked_weekday(address: str, weekday: str) -> str | None:
    """A day's English name, any case, or None (empty: the site's [digest] weekday)."""
    day = weekday.strip().lower()
    if not day:
        return None
    if day not in WEEKDAYS:
        raise UsageError(f"{address}: weekday {weekday!r} must be one of {', '.join(WEEKDAYS)}")
    return day


def parse_tags(tags: str) -> tuple[str, ...]:
    """Comma-separated tags, trimmed, each once, in the order given."""
    return tuple(dict.fromkeys(t.strip() for t in tags.split(",") if t.strip()))


def clean_name(name: str) -> str:
    """A name fit for a greeting and a ``To`` header: control characters (NUL, ESC, DEL,
    line breaks, C1) become spaces, runs of spaces one."""
    kept = "".join(" " if unicodedata.category(c) == "Cc" else c for c in name)
    return " ".join(kept.split())


def parse_csv(text: str, *, default_timezone: str) -> tuple[list[NewSubscriber], list[str]]:
    """Rows of ``email,name,tz,frequency,tags,at,weekday`` (fewer columns are fine): the
    valid ones, and one message per bad row naming its line. With a header row, columns
    go by its names, in any order, and an export's ``state,joined,last_sent`` are read past;
    without one, by position. Duplicates after the first are bad rows."""
    good: list[NewSubscriber] = []
    bad: list[str] = []
    seen: set[str] = set()
    columns: tuple[str, ...] = CSV_COLUMNS
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
            continue
        header = tuple(cell.strip().lower() for cell in row)
        if line == 1 and "email" in header:  # (no address is the word itself)
            unknown = [name for name in header if name not in EXPORT_COLUMNS]
            if unknown:
                return [], [
                    f"line 1: unknown column {unknown[0]!r}; the columns are "
                    + ",".join(EXPORT_COLUMNS)
                ]
            columns = header
            continue
        if len(row) > len(columns):
            bad.append(
                f"line {line}: {len(row)} fields, but a row has at most {len(columns)} "
                f'({",".join(columns)}); quote tags that hold commas: "war,peace"'
            )
            continue
        fields = dict(zip(columns, (cell.strip() for cell in row), strict=False))
        try:
            subscriber = new_subscriber(
                fields.get("email", ""),
                name=fields.get("name", ""),
                timezone=fields.get("tz") or default_timezone,
                frequency=fields.get("frequency") or "daily",
                tags=fields.get("tags", ""),
                at=fields.get("at", ""),
                weekday=fields.get("weekday", ""),
            )
        except UsageError as exc:
            bad.append(f"line {line}: {exc}")
            continue
        if subscriber.email.lower() in seen:
            bad.append(f"line {line}: {subscriber.email} appears earlier in the file")
            continue
        seen.add(subscriber.email.lower())
        good.append(subscriber)
    return good, bad


def unsubscribe_token(secret: bytes, subscriber_id: int) -> str:
    return f"{subscriber_id}.{_mac(secret, subscriber_id)}"


def token_subscriber(secret: bytes, token: str) -> int | None:
    """The subscriber id a token was made for, or None for a forged or mangled token.
    Compared in constant time."""
    number, _, mac = token.partition(".")
    if not _ID.fullmatch(number):
        return None
    if not hmac.compare_digest(mac.encode(), _mac(secret, int(number)).encode()):
        return None
    return int(number)


def _mac(secret: bytes, subscriber_id: int) -> str:
    digest = hmac.digest(secret, f"unsubscribe:{subscriber_id}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest[:18]).decode()


def confirm_token(secret: bytes, subscriber_id: int, *, expires: int) -> str:
    """The double opt-in link's token: whose, until when (Unix seconds), and an HMAC of both."""
    return f"{subscriber_id}.{expires}.{_confirm_mac(secret, subscriber_id, expires)}"


def confirm_token_subscriber(secret: bytes, token: str, *, now: int) -> int | None:
    """The subscriber a confirmation token was made for; None if it is forged, mangled or
    expired (the page says the same for all three). Compared in constant time."""
    number, _, rest = token.partition(".")
    expires, _, mac = rest.partition(".")
    if not (_ID.fullmatch(number) and _EXPIRY.fullmatch(expires)):
        return None
    expected = _confirm_mac(secret, int(number), int(expires))
    if not hmac.compare_digest(mac.encode(), expected.encode()) or int(expires) < now:
        return None
    return int(number)


def _confirm_mac(secret: bytes, subscriber_id: int, expires: int) -> str:
    message = f"confirm:{subscriber_id}:{expires}".encode()
    return base64.urlsafe_b64encode(hmac.digest(secret, message, "sha256")[:18]).decode()


def link_token(secret: bytes, purpose: str, subscriber_id: int, version: int) -> str:
    """A long-lived link of one subscriber's (``purpose``: "manage" or "feed", each its
    own key, so a feed reader's token opens no manage page): ``<id>.<version>.<HMAC>``.
    The version is the subscriber's ``token_version``: the operator renews it to kill
    every old link; deleting the subscriber kills them too."""
    return f"{subscriber_id}.{version}.{_link_mac(secret, purpose, subscriber_id, version)}"


def manage_url(base_url: str, secret: bytes, person: Subscriber) -> str:
    """The subscriber's manage link (/manage/<token>), for every mail they get."""
    return f"{base_url}manage/{link_token(secret, 'manage', person.id, person.token_version)}"


def feed_url(base_url: str, secret: bytes, person: Subscriber) -> str:
    """The subscriber's private feed of their digests (its token opens nothing else)."""
    token = link_token(secret, "feed", person.id, person.token_version)
    return f"{base_url}me/{token}/digests.atom"


def link_token_subscriber(secret: bytes, purpose: str, token: str) -> tuple[int, int] | None:
    """(subscriber id, version) of a link token made for ``purpose``; None for a forged or
    mangled one (the caller compares the version with the subscriber's). Constant time."""
    number, _, rest = token.partition(".")
    version, _, mac = rest.partition(".")
    if not (_ID.fullmatch(number) and _EXPIRY.fullmatch(version)):
        return None
    expected = _link_mac(secret, purpose, int(number), int(version))
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    return int(number), int(version)


def _link_mac(secret: bytes, purpose: str, subscriber_id: int, version: int) -> str:
    message = f"{purpose}:{subscriber_id}:{version}".encode()
    return base64.urlsafe_b64encode(hmac.digest(secret, message, "sha256")[:18]).decode()


def describe(person: Subscriber | NewSubscriber, settings: Settings) -> str:
    """Their choices in one sentence: "a weekly digest on Monday at 08:00 (Europe/Kyiv),
    on war and peace"."""
    at = person.send_at or settings.digest.send_at[:5]
    day = (person.weekday or settings.digest.weekday).title()
    zone = person.timezone
    words = {
        "instant": "a mail whenever something is published "
        f"(at most one every {settings.digest.instant_min_minutes} minutes)",
        "daily": f"a daily digest at {at} ({zone})",
        "weekly": f"a weekly digest on {day} at {at} ({zone})",
        "monthly": f"a monthly digest on the 1st at {at} ({zone})",
    }[person.frequency]
    topics = list(person.tags)
    if not topics:
        return f"{words}, with everything published"
    listed = topics[0] if len(topics) == 1 else ", ".join(topics[:-1]) + " and " + topics[-1]
    return f"{words}, on {listed}"
