"""``newsdrop bounces``: returned mail, handed over by the MTA."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from newsdrop.cli.context import Context, pass_context
from newsdrop.errors import StoreError

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@click.group("bounces", short_help="Returned mail: bounces and complaints.")
def bounces() -> None:
    """Returned mail (bounces and complaints), handed over by the MTA that receives mail
    for [bounces] domain."""


@bounces.command("receive", short_help="Take one returned message on standard input.")
@click.option(
    "--to",
    "envelope_to",
    default="",
    metavar="ADDRESS",
    help="The address it was sent to (Postfix pipe: ${original_recipient}).",
)
@pass_context
def bounces_receive(ctx: Context, envelope_to: str) -> None:
    """Take one returned message on standard input (Postfix's pipe transport, procmail),
    keep it, then act on it: a permanent failure bounces the address, a temporary one adds
    to its soft score, a complaint unsubscribes it, anything else changes nothing. Exits 75
    when the message cannot be kept, so that the MTA tries again later."""
    from newsdrop.mail.bounces import receive

    limit = ctx.settings.bounces.max_bytes
    data = sys.stdin.buffer.read(limit + 1)
    try:
        with ctx.store() as store:
            done = receive(
                ctx.settings, store, data, envelope_to=envelope_to, now=datetime.now(UTC)
            )
    except StoreError as exc:
        click.echo(f"error: the returned message could not be kept: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(done)
