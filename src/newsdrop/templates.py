"""The one Jinja2 environment: the instance's template folder first, packaged defaults second.

Autoescaping is decided by the full suffix (``select_autoescape`` with
"html.j2"), because Jinja2 would otherwise look only at ".j2" and leave HTML
templates unescaped. Undefined names are errors, not empty strings.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import jinja2

from newsdrop.errors import RenderError
from newsdrop.i18n import day_name, direction, moment_name, number, translations
from newsdrop.wrapping import wrap

INSTANCE_TEMPLATES = "digest"  # the instance folder whose templates override the packaged ones


@lru_cache(maxsize=8)
def environment(home: Path, language: str = "en") -> jinja2.Environment:
    """The environment of an instance, its words in ``language`` (``{% trans %}`` and
    ``_()`` in the templates, through i18n.py's catalogues)."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(home / INSTANCE_TEMPLATES),
            jinja2.PackageLoader("newsdrop", "templates"),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(["html", "html.j2", "xml"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language, home), newstyle=True)  # type: ignore[attr-defined]
    env.filters["rfc3339"] = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    env.filters["direction"] = direction
    env.filters["wrap"] = wrap  # by columns and grapheme clusters, for every script
    env.filters["day_name"] = partial(_day, language=language)  # dates as the language writes them
    env.filters["moment_name"] = partial(moment_name, language=language)
    env.filters["number"] = partial(number, language=language)
    return env


def render(home: Path, name: str, **context: Any) -> str:
    """Render a template by name, in the language of its ``site`` (English without one); a
    broken or missing template is a RenderError naming it."""
    site = context.get("site")
    language = getattr(site, "language", "en") or "en"
    try:
        return environment(home, language).get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(
            f"template {name} not found in {home / INSTANCE_TEMPLATES} or the package"
        ) from exc
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise RenderError(
            f"{where}{f':{line}' if line else ''}: {exc.__class__.__name__}: {exc}; "
            f"fix the template (newsdrop check shows syntax errors)"
        ) from exc


def _day(moment: date | str, language: str) -> str:
    """A day (or its ISO form, as the archive lists them) in the language."""
    return day_name(date.fromisoformat(moment) if isinstance(moment, str) else moment, language)


@lru_cache(maxsize=32)
def _compiled(home: Path, source: str) -> jinja2.Template:
    return environment(home).from_string(source)


def render_string(home: Path, source: str, **context: Any) -> str:
    """Render a template given as a string (such as ``[digest] subject``), compiled once."""
    try:
        return _compiled(home, source).render(**context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {source!r}: {exc.__class__.__name__}: {exc}") from exc
