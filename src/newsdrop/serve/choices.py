"""A subscriber's choices as a web form: what the subscribe and manage pages offer (pure),
and a submitted form read back into choices, with one message per field that is wrong."""

from __future__ import annotations

import base64
import hashlib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from newsdrop.config import Settings
from newsdrop.errors import UsageError
from newsdrop.i18n import N_, Gettext, english
from newsdrop.model import Subscriber
from newsdrop.subscribers import (
    MAX_NAME,
    NewSubscriber,
    checked_frequency,
    checked_send_at,
    checked_timezone,
    checked_weekday,
    clean_name,
    normalize_address,
)

FREQUENCY_WORDS = {  # translated where shown
    "instant": N_("As soon as something is published (at most one mail every {minutes} minutes)"),
    "daily": N_("Daily"),
    "weekly": N_("Weekly"),
    "monthly": N_("Monthly, on the 1st"),
}

# The days as the form shows them (the values stay English: [digest] weekday's).
WEEKDAY_NAMES = (
    N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"),
    N_("Saturday"), N_("Sunday"),
)  # fmt: skip

# The one script of these pages: the browser's time zone into the zone field, when the
# page first shows (not over what a person typed). It runs by its hash in the page's CSP.
ZONE_SCRIPT = (
    "(function(){var f=document.getElementById('tz');if(!f||f.dataset.auto!=='1')return;"
    "try{var z=Intl.DateTimeFormat().resolvedOptions().timeZone;if(z)f.value=z;}"
    "catch(e){}})();"
)
ZONE_SCRIPT_HASH = (
    "'sha256-" + base64.b64encode(hashlib.sha256(ZONE_SCRIPT.encode()).digest()).decode() + "'"
)

HOURS = tuple(f"{hour:02d}:{minute:02d}" for hour in range(24) for minute in (0, 30))
PAUSES = (1, 2, 4)  # weeks


@lru_cache(maxsize=1)
def zones() -> tuple[str, ...]:
    """The IANA zones a person may pick (Area/Location names, and UTC)."""
    names = {z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc/")}
    return ("UTC", *sorted(names))


@dataclass(slots=True)
class ChoiceForm:
    """What the form shows: the values (a submitted form's, a subscriber's or the site's
    defaults), the topics on offer with their counts, and a message per wrong field."""

    email: str = ""
    name: str = ""
    frequency: str = "daily"
    topics: tuple[str, ...] = ()
    timezone: str = ""
    at: str = ""  # "": the site's hour
    weekday: str = ""  # "": the site's day
    language: str = ""  # of their mails; "": the site's
    zone_from_browser: bool = True  # the page may fill the zone in (nothing typed yet)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, person: Subscriber) -> ChoiceForm:
        return cls(
            email=person.email,
            name=person.name,
            frequency=person.frequency,
            topics=person.tags,
            timezone=person.timezone,
            at=person.send_at or "",
            weekday=person.weekday or "",
            language=person.language,
            zone_from_browser=False,
        )


def offered_topics(counts: dict[str, int], chosen: tuple[str, ...]) -> list[tuple[str, int]]:
    """(topic, entries in the last 30 days), the busiest first; a chosen topic with none
    lately is still offered, so that keeping it stays a choice."""
    known = {topic.lower() for topic in counts}
    extra = {topic: 0 for topic in chosen if topic.lower() not in known}
    return sorted({**counts, **extra}.items(), key=lambda item: (-item[1], item[0].lower()))


def read_form(
    form: dict[str, list[str]],
    settings: Settings,
    *,
    with_email: bool = True,
    utf8_local: bool = False,
    gettext: Gettext = english,
    languages: tuple[str, ...] = (),
    fallback_language: str = "",
) -> tuple[ChoiceForm, NewSubscriber | None]:
    """The submitted choices as the form shows them again, and as choices when every field
    is right (else None, and ``errors`` says what to fix in each field, in ``gettext``'s
    language). ``utf8_local``: whether the relay takes an address whose local part is not
    ASCII (mail/relay.py). ``languages``: those mails can be written in; a form without the
    choice takes ``fallback_language``."""
    _ = gettext
    one = {key: values[0].strip() for key, values in form.items() if values}
    shown = ChoiceForm(
        email=one.get("email", ""),
        name=one.get("name", ""),
        frequency=one.get("frequency", "daily"),
        topics=tuple(dict.fromkeys(t.strip() for t in form.get("topics", []) if t.strip())),
        timezone=one.get("tz", "") or settings.site.timezone,
        at=one.get("at", ""),
        weekday=one.get("weekday", ""),
        language=_language_field(one.get("language"), fallback_language),
        zone_from_browser=False,
    )
    errors = shown.errors
    address = ""
    if with_email:
        try:
            address = normalize_address(shown.email, utf8_local=utf8_local)
        except UsageError:
            local = shown.email.rpartition("@")[0]
            errors["email"] = _(
                N_("Enter your email address.")
                if not shown.email
                else N_(
                    "We cannot send to an address with letters outside A to Z before the @; "
                    "please give another address."
                )
                if local and not local.isascii() and not utf8_local
                else N_("Enter an email address we can send to, such as name@example.org.")
            )
    name = clean_name(shown.name)
    if len(name) > MAX_NAME:
        errors["name"] = _(N_("Your name is {length} characters long; at most {most} fit.")).format(
            length=len(name), most=MAX_NAME
        )
    checks: list[tuple[str, Callable[[str, str], object], str]] = [
        ("frequency", checked_frequency, shown.frequency),
        ("tz", checked_timezone, shown.timezone),
        ("at", checked_send_at, shown.at),
        ("weekday", checked_weekday, shown.weekday),
    ]
    for key, check, value in checks:
        try:
            check(address, value)
        except UsageError:
            errors[key] = _(FIELD_HELP[key])
    if shown.language and shown.language not in languages:
        errors["language"] = _(N_("Choose one of the languages listed."))
    if len(shown.topics) > 100:
        errors["topics"] = _(N_("Choose at most 100 topics, or none to get everything."))
    if errors:
        return shown, None
    return shown, NewSubscriber(
        email=address,
        name=name,
        timezone=checked_timezone(address, shown.timezone),
        frequency=checked_frequency(address, shown.frequency),
        tags=shown.topics,
        send_at=checked_send_at(address, shown.at),
        weekday=checked_weekday(address, shown.weekday),
        language=shown.language,
    )


def _language_field(value: str | None, fallback: str) -> str:
    """The language chosen ("site": the site's, ""), or ``fallback`` for a form without the
    choice (the browser's on the subscribe page, theirs on the manage page)."""
    if value is None:
        return fallback
    return "" if value == "site" else value


FIELD_HELP = {  # translated where shown
    "frequency": N_("Choose how often: at once, daily, weekly or monthly."),
    "tz": N_("Enter a time zone such as Europe/Kyiv, America/New_York or UTC."),
    "at": N_("Choose a time on the hour or half hour, such as 07:00 or 18:30."),
    "weekday": N_("Choose a day of the week, Monday to Sunday."),
}
