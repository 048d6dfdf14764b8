"""The words readers see, through gettext: the templates by Jinja2's i18n extension, the
service's own messages by ``translations(language).gettext`` (named ``_`` where it is
used, as Babel's extraction expects). Babel extracts them all (`make messages` writes
src/newsdrop/locale/messages.pot) and reads the catalogues, locale/<language>.po and an
instance's digest/locale/<language>.po. English is the source: a language without a
catalogue reads English. Dates are written as each language writes them (CLDR, through
Babel)."""

from __future__ import annotations

import gettext
import io
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel import Locale

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).with_name("locale")
INSTANCE_LOCALE = Path("digest") / "locale"  # an instance's own catalogues, under its home
DOMAIN = "messages"


@lru_cache(maxsize=32)
def translations(language: str, home: Path | None = None) -> gettext.NullTranslations:
    """The catalogue of a language ("uk", "pt-BR": the site's or a subscriber's): the
    instance's ``digest/locale/<language>.po`` first, then the shipped
    ``locale/<language>.po``, then English (the messages themselves). A regional tag falls
    back on its language ("pt-BR" on "pt")."""
    found: gettext.NullTranslations | None = None
    for folder in (home / INSTANCE_LOCALE if home else None, LOCALE_DIR):
        catalogue = _catalogue(folder, language) if folder else None
        if catalogue is None:
            continue
        if found is None:
            found = catalogue
        else:
            found.add_fallback(catalogue)
    return found or gettext.NullTranslations()


def catalogue_files(home: Path | None = None) -> dict[str, Path]:
    """Language tag ("pt-BR", from pt_BR.po or pt-BR.po) -> the catalogue that serves it
    (the instance's over the shipped one)."""
    folders = [LOCALE_DIR, *([home / INSTANCE_LOCALE] if home is not None else [])]
    return {tag_of(path.stem): path for folder in folders for path in sorted(folder.glob("*.po"))}


def tag_of(name: str) -> str:
    """A language tag as BCP 47 writes it: "pt_br" -> "pt-BR", "UK" -> "uk"."""
    language, _, rest = name.strip().replace("_", "-").partition("-")

    def subtag(part: str) -> str:  # a region upper-case, a script title-case
        return part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part

    parts = [language.lower(), *(subtag(p) for p in rest.split("-") if p)]
    return "-".join(parts)


def languages(home: Path | None = None) -> tuple[str, ...]:
    """The languages pages and mails can be written in: English and every catalogue's."""
    return ("en", *sorted(set(catalogue_files(home)) - {"en"}))


def language_names(codes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(code, the language's name in itself: "українська", "Deutsch"), for a choice."""
    return [(code, _locale(code).get_display_name(_locale(code)) or code) for code in codes]


def accepted_language(header: str, available: tuple[str, ...]) -> str:
    """The language of ``available`` a browser's Accept-Language prefers ("uk-UA,uk;q=0.9,
    en;q=0.8" -> "uk"), or "" when it accepts none of them."""
    from babel.core import negotiate_locale

    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):  # a bound: the header is a client's
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            wanted.append((-quality, index, tag.strip().replace("-", "_")))
    preferred = [tag for _, _, tag in sorted(wanted)]
    found = negotiate_locale(preferred, [a.replace("-", "_") for a in available], sep="_")
    return tag_of(found) if found else ""


def _catalogue(folder: Path, language: str) -> gettext.GNUTranslations | None:
    """A .po file read by Babel and compiled in memory (no .mo to keep in step); a message
    whose placeholders do not match its source is left out (shown in English, and `check`
    says so), and a file that cannot be read is passed over with a warning."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import PoFileError, read_po

    tag = tag_of(language)
    for candidate in dict.fromkeys((tag, tag.split("-")[0])):
        for name in dict.fromkeys((candidate, candidate.replace("-", "_"))):
            path = folder / f"{name}.po"
            if not path.is_file():
                continue
            try:
                with path.open("rb") as source:
                    catalog = read_po(source)
                for message, errors in list(catalog.check()):
                    if errors:
                        catalog.delete(message.id)
                compiled = io.BytesIO()
                write_mo(compiled, catalog)  # fuzzy entries left out, as msgfmt does
                compiled.seek(0)
                return gettext.GNUTranslations(compiled)
            except (OSError, ValueError, PoFileError) as exc:  # UnicodeDecodeError is a ValueError
                log.warning("%s: cannot be read as a catalogue (%s); English instead", path, exc)
                return None
    return None


@lru_cache(maxsize=256)
def direction(language: str) -> str:
    """ "rtl" for a language written right to left (Arabic, Hebrew, Persian, Urdu, Pashto,
    Yiddish, Dhivehi...; "ku-Arab" too), else "ltr", as CLDR says through Babel (imported
    here, when a page or mail is first rendered, not by every command)."""
    from babel import Locale, UnknownLocaleError

    tag = language.strip().replace("-", "_")
    for candidate in (tag, tag.split("_")[0]):
        try:
            found = Locale.parse(candidate)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
        return "rtl" if found.text_direction == "rtl" else "ltr"
    return "ltr"


@lru_cache(maxsize=64)
def _locale(language: str) -> Locale:
    """Babel's locale of a language tag; English without a region is CLDR's international
    English (15 January 2030), as is a language CLDR does not know."""
    from babel import Locale, UnknownLocaleError

    tag = language.strip().replace("-", "_") or "en"
    if tag.lower() == "en":
        tag = "en_001"
    for candidate in (tag, tag.split("_")[0]):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse("en_001")


def number(value: int, language: str) -> str:
    """A count as the language groups its digits: 12,345; 12 345; 12.345."""
    from babel.numbers import format_decimal

    return format_decimal(value, locale=_locale(language))


def day_name(moment: date, language: str) -> str:
    """A day as the language writes it in full: 15 January 2030, 15 січня 2030 р."""
    from babel.dates import format_date

    return format_date(moment, "long", locale=_locale(language))


def weekday_name(moment: date, language: str) -> str:
    """A day with its weekday: Tuesday, 15 January 2030; вівторок, 15 січня 2030 р."""
    from babel.dates import format_date

    return format_date(moment, "full", locale=_locale(language))


def month_name(moment: date, language: str) -> str:
    """A month and its year: January 2030, січень 2030 р."""
    from babel.dates import format_skeleton

    return format_skeleton("yMMMM", moment, locale=_locale(language))


def moment_name(
    moment: datetime, language: str, zone: tzinfo = UTC, *, weekday: bool = False
) -> str:
    """A day (with its weekday if asked) and a 24-hour time in ``zone`` (UTC: said after the
    time), in the language's order: 15 January 2030, 07:05 UTC."""
    from babel.dates import format_date, format_time, get_datetime_format

    locale = _locale(language)
    local = moment.astimezone(zone)
    clock = format_time(local, "HH:mm", locale=locale) + (" UTC" if zone is UTC else "")
    pattern = str(get_datetime_format("long", locale=locale))
    day = format_date(local, "full" if weekday else "long", locale=locale)
    return pattern.replace("{1}", day).replace("{0}", clock).replace("'", "")


def N_(message: str) -> str:
    """Marks a message for extraction where it is written; it is translated where it is
    shown (``Pages.page`` translates its heading and message, then fills in their
    ``{fields}``)."""
    return message


Gettext = Callable[[str], str]


def english(message: str) -> str:
    """The source language's gettext: the message itself."""
    return message
