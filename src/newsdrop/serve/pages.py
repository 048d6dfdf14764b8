"""The service's own pages: the one-message template (confirmations, refusals) and the
pages with the choices form (subscribe, manage), whose one script runs by its hash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import HTMLResponse

from newsdrop import templates
from newsdrop.config import Settings
from newsdrop.i18n import N_, Gettext, language_names, languages, translations
from newsdrop.model import FREQUENCIES, WEEKDAYS, Site
from newsdrop.serve.choices import (
    FREQUENCY_WORDS,
    HOURS,
    ZONE_SCRIPT,
    ZONE_SCRIPT_HASH,
    ChoiceForm,
    offered_topics,
    zones,
)
from newsdrop.serve.headers import with_script
from newsdrop.store import Store

TOPICS_FRESH_S = 60.0  # the topic counts are read again at most this often
TOPICS_DAYS = 30


class Pages:
    """Pages made from the templates with the site's name and feeds."""

    settings: Settings
    site: Site
    store: Store
    topics_read: tuple[float, dict[str, int]] = (0.0, {})

    def gettext(self) -> Gettext:
        """The site's language's gettext, for what these pages say (``_`` where used)."""
        return translations(self.site.language, self.settings.home).gettext

    def page(
        self,
        heading: str,
        message: str,
        *,
        status: int = 200,
        action: str = "",
        button: str = "",
        headers: Mapping[str, str] | None = None,
        **fields: object,
    ) -> HTMLResponse:
        """A one-message page. ``heading``, ``message`` and ``button`` are messages as
        written (``N_("...")``): translated here, then their ``{fields}`` filled in."""
        _ = self.gettext()
        heading, message = _(heading), _(message)
        if fields:  # (a message without fields may hold braces: a refusal's own words)
            heading, message = heading.format(**fields), message.format(**fields)
        button = _(button) if button else ""
        return self.rendered(
            "service.html.j2",
            status=status,
            headers=headers,
            heading=heading,
            message=message,
            action=action,
            button=button,
        )

    def rendered(
        self,
        template: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page of the service from ``template``, with the site's name and feeds; never
        cached (each holds one request's answer)."""
        html = templates.render(
            self.settings.home, template, site=self.site, feeds=self.site.feed_urls, **context
        )
        extra = {"cache-control": "no-store", **(headers or {})}
        return HTMLResponse(html, status_code=status, headers=extra)

    def not_found(self) -> HTMLResponse:
        return self.page(N_("Not found"), N_("There is nothing at this address."), status=404)

    async def choices_page(
        self, template: str, form: ChoiceForm, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """A page with the choices form (``_choices.html.j2``), the site's topics offered."""
        counts = await self.topic_counts()
        minutes = self.settings.digest.instant_min_minutes
        _ = self.gettext()
        return self.rendered(
            template,
            status=status,
            headers={"content-security-policy": with_script(ZONE_SCRIPT_HASH)},
            settings=self.settings,
            form=form,
            topics=offered_topics(counts, form.topics),
            zones=zones(),
            hours=HOURS,
            weekdays=WEEKDAYS,
            frequencies=[(f, _(FREQUENCY_WORDS[f]).format(minutes=minutes)) for f in FREQUENCIES],
            zone_script=ZONE_SCRIPT,
            languages=language_names(languages(self.settings.home)),
            **context,
        )

    async def topic_counts(self) -> dict[str, int]:
        """Entries per tag in the last 30 days, read at most once a minute."""
        read_at, counts = self.topics_read
        if time.monotonic() - read_at > TOPICS_FRESH_S:
            now = datetime.now(UTC)
            since = now - timedelta(days=TOPICS_DAYS)
            counts = await asyncio.to_thread(self.store.topic_counts, since, now)
            self.topics_read = (time.monotonic(), counts)
        return counts
