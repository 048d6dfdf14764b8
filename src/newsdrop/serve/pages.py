"""The one page template of the service's own answers (forms, confirmations, refusals)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import HTMLResponse

from newsdrop import templates
from newsdrop.config import Settings
from newsdrop.model import Site


class Pages:
    """Pages made from service.html.j2 with the site's name and feeds."""

    settings: Settings
    site: Site

    def page(
        self,
        heading: str,
        message: str,
        *,
        status: int = 200,
        action: str = "",
        button: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        html = templates.render(
            self.settings.home,
            "service.html.j2",
            site=self.site,
            feeds=self.site.feed_urls,
            heading=heading,
            message=message,
            action=action,
            button=button,
        )
        extra = {"cache-control": "no-store", **(headers or {})}
        return HTMLResponse(html, status_code=status, headers=extra)
