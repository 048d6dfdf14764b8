"""``newsdrop digest``: send what is due, see what was sent or failed, queue failures again,
preview a digest."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from newsdrop.cli.context import Context, iso, pass_context
from newsdrop.config import Settings
from newsdrop.errors import UsageError
from newsdrop.model import SubscriberState
from newsdrop.store import Store


@click.group("digest", short_help="Send digests, preview them, see what was sent.")
def digest_group() -> None:
    """Send digests, look at them before they go, and see what was sent."""


@digest_group.command("send")
@click.option(
    "--now", "close_now", is_flag=True, help="Close every active subscriber's period now."
)
@click.option("--dry-run", is_flag=True, help="Say what would be sent; record and send nothing.")
@pass_context
def digest_send(ctx: Context, close_now: bool, dry_run: bool) -> None:
    """Send every digest that is due (safe to run from cron any number of times)."""
    from newsdrop.mail.deliver import send_digests

    with ctx.store() as store:
        report = send_digests(
            ctx.settings, store, now=datetime.now(UTC), close_now=close_now, dry_run=dry_run
        )
        # Only a send over SMTP reaches people whose links the service must answer.
        smtp = bool(report.sent) and ctx.settings.mail.transport == "smtp"
        unserved = smtp and not _served(ctx.settings, store)
    queued = len(report.opened) - report.skipped
    if dry_run:
        click.echo(f"digest send --dry-run: {queued} would be sent, {report.skipped} empty")
        return
    click.echo(
        f"digest send: {len(report.sent)} sent, {report.skipped} empty periods skipped, "
        f"{len(report.retrying)} to retry, {len(report.failed)} failed"
    )
    if report.confirmations or report.confirmations_failed:
        sent = len(report.confirmations)
        click.echo(
            f"  {sent} confirmation {'mail' if sent == 1 else 'mails'} sent, "
            f"{len(report.confirmations_failed)} failed"
        )
    for _, reply in report.confirmations_failed:
        click.echo(f"  a confirmation mail failed: {reply}", err=True)
    # Grouped by the server's reply: 10,000 digests refused alike make one line (-v logs
    # each digest with its address).
    for what, outcomes in (("will be retried", report.retrying), ("failed", report.failed)):
        for reply, count in Counter(reply for _, reply in outcomes).most_common():
            click.echo(
                f"  {count} {'digest' if count == 1 else 'digests'} {what}: {reply}", err=True
            )
    for email in report.bounced:
        click.echo(
            f"  {email} bounced (three refusals in a row); reactivate it if that is wrong", err=True
        )
    if report.paused:
        click.echo(
            f"  sending paused, nothing was bounced: {report.paused}; digests stay queued "
            "and go out on the next run once it is fixed",
            err=True,
        )
    if report.unrecorded:
        click.echo(
            f"  {report.unrecorded} digests were sent but could not be recorded: once the "
            f"store can be written they go out again after [mail] claim_timeout_s",
            err=True,
        )
    if unserved:
        click.echo(
            f"  warning: no `newsdrop run` instance is serving {ctx.settings.site.base_url}; "
            "the unsubscribe and web-view links in these digests answer only when one is "
            "(see the README: without the service)",
            err=True,
        )
    if report.failed or report.paused or report.confirmations_failed:
        sys.exit(1)


def _served(settings: Settings, store: Store) -> bool:
    """Whether some `newsdrop run` on this store is alive (it reports itself each third
    of a lease)."""
    alive_since = datetime.now(UTC) - timedelta(seconds=settings.cluster.lease_seconds)
    return any(not i["stopped"] and i["seen"] > alive_since for i in store.instances())


@digest_group.command("status")
@pass_context
def digest_status(ctx: Context) -> None:
    """Per period: how many digests are queued, sent, skipped or failed, and of those sent,
    how many came back as bounces or complaints (the latest ten periods)."""
    with ctx.store() as store:
        rows = store.delivery_summary()
        mails = store.confirmation_counts()
        returns = store.returned_by_period()
    if not rows:
        click.echo("no digests yet: add subscribers, then newsdrop digest send")
    for due, state, count in rows:
        click.echo(f"{iso(due)}  {state:10} {count}")
    if mails:
        counts = ", ".join(f"{mails[state]} {state}" for state in sorted(mails))
        click.echo(f"confirmation mails: {counts}")
    if returns:
        click.echo("returned mail, per period:")
    for period in returns:
        click.echo(f"{iso(period.due)}  {period.in_words()}")


@digest_group.command("failures")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def digest_failures(ctx: Context, as_json: bool) -> None:
    """Failed digests by subscriber: the period, the attempts, when, and the server's reply."""
    from newsdrop.logs import printable

    with ctx.store() as store:
        failed = store.failed_deliveries()
    for email, delivery in failed:
        record = {
            "email": email, "due": iso(delivery.due), "attempts": delivery.attempts,
            "failed": iso(delivery.changed), "reply": delivery.reply,
        }  # fmt: skip
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(
                printable(f"{email}  due {record['due']}, {delivery.attempts} attempts, failed ")
                + printable(f"{record['failed']}: {delivery.reply}")
            )
    if failed and not as_json:
        click.echo("fix the cause, then: newsdrop digest retry EMAIL (or --all-failed)")
    elif not failed and not as_json:
        click.echo("no failed digests")


