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
from datetime import UTC

from email_validator import EmailNotValidError, validate_email

from newsdrop.config import Settings
from newsdrop.errors import UsageError
from newsdrop.i18n import N_, Gettext, english
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
    language: str = ""  # of their mails; "": the site's


def wire_address(email: str) -> str:
    """An address as it travels, in the envelope and the To header: its domain in IDNA
    (``mykola@xn--80aikifvh.xn--j1amh``), which every relay takes, with or without
    SMTPUTF8. A non-ASCII local part stays as it is: only a relay that offers SMTPUTF8
    carries it (the transport says so of one that does not; see [mail] smtputf8)."""
    if email.isascii():
        return email
    try:
        found = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise UsageError(f"{email!r} cannot be sent to: {exc}") from None
    return found.ascii_email or f"{found.local_part}@{found.ascii_domain}"


def normalize_address(raw: str, *, utf8_local: bool = False) -> str:
    """The address in its normal form, or UsageError saying what is wrong with it.
    ``utf8_local``: whether a local part (before the @) may be non-ASCII, which needs a
    relay with SMTPUTF8 ([mail] smtputf8); a non-ASCII domain is always fine (IDNA)."""
    address = raw.strip()
    try:
        return validate_email(
            address, check_deliverability=False, allow_smtputf8=utf8_local
        ).normalized
    except EmailNotValidError as exc:
        local = address.rpartition("@")[0]
        if not utf8_local and not local.isascii():
            raise UsageError(
                f"{address!r} cannot be sent to here: the part before the @ is not ASCII, "
                "and the mail relay does not carry such addresses (it lacks SMTPUTF8; see "
                "[mail] smtputf8)"
            ) from None
        raise UsageError(f"{address!r} is not a valid email address: {exc}") from None


def new_subscriber(
    email: str,
    *,
    name: str = "",
    timezone: str,
    frequency: str = "daily",
    tags: str = "",
    at: str = "",
    weekday: str = "",
    language: str = "",
    utf8_local: bool = False,
) -> NewSubscriber:
    """Validate every field; each error names the field, the value and what is valid.
    ``at`` and ``weekday`` left empty follow the site's [digest] send_at and weekday;
    ``utf8_local`` as for ``normalize_address``."""
    address = normalize_address(email, utf8_local=utf8_local)
    return NewSubscriber(
        email=address,
        name=checked_name(address, name),
        timezone=checked_timezone(address, timezone),
        frequency=checked_frequency(address, frequency),
        tags=parse_tags(tags),
        send_at=checked_send_at(address, at),
        weekday=checked_weekday(address, weekday),
        language=language,
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
        ("language", old.language or "the site's", new.language or "the site's"),
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


def parse_csv(
    text: str, *, default_timezone: str, utf8_local: bool = False
) -> tuple[list[NewSubscriber], list[str]]:
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
                utf8_local=utf8_local,
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
    return expiring_token(secret, "confirm", subscriber_id, expires=expires)


def confirm_token_subscriber(secret: bytes, token: str, *, now: int) -> int | None:
    """The subscriber a confirmation token was made for; None if it is forged, mangled or
    expired (the page says the same for all three). Compared in constant time."""
    found = expiring_token_holder(secret, "confirm", token, now=now)
    return None if found is None else found[0]


def expiring_token(
    secret: bytes, purpose: str, subscriber_id: int, *, expires: int, extra: str = ""
) -> str:
    """A mailed link's token for ``purpose`` ("confirm", "account", "address"): whose, until
    when (Unix seconds), what it carries (``extra``: the new address a link confirms), and
    an HMAC of all of it."""
    carried = "." + base64.urlsafe_b64encode(extra.encode()).decode().rstrip("=") if extra else ""
    mac = _expiring_mac(secret, purpose, subscriber_id, expires, extra)
    return f"{subscriber_id}.{expires}{carried}.{mac}"


def expiring_token_holder(
    secret: bytes, purpose: str, token: str, *, now: int
) -> tuple[int, str] | None:
    """(subscriber id, what it carries) of a token made for ``purpose``; None if it is
    forged, mangled or expired. Compared in constant time."""
    parts = token.split(".")
    if len(parts) not in (3, 4) or not (_ID.fullmatch(parts[0]) and _EXPIRY.fullmatch(parts[1])):
        return None
    extra = ""
    if len(parts) == 4:
        try:
            extra = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)).decode()
        except ValueError:  # (binascii.Error and UnicodeDecodeError are ValueErrors)
            return None
    subscriber_id, expires = int(parts[0]), int(parts[1])
    expected = _expiring_mac(secret, purpose, subscriber_id, expires, extra)
    if not hmac.compare_digest(parts[-1].encode(), expected.encode()) or expires < now:
        return None
    return subscriber_id, extra


