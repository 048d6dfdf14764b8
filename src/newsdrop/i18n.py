"""The words readers see, through gettext: the templates by Jinja2's i18n extension, the
service's own messages by ``translations(language).gettext`` (named ``_`` where it is
used, as Babel's extraction expects). Babel extracts them all (`make messages` writes
src/newsdrop/locale/messages.pot); the standard library loads the catalogue a
translation adds as locale/<language>/LC_MESSAGES/messages.mo. English is the source: a
language without a catalogue reads English."""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "messages"


@lru_cache(maxsize=32)
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of a language ("uk", "pt-BR": the site's or a subscriber's), or
    English's (none) when there is none."""
    locale = language.replace("-", "_")  # (the standard library's loader: Babel is for
    # extraction only, and every process that renders a template would import it)
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[locale], fallback=True)


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


def N_(message: str) -> str:
    """Marks a message for extraction where it is written; it is translated where it is
    shown (``Pages.page`` translates its heading and message, then fills in their
    ``{fields}``)."""
    return message


Gettext = Callable[[str], str]


def english(message: str) -> str:
    """The source language's gettext: the message itself."""
    return message