@digest_group.command("retry", short_help="Queue failed digests again.")
@click.argument("email", required=False)
@click.option("--all-failed", is_flag=True, help="Every active subscriber's failed digests.")
@pass_context
def digest_retry(ctx: Context, email: str | None, all_failed: bool) -> None:
    """Queue a subscriber's failed digests again (or, with --all-failed, every active
    subscriber's), with every attempt back; the next `digest send`, or the service at
    once, sends them."""
    if bool(email) == all_failed:
        raise UsageError("name one subscriber's EMAIL, or give --all-failed")
    now = datetime.now(UTC)
    with ctx.store() as store:
        if all_failed:
            count = store.requeue_failed(now=now)
            left = len(store.failed_deliveries())
        else:
            person = store.subscriber(email or "")
            if person is None:
                raise UsageError(f"{email} is not a subscriber; see `newsdrop digest failures`")
            if person.state is not SubscriberState.ACTIVE:
                raise UsageError(
                    f"{person.email} is {person.state}: its digests would not be sent; "
                    f"`newsdrop subscribers reactivate {person.email}` first"
                )
            count, left = store.requeue_failed(now=now, subscriber_id=person.id), 0
    click.echo(f"queued again: {count}")
    if left:
        click.echo(f"left failed: {left}, of subscribers no longer active")


@digest_group.command("preview")
@click.option("--subscriber", "email", help="Whose digest (default: the first active subscriber).")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="The period due on this local date (default: the next one).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write .html or .eml.")
@pass_context
def digest_preview(ctx: Context, email: str | None, day: datetime | None, out: Path | None) -> None:
    """Render a subscriber's digest for a period (with what is published so far); nothing is
    sent or recorded."""
    from email import message_from_bytes
    from email import policy as email_policy

    from newsdrop.mail.compose import preview_message

    now = datetime.now(UTC)
    with ctx.store() as store:
        person = (
            store.subscriber(email)
            if email
            else next(iter(store.subscribers(state=SubscriberState.ACTIVE)), None)
        )
        if person is None and email:
            raise UsageError(
                f"{email} is not a subscriber; see `newsdrop subscribers list`, or leave out "
                "--subscriber to preview the first active one"
            )
        if person is None:
            raise UsageError(
                "no active subscriber: nothing to preview; add one with newsdrop subscribers add"
            )
        data = preview_message(ctx.settings, store, person, now=now, on=day)
    message = message_from_bytes(data, policy=email_policy.default)
    if out is None:
        body = message.get_body(preferencelist=("plain",))
        click.echo(f"Subject: {message['Subject']}\n")
        click.echo(body.get_content() if body else "")
    else:
        if out.suffix.lower() not in (".eml", ".html", ".htm"):
            raise UsageError(f"--out {out}: name a .html file (the HTML part) or .eml (all of it)")
        html = message.get_body(preferencelist=("html",))
        if out.suffix.lower() != ".eml":
            data = (html.get_content() if html else "").encode()
        try:
            out.write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
        click.echo(f"wrote {out}")
