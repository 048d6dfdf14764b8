"""The ``newsdrop`` command. Thin: parse arguments, call the pipeline, print the outcome.

Exit codes: 0 ok, 1 failed work, 2 usage or configuration error. A user error
is one sentence on stderr, never a traceback (unless ``--debug``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import NoReturn, TextIO
from zoneinfo import ZoneInfo

import click

from newsdrop.config import CONFIG_FILE, Settings, instance_secret, load_settings
from newsdrop.errors import ConfigError, NewsdropError, UsageError
from newsdrop.logs import printable
from newsdrop.model import SubscriberState
from newsdrop.store import Store


@dataclass(slots=True)
class Context:
    home: Path
    debug: bool
    verbose: int = 0
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            if not (self.home / CONFIG_FILE).exists() and not (self.home / "seeds").is_dir():
                raise ConfigError(
                    f"{self.home} is not a newsdrop instance (it has no {CONFIG_FILE} and no "
                    f"seeds/); create one with `newsdrop init {self.home}`, or pass --home"
                )
            self._settings = load_settings(self.home)
        return self._settings

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store.open(self.settings.store_url)
        try:
            yield store
        finally:
            store.close()


pass_context = click.make_pass_decorator(Context)


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


@cli.command(short_help="Create a new instance in DIRECTORY.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Create a new instance: seeds/ feeds/ digest/ state/ and config/newsdrop.toml."""
    config = directory / CONFIG_FILE
    if config.exists():
        raise UsageError(f"{config} already exists: {directory} is an instance already")
    for name in ("seeds", "feeds", "digest", "config"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    # state/ holds the subscriber list and the secret: the owner's alone, whatever the umask.
    (directory / "state").mkdir(mode=0o700, exist_ok=True)
    (directory / "state").chmod(0o700)
    template = resources.files("newsdrop").joinpath("defaults/newsdrop.toml").read_text("utf-8")
    config.write_text(template, encoding="utf-8")
    instance_secret(load_settings(directory.absolute(), environ={}))  # made now, kept private
    ignore = directory / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    missing = [line for line in ("feeds/", "state/") if line not in lines]
    if missing:  # add to the user's .gitignore, never replace it
        with ignore.open("a", encoding="utf-8") as handle:
            if lines and lines[-1]:
                handle.write("\n")
            handle.write("\n".join(missing) + "\n")
    click.echo(f"created an instance in {directory}")
    click.echo(
        f"  first set [site] base_url (or tag_authority) in {config}: entry ids are minted "
        "from it and are permanent;"
    )
    click.echo(f"  then drop documents into {directory / 'seeds'} and run the service:")
    click.echo(f"    newsdrop --home {directory} run")
    click.echo(f"  (or, from cron: newsdrop --home {directory} ingest, then build)")


@cli.command(short_help="Read the documents in seeds/ into the store.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--strict", is_flag=True, help="Exit 1 while any document in seeds/ is a problem.")
@pass_context
def ingest(ctx: Context, as_json: bool, strict: bool) -> None:
    """Read every document under seeds/ into the store (new, changed, renamed, deleted)."""
    from newsdrop.ingest.run import ingest as run_ingest

    settings = ctx.settings
    started = datetime.now(UTC)
    with ctx.store() as store, _progress(enabled=not as_json) as progress:
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


@cli.command()
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


@cli.group()
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
                "created": _iso(person.created),
                "changed": _iso(person.changed),
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


@cli.group("digest", short_help="Send digests, preview them, see what was sent.")
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
    """Per period: how many digests are queued, sent, skipped or failed."""
    with ctx.store() as store:
        rows = store.delivery_summary()
        mails = store.confirmation_counts()
    if not rows:
        click.echo("no digests yet: add subscribers, then newsdrop digest send")
    for due, state, count in rows:
        click.echo(f"{_iso(due)}  {state:10} {count}")
    if mails:
        counts = ", ".join(f"{mails[state]} {state}" for state in sorted(mails))
        click.echo(f"confirmation mails: {counts}")


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

    from newsdrop.mail.compose import Composer
    from newsdrop.mail.schedule import next_period
    from newsdrop.store import Delivery

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
        period = next_period(store, ctx.settings, person, now=now, on=day)
        preview = Delivery(
            0, person.id, period.due, period.window_start, period.due, "preview",
            period.entry_ids, 0, "", now,
        )  # fmt: skip
        data = Composer(ctx.settings, store).message(preview, person, sent=now)
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


@cli.group()
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
                "published": _iso(e.published),
                "updated": _iso(e.updated),
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


@cli.command(short_help="The service: watch seeds/, publish, send, serve.")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "text", "json"]),
    default="auto",
    show_default=True,
    help="auto: text on a terminal, JSON lines otherwise.",
)
@pass_context
def run(ctx: Context, log_format: str) -> None:
    """Watch seeds/, publish feeds/, send digests on time and serve it all over HTTP.

    Stops cleanly on Ctrl-C or SIGTERM.
    """
    from newsdrop.logs import configure
    from newsdrop.service.run import run_service

    settings = ctx.settings
    configure(log_format, level=logging.DEBUG if ctx.verbose > 1 else logging.INFO)  # type: ignore[arg-type]
    run_service(settings)


