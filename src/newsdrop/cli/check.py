"""``newsdrop check``: what is wrong with an instance, before anything runs.

Configuration errors are raised while loading the settings; what is left to
check here is what the schema cannot see: templates that do not compile,
folders that are missing, and choices that are valid but unwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess  # nosec B404
from email.utils import parseaddr
from typing import Literal

import jinja2

from newsdrop.config import Settings
from newsdrop.findings import Finding
from newsdrop.store import Store


def check_instance(settings: Settings) -> list[Finding]:
    """Every problem found, errors and warnings, each naming the file or key and the fix."""
    findings: list[Finding] = []
    if settings.site.authority_is_local:
        findings.append(
            Finding(
                "warning",
                f"{settings.source}: [site] tag_authority is '{settings.site.tag_authority}', a local "
                "address; entry ids minted with it are permanent, so set tag_authority (or "
                "base_url) to a domain you own before publishing",
            )
        )
    if not settings.seeds_dir.is_dir():  # ingest and run refuse to start without it
        findings.append(
            Finding(
                "error",
                f"{settings.seeds_dir}: the seeds folder does not exist; create it "
                "or set [paths] seeds",
            )
        )
    server = settings.server
    if server.port and (mismatch := settings.site.local_address_mismatch(server.host, server.port)):
        findings.append(Finding("warning", f"{settings.source}: {mismatch}"))
    findings += _check_mail(settings)
    findings += _check_catalogues(settings)
    environment = jinja2.Environment(autoescape=True)
    try:
        environment.parse(settings.digest.subject)
    except jinja2.TemplateSyntaxError as exc:
        findings.append(
            Finding(
                "error",
                f"{settings.source}: [digest] subject is not a valid Jinja2 template: "
                f"{exc.message} (line {exc.lineno})",
            )
        )
    else:
        findings += _try_subject(settings)
    template_dir = settings.home / "digest"
    if template_dir.is_dir():
        for path in sorted(template_dir.rglob("*.j2")):
            try:
                environment.parse(path.read_text(encoding="utf-8"))
            except jinja2.TemplateSyntaxError as exc:
                findings.append(
                    Finding("error", f"{path}:{exc.lineno}: template syntax error: {exc.message}")
                )
            except (OSError, UnicodeDecodeError) as exc:
                findings.append(Finding("error", f"{path}: cannot be read as UTF-8 text ({exc})"))
    return findings


def _check_catalogues(settings: Settings) -> list[Finding]:
    """The site's language has a catalogue, and every catalogue (shipped, or the instance's
    digest/locale/*.po) translates every message; what one lacks is shown in English."""
    from babel.messages.pofile import PoFileError, read_po

    from newsdrop.i18n import INSTANCE_LOCALE, LOCALE_DIR, catalogue_files, tag_of

    with (LOCALE_DIR / "messages.pot").open("rb") as source:
        wanted = {message.id for message in read_po(source) if message.id}
    files, findings = catalogue_files(settings.home), []
    language = tag_of(settings.site.language)
    if language.split("-")[0] != "en" and not {language, language.split("-")[0]} & set(files):
        findings.append(
            Finding(
                "warning",
                f"{settings.source}: [site] language = '{settings.site.language}' has no "
                "catalogue, so pages and mails are in English; translate "
                f"{LOCALE_DIR / 'messages.pot'} into {settings.home / INSTANCE_LOCALE}/"
                f"{language}.po",
            )
        )
    for path in files.values():
        try:
            with path.open("rb") as source:
                catalog = read_po(source, abort_invalid=True)
        except (OSError, PoFileError, ValueError) as exc:
            findings.append(Finding("error", f"{path}: cannot be read as a catalogue ({exc})"))
            continue
        for message, errors in catalog.check():
            for error in errors:  # placeholders that do not match: shown in English instead
                findings.append(Finding("warning", f"{path}:{message.lineno}: {error}"))
        done = {m.id for m in catalog if m.id and not m.fuzzy and all(_strings(m.string))}
        if missing := sorted(map(str, wanted - done)):
            findings.append(
                Finding(
                    "warning",
                    f"{path}: {len(missing)} of {len(wanted)} messages are not translated (or "
                    f"fuzzy) and show in English, such as {missing[0]!r}; translate them",
                )
            )
    return findings


def _strings(value: object) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (str(value or ""),)


def _check_mail(settings: Settings) -> list[Finding]:
    """What fails only at the first send: the DKIM key, the CA file, a missing password."""
    from newsdrop.errors import ConfigError
    from newsdrop.mail.dkim import dkim_key

    mail, findings = settings.mail, []
    try:
        dkim_key(settings)
    except ConfigError as exc:
        findings.append(Finding("error", str(exc)))
    if mail.cafile and not (settings.home / mail.cafile).is_file():
        findings.append(
            Finding(
                "error",
                f"{settings.source}: [mail] cafile = {mail.cafile!r}: no such file; point it "
                "at the CA bundle that signed the mail server's certificate, or remove it",
            )
        )
    bounces = settings.bounces
    if (bounces.listen or bounces.maildir) and not bounces.domain:
        findings.append(
            Finding(
                "warning",
                f"{settings.source}: [bounces] listen or maildir is set but domain is not, so "
                "nothing carries a bounce address and neither is used; set [bounces] domain",
            )
        )
    if mail.transport == "smtp" and mail.username and not os.environ.get(mail.password_env):
        findings.append(
            Finding(
                "warning",
                f"{settings.source}: [mail] username is {mail.username!r} but ${mail.password_env} "
                "is not set here; the service and digest send need the password in it",
            )
        )
    return findings


def _try_subject(settings: Settings) -> list[Finding]:
    """Render the subject with a sample digest: an undefined name fails here, not at send."""
    from datetime import UTC, datetime

    from newsdrop import templates
    from newsdrop.errors import RenderError
    from newsdrop.model import Site
    from newsdrop.publish.feeds import FeedItem

    now = datetime.now(UTC)
    sample = FeedItem(
        "tag:x,2026:a", "https://x/", "A title", "A summary.", "<p>x</p>", now, now, "", (), "en"
    )
    try:
        templates.render_string(
            settings.home,
            settings.digest.subject,
            site=Site.from_settings(settings),
            subscriber=None,
            entries=[sample],
            period_label="a sample day",
            unsubscribe_url="https://x/unsubscribe",
        )
    except RenderError as exc:
        return [Finding("error", f"{settings.source}: [digest] subject cannot be rendered: {exc}")]
    return []


def check_relay(
    settings: Settings, store: Store, *, deep: bool = False
) -> tuple[str, list[Finding]]:
    """Connect to the relay as a send would (TLS, login); what it offers, in words, and
    what is wrong. With [mail] smtputf8 = "auto" its answer on SMTPUTF8 is remembered.
    ``deep``: try a digest's MAIL FROM and RCPT TO too (then RSET), and a refusal is an
    error."""
    from newsdrop import loop
    from newsdrop.errors import DeliveryError
    from newsdrop.mail import relay
    from newsdrop.mail.transports import SmtpTransport

    mail = settings.mail

    async def probe() -> bool:
        async with SmtpTransport(mail, password=os.environ.get(mail.password_env)) as transport:
            return await transport.probe(envelope)

    envelope: tuple[str, str] | None = None
    if deep:  # MAIL FROM and RCPT TO as a digest's, then RSET: nothing is sent
        from newsdrop.config import instance_secret
        from newsdrop.mail.verp import envelope_sender

        sender = envelope_sender(settings, instance_secret(settings), "digest", 1)
        envelope = (sender, parseaddr(mail.from_)[1])
    try:
        offered = loop.run(probe())
    except DeliveryError as exc:
        level: Literal["error", "warning"] = "error" if deep else "warning"
        return "", [Finding(level, f"{settings.source}: the mail relay: {exc}")]
    relay.remember(settings, store, offered)
    said = f"ok: {mail.host}:{mail.port} accepts us" + (
        "; it offers SMTPUTF8 (addresses whose part before the @ is not ASCII are taken)"
        if offered
        else "; it lacks SMTPUTF8, so addresses whose part before the @ is not ASCII "
        "are refused when added"
    )
    findings = []
    if mail.smtputf8 is True and not offered:
        findings.append(
            Finding(
                "warning",
                f"{settings.source}: [mail] smtputf8 = true, but {mail.host} does not offer "
                'SMTPUTF8: mail to addresses that need it will fail; set it to "auto"',
            )
        )
    if envelope is not None:
        said += f"; it accepts MAIL FROM:<{envelope[0]}> and RCPT TO:<{envelope[1]}> (then RSET)"
    return said, findings


def check_mail(settings: Settings, store: Store) -> list[Finding]:
    """The mail preflight: DNS (SPF, DKIM, DMARC, the bounce domain's MX), then the current
    digest's size and, where SpamAssassin is installed, its score."""
    from newsdrop.errors import NewsdropError
    from newsdrop.mail.preflight import Dns, preflight

    findings = preflight(settings, Dns.of(settings))
    try:
        findings += _current_digest(settings, store)
    except NewsdropError as exc:  # a template that fails, say: said, and the rest still shown
        findings.append(Finding("error", f"digest: the current digest cannot be made: {exc}"))
    return findings


def _current_digest(settings: Settings, store: Store) -> list[Finding]:
    from datetime import UTC, datetime

    from newsdrop.mail.compose import preview_message
    from newsdrop.mail.preflight import digest_size
    from newsdrop.model import SubscriberState

    person = next(iter(store.subscribers(state=SubscriberState.ACTIVE)), None)
    if person is None:
        return [Finding("warning", "digest: no active subscriber, so no digest to weigh yet")]
    data = preview_message(settings, store, person, now=datetime.now(UTC))
    found = [digest_size(data)]
    spamassassin = shutil.which("spamassassin")
    if spamassassin is None:
        return found
    # A fixed program and arguments, the digest on stdin. -L: the local rules only (no
    # network tests); -t: a report of the rules that fired.
    try:
        done = subprocess.run(  # nosec B603
            [spamassassin, "-L", "-t"], input=data, capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [*found, Finding("warning", f"SpamAssassin: it did not run: {exc}")]
    status = re.search(
        rb"X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+\s+tests=([^\n]*(?:\n\s+[^\n]*)*)",
        done.stdout,
    )
    if status is None:
        return [*found, Finding("warning", "SpamAssassin: it gave no score")]
    score = float(status[1])
    rules = " ".join(status[2].decode(errors="replace").replace(",", " ").split())
    level: Literal["ok", "warning"] = "ok" if score <= 0 else "warning"
    return [*found, Finding(level, f"SpamAssassin: the current digest scores {score} ({rules})")]
