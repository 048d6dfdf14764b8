"""Commands about the instance as a whole: ``init``, ``run`` (the service), ``status`` and
``check``."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsdrop.cli.context import Context, iso, pass_context
from newsdrop.config import CONFIG_FILE, instance_secret, load_settings
from newsdrop.errors import UsageError
from newsdrop.logs import printable

if TYPE_CHECKING:
    from newsdrop.model import Problem


@click.command(short_help="Create a new instance in DIRECTORY.")
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


@click.command(short_help="The service: watch seeds/, publish, send, serve.")
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


@click.command(short_help="Counts, the service, the cluster, every problem.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable status.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Counts, the last ingest, the service, and every problem with its reason."""
    from newsdrop.service.status import running_status

    now = datetime.now(UTC)
    service = running_status(ctx.settings)
    with ctx.store() as store:
        counts = store.counts(now=now)
        last = store.last_run()
        problems = store.problems()
        notes = store.entry_notes()
        people: dict[str, int] = {}
        for person in store.subscribers():
            people[str(person.state)] = people.get(str(person.state), 0) + 1
        lease = store.lease("leader")
        members = store.instances()
        queue = store.delivery_counts()
        returns = store.returned_by_period(periods=1)
        returned_mail = store.returned_counts() if ctx.settings.bounces.domain else {}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "home": str(ctx.home),
                    "entries": counts,
                    "subscribers": people,
                    "last_ingest": iso(last[0]) if last else None,
                    "last_ingest_summary": last[1] if last else None,
                    "service": service,
                    "cluster": {
                        "leader": lease[0] if lease and lease[2] > now else None,
                        "lease_taken": iso(lease[1]) if lease else None,
                        "lease_expires": iso(lease[2]) if lease else None,
                        "instances": [
                            {k: iso(v) if isinstance(v, datetime) else v for k, v in m.items()}
                            for m in members
                        ],
                    },
                    "deliveries": queue,
                    "returned": [{"due": iso(r.due), **r.figures()} for r in returns],
                    "returned_mail": returned_mail,
                    "problems": [
                        {"path": p.source, "reason": p.reason, "seen": iso(p.seen)}
                        for p in problems
                    ],
                    "notes": [{"path": source, "notes": said} for source, said in notes],
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
    click.echo(f"last ingest: {iso(last[0]) if last else 'never'}")
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
    if queue.get("failed"):
        click.echo("  the failed ones: newsdrop digest failures; again: newsdrop digest retry")
    for period in returns:  # the latest period that sent digests
        click.echo(f"returned mail of the last period ({iso(period.due)}): {period.in_words()}")
    if returned_mail:
        days = ctx.settings.bounces.keep_days
        click.echo(
            f"returned mail kept (the last {days} days): "
            + ", ".join(f"{n} {kind}" for kind, n in returned_mail.items())
            + (" (dropped: no valid bounce address, or a message that is gone)"
               if returned_mail["dropped"] else "")
        )  # fmt: skip
    _echo_documents(problems, notes)


def _echo_documents(problems: list[Problem], notes: list[tuple[str, list[str]]]) -> None:
    """Every problem, then what was guessed about published entries (a file name may hold
    anything but "/" and NUL: shown escaped)."""
    click.echo(f"problems: {len(problems)}")
    for problem in problems:
        click.echo(f"  {printable(problem.reason)}")
    if notes:  # published, with something guessed that the publisher may want to state
        click.echo(f"notes: {len(notes)} published entries with a guess")
        for source, said in notes:
            click.echo(f"  {printable(source)}: {printable('; '.join(said))}")


@click.command(short_help="Validate the configuration and templates; --mail: will mail land?")
@click.option(
    "--mail",
    "mail_preflight",
    is_flag=True,
    help="The mail preflight: the relay takes a digest's envelope; SPF, DKIM, DMARC and the "
    "bounce domain's MX in DNS; the current digest's size and SpamAssassin score.",
)
@pass_context
def check(ctx: Context, mail_preflight: bool) -> None:
    """Validate the configuration and templates; say exactly what is wrong. With the SMTP
    transport, connect to the relay as a send would, say what it offers, and run the
    mail preflight (--mail runs it with any transport, and tries a digest's envelope)."""
    from newsdrop.cli.check import check_instance, check_mail, check_relay
    from newsdrop.findings import Finding

    settings = ctx.settings
    findings = check_instance(settings)
    smtp = settings.mail.transport == "smtp"
    if (smtp or mail_preflight) and not any(f.level == "error" for f in findings):
        with ctx.store() as store:
            if smtp:
                said, more = check_relay(settings, store, deep=mail_preflight)
                findings += more
                if said:
                    click.echo(said)
            preflight = check_mail(settings, store)
        if not mail_preflight:  # shown, but only --mail fails on what DNS says
            preflight = [
                Finding("warning", f.message) if f.level == "error" else f for f in preflight
            ]
        findings += preflight
    for finding in findings:
        click.echo(f"{finding.level}: {finding.message}", err=finding.level == "error")
    if any(f.level == "error" for f in findings):
        sys.exit(2)
    warned = any(f.level == "warning" for f in findings)
    click.echo(f"ok: {settings.source} is valid" + (" (with warnings)" if warned else ""))