@cli.command(short_help="Counts, the service, the cluster, every problem.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable status.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Counts, the last ingest, the service, and every problem with its reason."""
    from newsdrop.service.run import running_status

    now = datetime.now(UTC)
    service = running_status(ctx.settings)
    with ctx.store() as store:
        counts = store.counts(now=now)
        last = store.last_run()
        problems = store.problems()
        people: dict[str, int] = {}
        for person in store.subscribers():
            people[str(person.state)] = people.get(str(person.state), 0) + 1
        lease = store.lease("leader")
        members = store.instances()
        queue = store.delivery_counts()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "home": str(ctx.home),
                    "entries": counts,
                    "subscribers": people,
                    "last_ingest": _iso(last[0]) if last else None,
                    "last_ingest_summary": last[1] if last else None,
                    "service": service,
                    "cluster": {
                        "leader": lease[0] if lease and lease[2] > now else None,
                        "lease_taken": _iso(lease[1]) if lease else None,
                        "lease_expires": _iso(lease[2]) if lease else None,
                        "instances": [
                            {k: _iso(v) if isinstance(v, datetime) else v for k, v in m.items()}
                            for m in members
                        ],
                    },
                    "deliveries": queue,
                    "problems": [
                        {"path": p.source, "reason": p.reason, "seen": _iso(p.seen)}
                        for p in problems
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"instance: {ctx.home}")
    click.echo(
        "entries: {published} published, {scheduled} scheduled, {withdrawn} withdrawn".format(
            **counts
        )
    )
    click.echo(
        "subscribers: "
        + (", ".join(f"{count} {state}" for state, count in sorted(people.items())) or "none")
    )
    click.echo(f"last ingest: {_iso(last[0]) if last else 'never'}")
    if service is None:
        click.echo("service: not running")
    else:
        click.echo(
            f"service: running (pid {service.get('pid', '?')}, since {service.get('started', '?')}, "
            f"at {service.get('url', '?')}); last build {service.get('last_build', 'not yet')}, "
            f"last digest run {service.get('last_digest', 'not yet')}"
        )
        if service.get("last_build_error"):
            click.echo(f"  the last build failed: {printable(service['last_build_error'])}")
    if members:  # instances of `newsdrop run` on this store (several share a PostgreSQL one)
        if lease and lease[2] > now:
            age = (now - lease[1]).total_seconds()
            left = (lease[2] - now).total_seconds()
            click.echo(f"leader: {lease[0]} (for {age:.0f} s; its lease runs {left:.0f} s more)")
        elif any(not member["stopped"] for member in members):
            click.echo("leader: none (the next instance to renew takes over)")
        for member in members:
            seen = (now - member["seen"]).total_seconds()
            state = "stopped" if member["stopped"] else f"seen {seen:.0f} s ago"
            where = printable(f"pid {member['pid']} on {member['host']}, {member['url']}")
            click.echo(f"  instance {printable(member['name'])}: {where}, {state}")
    if queue:
        click.echo("digests: " + ", ".join(f"{n} {state}" for state, n in sorted(queue.items())))
    click.echo(f"problems: {len(problems)}")
    for problem in problems:  # a file name may hold anything but "/" and NUL: shown escaped
        click.echo(f"  {printable(problem.reason)}")


@cli.command(short_help="Validate the configuration and templates.")
@pass_context
def check(ctx: Context) -> None:
    """Validate the configuration and templates; say exactly what is wrong."""
    from newsdrop.cli.check import check_instance

    findings = check_instance(ctx.settings)
    for finding in findings:
        click.echo(f"{finding.level}: {finding.message}", err=finding.level == "error")
    errors = [f for f in findings if f.level == "error"]
    if errors:
        sys.exit(2)
    click.echo(f"ok: {ctx.settings.source} is valid" + (" (with warnings)" if findings else ""))


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing when output is piped."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("ingest", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
