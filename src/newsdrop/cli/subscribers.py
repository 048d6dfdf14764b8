"""``newsdrop subscribers``: add, edit, import, export, list, show, remove, reactivate,
renew-links, suppressed."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

import click

from newsdrop.cli.context import Context, iso, pass_context
from newsdrop.errors import UsageError
from newsdrop.logs import printable
from newsdrop.model import FREQUENCIES, WEEKDAYS, Subscriber, SubscriberState
from newsdrop.store import Store

if TYPE_CHECKING:
    from newsdrop.subscribers import NewSubscriber

FREQUENCY_HELP = (
    "How often they get a digest (instant: each new entry, at most one mail per "
    "[digest] instant_min_minutes; weekly: on their weekday; monthly: on the 1st)."
)
AT_HELP = "Their delivery time, HH:MM on the hour or half hour, in their zone (default: [digest] send_at)."
WEEKDAY_HELP = "A weekly digest's day (default: [digest] weekday)."
LANGUAGE_HELP = "The language of their mails, such as uk (default: [site] language)."
FREQUENCY_CHOICE = click.Choice(FREQUENCIES)
WEEKDAY_CHOICE = click.Choice(WEEKDAYS, case_sensitive=False)


@click.group()
def subscribers() -> None:
    """Manage the people who receive digests."""


@subscribers.command("add", short_help="Add an active subscriber.")
@click.argument("email")
@click.option("--name", default="", help="How to greet them.")
@click.option("--tz", "timezone", help="Their IANA time zone (default: [site] timezone).")
@click.option(
    "--frequency", type=FREQUENCY_CHOICE, default="daily", show_default=True, help=FREQUENCY_HELP
)
@click.option("--tags", default="", help="Comma-separated tags: only entries with one of them.")
@click.option("--at", "at", default="", metavar="HH:MM", help=AT_HELP)
@click.option("--weekday", type=WEEKDAY_CHOICE, help=WEEKDAY_HELP)
@click.option("--language", default="", metavar="TAG", help=LANGUAGE_HELP)
@pass_context
def subscribers_add(
    ctx: Context,
    email: str,
    name: str,
    timezone: str | None,
    frequency: str,
    tags: str,
    at: str,
    weekday: str | None,
    language: str,
) -> None:
    """Add an active subscriber (the operator's word is their opt-in)."""
    from newsdrop.mail.relay import utf8_local_parts
    from newsdrop.subscribers import new_subscriber

    with ctx.store() as store:
        wanted = new_subscriber(
            email,
            name=name,
            timezone=timezone or ctx.settings.site.timezone,
            frequency=frequency,
            tags=tags,
            at=at,
            weekday=weekday or "",
            language=_mail_language(ctx, language),
            utf8_local=utf8_local_parts(ctx.settings, store),
        )
        if _suppressed(ctx, store, [wanted]):
            raise UsageError(f"{wanted.email}: {SUPPRESSED}")
        added, skipped = store.add_subscribers(
            [wanted], now=datetime.now(UTC), state=SubscriberState.ACTIVE
        )
        if skipped:
            raise UsageError(f"{skipped[0]} is already a subscriber{_standing(store, skipped[0])}")
    click.echo(f"added {added[0].email} ({_schedule(ctx, added[0])})")


@subscribers.command("edit", short_help="Change what a subscriber chose.")
@click.argument("email")
@click.option("--name", help="How to greet them.")
@click.option("--tz", "timezone", help="Their IANA time zone.")
@click.option("--frequency", type=FREQUENCY_CHOICE, help=FREQUENCY_HELP)
@click.option("--tags", help='Comma-separated tags; "" for everything.')
@click.option("--at", "at", metavar="HH:MM", help=AT_HELP + ' "" for the site\'s.')
@click.option("--weekday", help=WEEKDAY_HELP + ' "" for the site\'s.')
@click.option("--language", metavar="TAG", help=LANGUAGE_HELP + ' "" for the site\'s.')
@pass_context
def subscribers_edit(
    ctx: Context,
    email: str,
    name: str | None,
    timezone: str | None,
    frequency: str | None,
    tags: str | None,
    at: str | None,
    weekday: str | None,
    language: str | None,
) -> None:
    """Change a subscriber's name, zone, frequency, tags, hour, weekday or language; an option left
    out keeps what they have. It holds from their next digest on: nothing is lost or
    sent twice."""
    from newsdrop.subscribers import new_subscriber

    with ctx.store() as store:
        person = store.subscriber(email)
        if person is None:
            raise UsageError(f"{email} is not a subscriber; see `newsdrop subscribers list`")
        keep = [name, timezone, frequency, tags, at, weekday, language]
        if all(option is None for option in keep):
            raise UsageError(
                "nothing to change: give --name, --tz, --frequency, --tags, --at, --weekday "
                "or --language"
            )
        choices = new_subscriber(
            person.email,
            name=person.name if name is None else name,
            timezone=person.timezone if timezone is None else timezone,
            frequency=person.frequency if frequency is None else frequency,
            tags=",".join(person.tags) if tags is None else tags,
            at=(person.send_at or "") if at is None else at,
            weekday=(person.weekday or "") if weekday is None else weekday,
            language=person.language if language is None else _mail_language(ctx, language),
        )
        store.set_choices(person.id, choices, now=datetime.now(UTC))
        changed = store.subscriber(person.email)
    if changed is None:  # removed by another process meanwhile
        raise UsageError(f"{person.email} is no longer a subscriber")
    click.echo(f"{changed.email}: {_schedule(ctx, changed)}")


def _mail_language(ctx: Context, language: str) -> str:
    """A language mails can be written in ("" for the site's), or a UsageError naming them."""
    from newsdrop.i18n import languages, tag_of

    available = languages(ctx.settings.home)
    tag = tag_of(language) if language.strip() else ""
    if tag and tag not in available:
        raise UsageError(
            f"--language {language!r}: mails can be written in {', '.join(available)}; add a "
            f"catalogue as digest/locale/{tag}.po for another"
        )
    return "" if tag == tag_of(ctx.settings.site.language) else tag


def _schedule(ctx: Context, person: Subscriber) -> str:
    """A subscriber's choices in words, as their pages and mails say them."""
    from newsdrop.subscribers import describe

    return printable(describe(person, ctx.settings))


@subscribers.command("import", short_help="Add subscribers from a CSV file.")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@pass_context
def subscribers_import(ctx: Context, csv_file: TextIO) -> None:
    """Add subscribers from a CSV file (email,name,tz,frequency,tags,at,weekday, or the
    columns its header row names, an export's included); bad rows are reported."""
    from newsdrop.mail.relay import utf8_local_parts
    from newsdrop.subscribers import parse_csv

    try:
        text = csv_file.read()
    except UnicodeDecodeError:
        raise UsageError(f"{csv_file.name}: not UTF-8 text; save it as UTF-8 CSV") from None
    with ctx.store() as store:
        good, bad = parse_csv(
            text,
            default_timezone=ctx.settings.site.timezone,
            utf8_local=utf8_local_parts(ctx.settings, store),
        )
        refused = _suppressed(ctx, store, good)
        for email in sorted(refused):
            bad.append(f"{email}: {SUPPRESSED}")
        good = [person for person in good if person.email not in refused]
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


SUPPRESSED = (
    "deleted at their own request, so no import or `add` may mail them again (they can "
    "subscribe again themselves, on the subscribe page)"
)


def _suppressed(ctx: Context, store: Store, people: Sequence[NewSubscriber]) -> set[str]:
    """The addresses among ``people`` on the suppression list."""
    from newsdrop.config import instance_secret
    from newsdrop.subscribers import suppression_key

    secret = instance_secret(ctx.settings)
    keys = {suppression_key(secret, person.email): person.email for person in people}
    return {keys[key] for key in store.suppressed(list(keys))}


@subscribers.command("suppressed", short_help="Whether an address was deleted at its request.")
@click.argument("email")
@pass_context
def subscribers_suppressed(ctx: Context, email: str) -> None:
    """Whether an address is on the suppression list (its subscriber deleted everything):
    the list holds keyed hashes only, so it can be tested, never listed. Exit 0 when it
    is, 1 when it is not."""
    from newsdrop.subscribers import new_subscriber, normalize_address

    person = new_subscriber(normalize_address(email), timezone="UTC")
    with ctx.store() as store:
        found = bool(_suppressed(ctx, store, [person]))
    click.echo(f"{person.email}: {SUPPRESSED}" if found else f"{person.email}: not suppressed")
    sys.exit(0 if found else 1)


@subscribers.command("export", short_help="Every subscriber as CSV, for a spreadsheet or import.")
@click.option("--state", type=click.Choice([str(s) for s in SubscriberState]), help="Only these.")
@pass_context
def subscribers_export(ctx: Context, state: str | None) -> None:
    """Every subscriber as CSV on standard output: the import's columns, then state, joined
    and last_sent (UTC). `subscribers import` takes the file back as it is."""
    from newsdrop.subscribers import EXPORT_COLUMNS

    with ctx.store() as store:
        people = store.subscribers(state=SubscriberState(state) if state else None)
        sent = store.last_sent_by_subscriber()
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(EXPORT_COLUMNS)
    for person in people:
        last = sent.get(person.id)
        out.writerow([
            person.email, person.name, person.timezone, person.frequency, ",".join(person.tags),
            person.send_at or "", person.weekday or "", str(person.state),
            iso(person.activated or person.created), iso(last) if last else "",
        ])  # fmt: skip


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
                "at": person.send_at,
                "weekday": person.weekday,
                "state": str(person.state),
                "created": iso(person.created),
                "changed": iso(person.changed),
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(f"{person.email:40} {person.state:12} {_schedule(ctx, person)}")
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


@subscribers.command("show", short_help="One subscriber: choices, state, links and history.")
@click.argument("email")
@pass_context
def subscribers_show(ctx: Context, email: str) -> None:
    """One subscriber's choices, state, manage link and every recorded change (by them or
    the operator) with its time."""
    from newsdrop.config import instance_secret
    from newsdrop.subscribers import manage_url

    with ctx.store() as store:
        person = store.subscriber(email)
        if person is None:
            raise UsageError(f"{email} is not a subscriber; see `newsdrop subscribers list`")
        history = store.subscriber_changes(person.id)
    click.echo(f"{person.email} ({person.state}): {_schedule(ctx, person)}")
    if person.paused(datetime.now(UTC)) and person.paused_until is not None:
        click.echo(f"paused until {person.paused_until:%Y-%m-%d %H:%M} UTC")
    secret = instance_secret(ctx.settings)
    click.echo(f"manage link: {manage_url(ctx.settings.site.base_url, secret, person)}")
    for when, by, what in history:
        click.echo(f"  {when:%Y-%m-%d %H:%M} UTC  {by}: {what}")


@subscribers.command("renew-links", short_help="Replace a subscriber's manage and feed links.")
@click.argument("email")
@pass_context
def subscribers_renew_links(ctx: Context, email: str) -> None:
    """Replace a subscriber's manage and private-feed links: the old ones stop working at
    once (a link that was forwarded or leaked); their next mail carries the new ones."""
    with ctx.store() as store:
        person = store.subscriber(email)
        if person is None:
            raise UsageError(f"{email} is not a subscriber; see `newsdrop subscribers list`")
        store.rotate_subscriber_links(person.id, now=datetime.now(UTC))
    click.echo(f"{person.email}: new manage and feed links; the old ones no longer work")
