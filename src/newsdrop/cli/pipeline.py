"""The one-shot pipeline, for cron and CI: ``publish`` (both halves in one run), ``ingest``
(seeds/ into the store) and ``build`` (the store into feeds/, then the WebSub pings), on
the same functions as the service (newsdrop/pipeline.py)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from newsdrop.cli.context import Context, pass_context, progress_bar
from newsdrop.logs import printable

if TYPE_CHECKING:
    from newsdrop.ingest.run import IngestReport
    from newsdrop.publish.build import BuildReport

JSON_HELP = "Print a machine-readable summary."
STRICT_HELP = "Exit 1 while any document in seeds/ is a problem."
FULL_HELP = "Rewrite every file, not only what changed."


@click.command(short_help="Ingest, then build: seeds/ to feeds/ in one run.")
@click.option("--full", is_flag=True, help=FULL_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--strict", is_flag=True, help=STRICT_HELP)
@pass_context
def publish(ctx: Context, full: bool, as_json: bool, strict: bool) -> None:
    """Read seeds/ into the store, write feeds/ from it and ping the WebSub hub: what
    `newsdrop run` does at every change, once, for cron and CI."""
    from newsdrop.pipeline import ping
    from newsdrop.pipeline import publish as run_publish

    with ctx.store() as store, progress_bar(enabled=not as_json) as progress:
        done = run_publish(ctx.settings, store, now=datetime.now(UTC), full=full, progress=progress)
        standing = len(store.problems()) if strict else 0
    if done.built is not None:
        ping(ctx.settings, done.built.topics)
    if as_json:
        summary: dict[str, Any] = {"ingest": done.ingested.report.as_dict()}
        if done.built is not None:
            summary["build"] = _build_summary(done.built.report)
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        _say_ingest(done.ingested.report)
    if done.build_error is not None:
        raise done.build_error  # said by the CLI's error handler, after the ingest's summary
    if done.built is not None and not as_json:
        _say_build(ctx, done.built.report)
    _end(done.ingested.record_error, standing)


@click.command(short_help="Read the documents in seeds/ into the store.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--strict", is_flag=True, help=STRICT_HELP)
@pass_context
def ingest(ctx: Context, as_json: bool, strict: bool) -> None:
    """Read every document under seeds/ into the store (new, changed, renamed, deleted)."""
    from newsdrop.pipeline import ingest_seeds

    with ctx.store() as store, progress_bar(enabled=not as_json) as progress:
        done = ingest_seeds(ctx.settings, store, now=datetime.now(UTC), progress=progress)
        standing = len(store.problems()) if strict else 0
    if as_json:
        click.echo(json.dumps(done.report.as_dict(), ensure_ascii=False))
    else:
        _say_ingest(done.report)
    _end(done.record_error, standing)


@click.command()
@click.option("--full", is_flag=True, help=FULL_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def build(ctx: Context, full: bool, as_json: bool) -> None:
    """Write feeds/ from the store; print what changed."""
    from newsdrop.pipeline import build_feeds, ping

    with ctx.store() as store:
        done = build_feeds(ctx.settings, store, now=datetime.now(UTC), full=full)
    ping(ctx.settings, done.topics)
    if as_json:
        click.echo(json.dumps(_build_summary(done.report), ensure_ascii=False))
    else:
        _say_build(ctx, done.report)


def _say_ingest(report: IngestReport) -> None:
    click.echo(report.summary())
    for problem in report.problems:
        click.echo(f"  problem: {printable(problem.reason)}", err=True)


def _build_summary(report: BuildReport) -> dict[str, Any]:
    return {
        "written": report.written,
        "removed": report.removed,
        "unchanged": report.unchanged,
        "published": report.published,
    }


def _say_build(ctx: Context, report: BuildReport) -> None:
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


def _end(record_error: str, standing: int) -> None:
    """Exit 1 for what a cron job must hear of after the summaries: the run's record not
    written, or (``--strict``) documents that are problems."""
    if record_error:
        click.echo(f"error: {record_error}", err=True)
    if standing:
        command = click.get_current_context().info_name
        click.echo(f"{command} --strict: {standing} documents are problems", err=True)
    if record_error or standing:
        sys.exit(1)
