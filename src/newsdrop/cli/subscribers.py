"""``newsdrop subscribers``: add, import, list, remove, reactivate."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TextIO

import click

from newsdrop.cli.context import Context, iso, pass_context
from newsdrop.errors import UsageError
from newsdrop.logs import printable
from newsdrop.model import SubscriberState
from newsdrop.store import Store


@click.group()
def subscribers() -> None:
    """Manage the people who receive digests."""


@subscribers.command("add", short_help="Add an active subscriber.")
@click.argument("email")
@click.option("--name", default="", help="How to greet them.")
@click.option("--tz", "timezone", help="Their IANA time zone (default: [site] timezone).")
@click.option(
    "--frequency",
    type=click.Choice(["daily", "weekly"]),
    default="daily",
    show_default=True,
    help="How often they get a digest (weekly: on [digest] weekday).",
)
@click.option("--tags", default="", help="Comma-separated tags: only entries with one of them.")
@pass_context
def subscribers_add(
    ctx: Context, email: str, name: str, timezone: str | None, frequency: str, tags: str
) -> None:
    """Add an active subscriber (the operator's word is their opt-in)."""
    from newsdrop.subscribers import new_subscriber

    wanted = new_subscriber(
        email,
        name=name,
        timezone=timezone or ctx.settings.site.timezone,
        frequency=frequency,
        tags=tags,
    )
    with ctx.store() as store:
        added, skipped = store.add_subscribers(
            [wanted], now=datetime.now(UTC), state=SubscriberState.ACTIVE
        )
        if skipped:
            raise UsageError(f"{skipped[0]} is already a subscriber{_standing(store, skipped[0])}")
    click.echo(f"added {added[0].email} ({added[0].frequency}, {added[0].timezone})")


@subscribers.command("import", short_help="Add subscribers from a CSV file.")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@pass_context
def subscribers_import(ctx: Context, csv_file: TextIO) -> None:
    """Add subscribers from a CSV file (email,name,tz,frequency,tags); bad rows are reported."""
    from newsdrop.subscribers import parse_csv

    try:
        text = csv_file.read()
    except UnicodeDecodeError:
        raise UsageError(f"{csv_file.name}: not UTF-8 text; save it as UTF-8 CSV") from None
    good, bad = parse_csv(text, default_timezone=ctx.settings.site.timezone)
    with ctx.store() as store:
        added, skipped = store.add_subscribers(
            good, now=datetime.now(UTC), state=SubscriberState.ACTIVE
        )
        for email in skipped:
            click.echo(
                f"  skipped {email}: already a subscriber{_standing(store, email)}", err=True
            )
    for message in bad:
        click.echo(f"  skipped {message}", err=True)
    click.echo(f"imported {len(added)}, skipped {len(bad) + len(skipped)}")
    if bad:  # a re-import of a grown list skips the known addresses: that is not a failure
        sys.exit(1)


def _standing(store: Store, email: str) -> str:
    """What a known address is, and what the operator can do about it."""
    person = store.subscriber(email)
    if person is None or person.state is SubscriberState.ACTIVE:
        return ""
    if person.state is SubscriberState.PENDING:
        return " (pending: waiting for them to confirm)"
    return f" ({person.state}; `newsdrop subscribers reactivate {person.email}` brings it back)"


@subscribers.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def subscribers_list(ctx: Context, as_json: bool) -> None:
    """Every subscriber with their state, schedule and tags."""
    with ctx.store() as store:
        people = store.subscribers()
    for person in people:
        if as_json:
            record = {
                "id": person.id,
                "email": person.email,
                "name": person.name,
                "timezone": person.timezone,
                "frequency": person.frequency,
                "tags": list(person.tags),
                "state": str(person.state),
                "created": iso(person.created),
                "changed": iso(person.changed),
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            tags = printable(f" tags={','.join(person.tags)}") if person.tags else ""
            click.echo(
                f"{person.email:40} {person.state:12} {person.frequency:6} {person.timezone}{tags}"
            )
    if not people and not as_json:
        click.echo("no subscribers yet: newsdrop subscribers add EMAIL")


@subscribers.command("remove", short_help="Stop sending to an address.")
@click.argument("email")
@pass_context
def subscribers_remove(ctx: Context, email: str) -> None:
    """Stop sending to an address (kept as unsubscribed, with its history)."""
    _set_state(ctx, email, SubscriberState.UNSUBSCRIBED, "unsubscribed")


@subscribers.command("reactivate", short_help="Send again to a bounced or unsubscribed address.")
@click.argument("email")
@pass_context
def subscribers_reactivate(ctx: Context, email: str) -> None:
    """Send again to a bounced or unsubscribed address, on the operator's word."""
    _set_state(ctx, email, SubscriberState.ACTIVE, "active again")


def _set_state(ctx: Context, email: str, state: SubscriberState, done: str) -> None:
    with ctx.store() as store:
        person = store.subscriber(email)
        if person is None:
            raise UsageError(f"{email} is not a subscriber; see `newsdrop subscribers list`")
        if person.state is state:
            click.echo(f"{person.email} is already {state}")
            return
        store.set_subscriber_state(person.id, state, now=datetime.now(UTC))
    click.echo(f"{person.email}: {done}")
