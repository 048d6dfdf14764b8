"""What the look of every file depends on besides the entries: a build whose fingerprint differs from the last one's is a full build."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import jinja2.meta

from newsdrop import templates
from newsdrop.config import Settings
from newsdrop.model import Site

if TYPE_CHECKING:  # render_ahead builds on this module
    pass


PAGE_TEMPLATES = ("index.html.j2", "entry.html.j2", "day.html.j2", "days.html.j2")


def output_fingerprint(settings: Settings, site: Site) -> int:
    """What the look of every file depends on besides the entries, as a number for the
    store's counters: newsdrop's version, the [site] and [feeds] sections and the Site the
    pages get (which also holds [server] subscribe_form), and the name and source of each
    template a build renders, as the instance's digest/ folder or the package provides it, with the
    templates those extend, include or import. A build whose fingerprint differs from the
    last one's is a full build, so that a new title or a new template reaches every page.

    It runs at every build, so it only reads a few small files and parses them: no rendering.
    The counters are 32-bit integers on PostgreSQL, hence 31 bits of the sha256 (a change
    missed by chance, about one in two billion, is put right by ``build --full``); never 0,
    which is what a store that has no fingerprint yet reads."""
    shaping = {
        "newsdrop": code_version(),  # an upgrade may render every file differently
        "site": settings.site.model_dump(mode="json"),
        "feeds": settings.feeds.model_dump(mode="json"),
        "pages": dataclasses.asdict(site),
        "templates": template_sources(settings.home),
    }
    canonical = json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(canonical).digest()[:4], "big") >> 1 or 1


@lru_cache(maxsize=1)
def code_version() -> str:
    """The installed newsdrop's version ("unknown" when run from an uninstalled tree)."""
    try:
        return importlib.metadata.version("newsdrop")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def template_sources(home: Path) -> dict[str, str]:
    """Name -> source of the templates a build renders and those they reference. A template
    named by a variable (``{% include name %}``) could be any of them: then all count."""
    env = templates.environment(home)
    sources: dict[str, str] = {}
    if env.loader is None:  # never: templates.environment sets one
        return sources
    todo = list(PAGE_TEMPLATES)
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        try:
            sources[name] = env.loader.get_source(env, name)[0]
        except jinja2.TemplateNotFound:
            sources[name] = ""  # rendering it fails with a clear RenderError
            continue
        references = set(referenced_templates(home, sources[name]))
        if None in references:
            references.update(env.list_templates())
        todo.extend(r for r in references if r is not None)
    return sources


@lru_cache(maxsize=64)
def referenced_templates(home: Path, source: str) -> frozenset[str | None]:
    """Names a template's source extends, includes or imports (None: a name in a variable).
    Parsing is most of a fingerprint's cost, so the service parses each version once."""
    try:
        return frozenset(
            jinja2.meta.find_referenced_templates(templates.environment(home).parse(source))
        )
    except jinja2.TemplateSyntaxError:
        return frozenset()  # rendering it fails with a clear RenderError