def _expiring_mac(secret: bytes, purpose: str, subscriber_id: int, expires: int, extra: str) -> str:
    message = f"{purpose}:{subscriber_id}:{expires}" + (f":{extra}" if extra else "")
    return base64.urlsafe_b64encode(hmac.digest(secret, message.encode(), "sha256")[:18]).decode()


def link_token(secret: bytes, purpose: str, person: Subscriber) -> str:
    """A long-lived link of one subscriber's (``purpose``: "manage" or "feed", each its
    own key, so a feed reader's token opens no manage page): ``<id>.<HMAC>``. The HMAC
    covers their ``token_version`` (the operator renews it to kill every old link) and the
    instant they were added (so that a link of a deleted subscriber opens nothing, even
    if a database gives their id to someone new)."""
    return f"{person.id}.{_link_mac(secret, purpose, person)}"


def link_token_id(token: str) -> int | None:
    """The subscriber id a link token names (not yet checked: ``link_token_holds``)."""
    number = token.partition(".")[0]
    return int(number) if _ID.fullmatch(number) else None


def link_token_holds(secret: bytes, purpose: str, token: str, person: Subscriber) -> bool:
    """Whether a link token is this subscriber's current one for ``purpose``; in constant
    time."""
    return hmac.compare_digest(token.encode(), link_token(secret, purpose, person).encode())


def _link_mac(secret: bytes, purpose: str, person: Subscriber) -> str:
    added = person.created.astimezone(UTC).isoformat()
    message = f"{purpose}:{person.id}:{person.token_version}:{added}".encode()
    return base64.urlsafe_b64encode(hmac.digest(secret, message, "sha256")[:18]).decode()


def manage_url(base_url: str, secret: bytes, person: Subscriber) -> str:
    """The subscriber's manage link (/manage/<token>), for every mail they get."""
    return f"{base_url}manage/{link_token(secret, 'manage', person)}"


def suppression_key(secret: bytes, email: str) -> str:
    """The keyed hash an address is kept as once its subscriber is deleted: testable by
    whoever has the address and the instance secret, listable by no one."""
    return hmac.new(secret, f"suppress:{email.lower()}".encode(), "sha256").hexdigest()


def feed_url(base_url: str, secret: bytes, person: Subscriber) -> str:
    """The subscriber's private feed of their digests (its token opens nothing else)."""
    token = link_token(secret, "feed", person)
    return f"{base_url}me/{token}/digests.atom"


def describe(
    person: Subscriber | NewSubscriber, settings: Settings, gettext: Gettext = english
) -> str:
    """Their choices in one phrase, in ``gettext``'s language: "a weekly digest on Monday
    at 08:00 (Europe/Kyiv), on war and peace"."""
    _ = gettext
    fields = {
        "time": person.send_at or settings.digest.send_at[:5],
        "day": _((person.weekday or settings.digest.weekday).title()),
        "zone": person.timezone,
        "minutes": settings.digest.instant_min_minutes,
    }
    words = {
        "instant": N_(
            "a mail whenever something is published (at most one every {minutes} minutes)"
        ),
        "daily": N_("a daily digest at {time} ({zone})"),
        "weekly": N_("a weekly digest on {day} at {time} ({zone})"),
        "monthly": N_("a monthly digest on the 1st at {time} ({zone})"),
    }
    what = _(words[person.frequency]).format(**fields)
    topics = list(person.tags)
    if not topics:
        return _(N_("{what}, with everything published")).format(what=what)
    listed = topics[0]
    if len(topics) > 1:
        listed = _(N_("{some} and {last}")).format(some=", ".join(topics[:-1]), last=topics[-1])
    return _(N_("{what}, on {topics}")).format(what=what, topics=listed)
