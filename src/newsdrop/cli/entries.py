"""``newsdrop entries``: what is published, with its state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from newsdrop.cli.context import Context, iso, pass_context
from newsdrop.logs import printable


@click.group()
def entries() -> None:
    """Look at the entries in the store."""


@entries.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--all", "show_all", is_flag=True, help="Include withdrawn and future-dated entries.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many entries.")
@pass_context
def entries_list(ctx: Context, as_json: bool, show_all: bool, limit: int | None) -> None:
    """What is published, newest first."""
    now = datetime.now(UTC)
    zone = ZoneInfo(ctx.settings.site.timezone)
    with ctx.store() as store:
        rows = store.entries(include_withdrawn=show_all, limit=limit, now=None if show_all else now)
    for stored in rows:
        e = stored.entry
        if as_json:
            record = {
                "id": e.id,
                "slug": e.slug,
                "title": e.title,
                "summary": e.summary,
                "content_text": e.content_text,
                "content_html": e.content_html,
                "published": iso(e.published),
                "updated": iso(e.updated),
                "tags": list(e.tags),
                "lang": e.lang,
                "author": e.author,
                "source": stored.source,
                "word_count": e.word_count,
                "withdrawn": stored.withdrawn,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            flag = (
                " (withdrawn)" if stored.withdrawn else " (scheduled)" if e.published > now else ""
            )
            when = e.published.astimezone(zone)
            shown = printable(f"{e.title}{flag}  [{stored.source}]")
            click.echo(f"{when:%Y-%m-%d %H:%M %Z}  {shown}")
    if not rows and not as_json:
        click.echo("no entries yet: drop documents into seeds/ and run `newsdrop ingest`")
