"""The one-shot pipeline, for cron and CI: ``ingest`` (seeds/ into the store) and ``build``
(the store into feeds/, then the WebSub pings)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from newsdrop.cli.context import Context, pass_context, progress_bar
from newsdrop.logs import printable


@click.command(short_help="Read the documents in seeds/ into the store.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--strict", is_flag=True, help="Exit 1 while any document in seeds/ is a problem.")
@pass_context
def ingest(ctx: Context, as_json: bool, strict: bool) -> None:
    """Read every document under seeds/ into the store (new, changed, renamed, deleted)."""
    from newsdrop.ingest.run import ingest as run_ingest

    settings = ctx.settings
    started = datetime.now(UTC)
    with ctx.store() as store, progress_bar(enabled=not as_json) as progress:
        report = run_ingest(settings, store, now=started, progress=progress)
        store.record_run(started=started, finished=datetime.now(UTC), summary=report.as_dict())
        standing = store.problems()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        click.echo(report.summary())
        for problem in report.problems:
            click.echo(f"  problem: {printable(problem.reason)}", err=True)
    if strict and standing:
        click.echo(f"ingest --strict: {len(standing)} documents are problems", err=True)
        sys.exit(1)


@click.command()
@click.option("--full", is_flag=True, help="Rewrite every file, not only what changed.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@pass_context
def build(ctx: Context, full: bool, as_json: bool) -> None:
    """Write feeds/ from the store; print what changed."""
    from newsdrop.publish.build import build as run_build

    with ctx.store() as store:
        report = run_build(ctx.settings, store, now=datetime.now(UTC), full=full)
    hub = ctx.settings.feeds.websub_hub
    topics = report.changed_feeds(ctx.settings.site.base_url)
    if hub and topics:
        from newsdrop.publish.websub import Pinger

        pinger = Pinger(hub)
        pinger.submit(topics)
        pinger.close(wait=30)
    if as_json:
        summary = {
            "written": report.written,
            "removed": report.removed,
            "unchanged": report.unchanged,
            "published": report.published,
        }
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    for verb, names in (("wrote  ", report.written), ("removed", report.removed)):
        for name in names[:20]:
            click.echo(f"{verb} {name}")
        if len(names) > 20:  # a full rebuild: say how many, not fifty thousand lines
            click.echo(f"{verb} ... and {len(names) - 20:,} more")
    if not report.changed:
        click.echo("build: nothing changed")
    else:
        click.echo(
            f"build: {len(report.written)} written, {len(report.removed)} removed, "
            f"{report.unchanged} unchanged, in {ctx.settings.feeds_dir}"
        )
