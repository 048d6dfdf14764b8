"""The ``newsdrop`` command. Thin: parse arguments, call the pipeline, print the outcome. One
module per command group beside this one; this one holds the group and the entry point.

Exit codes: 0 ok, 1 failed work, 2 usage or configuration error. A user error is one
sentence on stderr, never a traceback (unless ``--debug``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NoReturn

import click

from newsdrop.cli import bounces, digest, entries, instance, pipeline, subscribers
from newsdrop.cli.context import Context
from newsdrop.errors import NewsdropError


class NewsdropGroup(click.Group):
    """Turns a NewsdropError from any command into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NewsdropError as exc:
            if "--debug" in sys.argv[1:] or (isinstance(ctx.obj, Context) and ctx.obj.debug):
                raise
            click.echo(f"newsdrop: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=NewsdropGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="NEWSDROP_HOME",
    help="Instance folder (default: $NEWSDROP_HOME, else the current directory).",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v: info, -vv: debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="newsdrop")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: int, debug: bool) -> None:
    """Publish a folder of documents as web feeds and email digests."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose == 0:  # the commands' summaries say it all
        logging.getLogger("newsdrop.ingest.run").setLevel(logging.ERROR)
        logging.getLogger("newsdrop.mail.deliver").setLevel(logging.CRITICAL)
    ctx.obj = Context(home=(home or Path.cwd()).absolute(), debug=debug, verbose=verbose)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"newsdrop: {message}", err=True)
    sys.exit(code)


def main() -> None:
    """Console entry point: map errors to one sentence and an exit code."""
    debug = "--debug" in sys.argv[1:]
    try:
        code = cli.main(standalone_mode=False)  # the exit code of ctx.exit, if any
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NewsdropError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # an unexpected failure: one line, and how to see more
        if debug:
            raise
        _fail(f"unexpected error: {exc.__class__.__name__}: {exc} (rerun with --debug)", 1)


for command in (
    instance.init,
    pipeline.publish,
    pipeline.ingest,
    pipeline.build,
    subscribers.subscribers,
    digest.digest_group,
    bounces.bounces,
    entries.entries,
    instance.run,
    instance.status,
    instance.check,
):
    cli.add_command(command)
