"""Digest messages: rendered once per distinct digest with tokens where subscribers differ,
personalised by filling the tokens, composed into MIME bytes directly. Pure, but for the
Composer, which reads the entries of a delivery from the store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache
from html import escape as html_escape
from pathlib import Path
from urllib.parse import urlsplit

import css_inline

from newsdrop import templates
from newsdrop.config import Settings, instance_secret
from newsdrop.mail.dkim import dkim_key, signed
from newsdrop.mail.identity import Identity, identity_of, list_unsubscribe
from newsdrop.mail.mime import base64_lines, html_body
from newsdrop.mail.schedule import period_label
from newsdrop.model import Site, StoredEntry, Subscriber
from newsdrop.publish import feeds
from newsdrop.store import Delivery, Store
from newsdrop.subscribers import clean_name, manage_url, unsubscribe_token, wire_address


@dataclass(frozen=True, slots=True)
class DigestMessage:
    """One subscriber's digest: what ``compose`` makes a message of."""

    subject: str
    text: str
    html: str
    # The HTML part as it travels, (Content-Transfer-Encoding, body), when already made
    # (from the shared digest's 7bit part); else ``compose`` makes it from ``html``.
    html_part: tuple[str, str] | None = None


MAX_MESSAGE_BYTES = 95_000  # Gmail clips a message over 102 KB, unsubscribe link and all


# Stand-ins for what differs between subscribers: a digest is rendered once for everyone
# who gets the same entries for the same period, then these are replaced per message.
# (bandit B105 reads "TOKEN" as a password: these are placeholders, not secrets.)
NAME_TOKEN = "ndxnamex7q"  # nosec B105


EMAIL_TOKEN = "ndxemailx7q@example.invalid"  # nosec B105


UNSUBSCRIBE_TOKEN = "https://ndxunsubx7q.invalid/"  # nosec B105


VIEW_TOKEN = "https://ndxviewx7q.invalid/"  # nosec B105


MANAGE_TOKEN = "https://ndxmanagex7q.invalid/"  # nosec B105


def shared_key(
    subscriber: Subscriber, entry_ids: tuple[str, ...], due: datetime
) -> tuple[object, ...]:
    """Subscribers with the same key get the same rendered digest, tokens aside."""
    return (
        entry_ids, due, subscriber.timezone, subscriber.frequency, bool(subscriber.name),
        subscriber.language,
    )  # fmt: skip


def in_their_language(site: Site, subscriber: Subscriber) -> Site:
    """The site as a subscriber's mails show it: in the language they chose, if any."""
    language = subscriber.mail_language(site.language)
    return site if language == site.language else replace(site, language=language)


def render(
    home: Path,
    *,
    site: Site,
    base_url: str,
    subject_template: str,
    subscriber: Subscriber,
    entries: list[StoredEntry],
    due: datetime,
    with_view: bool = True,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> SharedDigest:
    """Subject, text and HTML of a digest with the per-subscriber tokens still in (see
    ``personalize``), from the instance's templates or the packaged ones, CSS inlined for
    mail clients. A digest too big for one message lists its first entries and links the
    rest to its web view. In the subscriber's language."""
    site = in_their_language(site, subscriber)
    stand_in = replace(subscriber, name=NAME_TOKEN if subscriber.name else "", email=EMAIL_TOKEN)
    items = [feeds.feed_item(s, base_url=base_url, default_author="") for s in entries]
    shown = len(items)
    while True:
        context = {
            "site": site,
            "subscriber": stand_in,
            "entries": items[:shown],
            "more": len(items) - shown,
            "period_label": period_label(due, subscriber, site.timezone, site.language, home),
            "unsubscribe_url": UNSUBSCRIBE_TOKEN,
            "manage_url": MANAGE_TOKEN,
            "view_url": VIEW_TOKEN if with_view else "",
        }
        text = templates.render(home, "digest.txt.j2", **context)
        html = inliner().inline(templates.render(home, "digest.html.j2", **context))
        html_part = html_body(html)
        if len(base64_lines(text.encode())) + len(html_part[1]) <= max_bytes or shown <= 1:
            break  # (the sizes of the parts as they travel)
        shown //= 2
    subject = templates.render_string(home, subject_template, **{**context, "entries": items})
    return SharedDigest.of(" ".join(subject.split()), text, html, html_part)


def digest_subject(
    home: Path, subject_template: str, *, site: Site, base_url: str, subscriber: Subscriber,
    entries: list[StoredEntry], due: datetime,
) -> str:  # fmt: skip
    """The subject a digest had (for a subscriber's download of their data)."""
    site = in_their_language(site, subscriber)
    items = [feeds.feed_item(s, base_url=base_url, default_author="") for s in entries]
    context = {
        "site": site, "subscriber": subscriber, "entries": items,
        "period_label": period_label(due, subscriber, site.timezone, site.language, home),
        "unsubscribe_url": "", "manage_url": "", "view_url": "", "more": 0,
    }  # fmt: skip
    return " ".join(templates.render_string(home, subject_template, **context).split())


_TOKEN = re.compile(
    "("
    + "|".join(
        map(re.escape, (NAME_TOKEN, EMAIL_TOKEN, UNSUBSCRIBE_TOKEN, VIEW_TOKEN, MANAGE_TOKEN))
    )
    + ")"
)


@dataclass(frozen=True, slots=True)
class Stencil:
    """A text cut at the stand-in tokens: each copy is then one join, where replacing the
    tokens scanned and copied the whole text once per token."""

    parts: tuple[str, ...]  # text, token, text, ..., text: the tokens at the odd places
    fixed: int  # the length of the text between the tokens

    @classmethod
    def of(cls, text: str) -> Stencil:
        parts = tuple(_TOKEN.split(text))
        return cls(parts, sum(map(len, parts[::2])))

    def fill(self, values: dict[str, str]) -> str:
        if len(self.parts) == 1:
            return self.parts[0]
        parts = list(self.parts)
        parts[1::2] = [values[token] for token in self.parts[1::2]]
        return "".join(parts)

    def length(self, values: dict[str, str]) -> int:
        """The length of ``fill(values)``, without making it."""
        return self.fixed + sum(len(values[token]) for token in self.parts[1::2])


@dataclass(frozen=True, slots=True)
class SharedDigest:
    """A digest rendered once for everyone who gets the same one, cut at the tokens that
    ``personalize`` fills in for each of them."""

    subject: Stencil
    text: Stencil
    html: Stencil
    # The HTML part as it travels when it is 7bit, with its lines that hold tokens (to
    # check their length in each copy); None when it is base64, made per copy.
    html_part: tuple[Stencil, tuple[Stencil, ...]] | None

    @classmethod
    def of(cls, subject: str, text: str, html: str, html_part: tuple[str, str]) -> SharedDigest:
        encoding, body = html_part
        wire = None
        if encoding == "7bit":
            lines = tuple(Stencil.of(line) for line in body.split("\r\n") if _TOKEN.search(line))
            wire = (Stencil.of(body), lines)
        return cls(Stencil.of(subject), Stencil.of(text), Stencil.of(html), wire)


def personalize(
    shared: SharedDigest,
    subscriber: Subscriber,
    *,
    unsubscribe_url: str,
    view_url: str,
    manage_url: str,
) -> DigestMessage:
    """One subscriber's copy of a shared digest: their name, address and links."""
    plain = {
        NAME_TOKEN: clean_name(subscriber.name),  # a template may put it in the Subject
        EMAIL_TOKEN: subscriber.email,
        UNSUBSCRIBE_TOKEN: unsubscribe_url,
        VIEW_TOKEN: view_url,
        MANAGE_TOKEN: manage_url,
    }
    escaped = {token: html_escape(value) for token, value in plain.items()}
    html_part = None
    if shared.html_part is not None:
        body, lines = shared.html_part
        wire = {
            token: " ".join(value.splitlines()).encode("ascii", "xmlcharrefreplace").decode()
            for token, value in escaped.items()
        }
        if all(v.isprintable() for v in wire.values()) and all(
            line.length(wire) <= 998 for line in lines
        ):
            html_part = ("7bit", body.fill(wire))  # else compose makes the part from the HTML
    return DigestMessage(
        subject=" ".join(shared.subject.fill(plain).split()),
        text=shared.text.fill(plain),
        html=shared.html.fill(escaped),
        html_part=html_part,
    )


@lru_cache(maxsize=1)
def inliner() -> css_inline.CSSInliner:
    # Styles move onto the elements (Gmail and Outlook drop most <style> rules); the block
    # stays too, for the dark-mode and small-screen media queries that cannot be inlined.
    return css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


def view_signature(secret: bytes, delivery_id: int) -> str:
    """The signature of a digest's web-view link: only its recipient has it."""
    mac = hmac.digest(secret, f"view:{delivery_id}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac[:18]).decode()


def compose(
    message: DigestMessage,
    *,
    identity: Identity,
    subscriber: Subscriber,
    delivery_id: int,
    sent: datetime,
    list_id: str,
    unsubscribe: str,
) -> bytes:
    """A multipart/alternative message (text first, then HTML), CRLF line ends, with the
    list headers of RFC 2369 and RFC 8058 (``unsubscribe``: List-Unsubscribe's value).
    ``Date`` is the send time, never an entry's.
    Built directly (text in base64, HTML as ``html_body`` says): the ``email`` package's objects cost milliseconds a
    message, most of a digest's time; the tests parse every kind of message back."""
    domain = list_id.removeprefix("digest.")
    digest_key = hashlib.sha256(f"{delivery_id}:{subscriber.id}".encode()).hexdigest()[:24]
    boundary = f"=_newsdrop_{digest_key}"
    headers = [
        ("Subject", _header_text(message.subject)),
        *identity.headers("digest"),
        ("To", _to_header(subscriber.name, subscriber.email)),
        ("Date", _date_header(sent)),
        ("Message-ID", f"<digest-{delivery_id}-{digest_key}@{domain}>"),
        ("List-Id", f"<{list_id}>"),
        ("List-Unsubscribe", unsubscribe),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    lines = [f"{name}: {value}" for name, value in headers]
    for subtype, (encoding, body) in (
        ("plain", ("base64", base64_lines(message.text.encode()))),
        ("html", message.html_part or html_body(message.html)),
    ):
        lines += [
            "",
            f"--{boundary}",
            f'Content-Type: text/{subtype}; charset="utf-8"',
            f"Content-Transfer-Encoding: {encoding}",
            "",
            body,
        ]
    lines += [f"--{boundary}--", ""]
    wire = "\r\n".join(lines)
    # UTF-8 only in a To header whose address's local part is not ASCII (RFC 6532: sent
    # with SMTPUTF8, which the transport asks of the relay).
    return wire.encode("ascii" if wire.isascii() else "utf-8")


def _header_text(value: str) -> str:
    """A header value as ASCII: as it is when it can be, else RFC 2047 encoded-words."""
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8", header_name="Subject").encode(linesep="\r\n")


@lru_cache(maxsize=16)  # a run sends all its messages with one Date
def _date_header(sent: datetime) -> str:
    return format_datetime(sent.astimezone(UTC))


def _to_header(name: str, email: str) -> str:
    """``Name <address>``; a name too long for one line (RFC 5322: 998 octets) as
    encoded-words folded over several. Control characters never reach it, whatever a store
    made by an older version holds."""
    name, email = clean_name(name), wire_address(email)
    if not email.isascii():  # a UTF-8 header (RFC 6532, sent with SMTPUTF8): name and all,
        # the name as a quoted string (the email package refuses such an address)
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{email}>' if name else email
    value = formataddr((name, email), charset="utf-8")
    if len(value) <= 900:
        return value
    folded = Header(name, "utf-8", header_name="To").encode(linesep="\r\n")
    return f"{folded} <{email}>"


@lru_cache(maxsize=16)
def list_id(base_url: str) -> str:
    """``digest.<host>``: the List-Id of the instance's digest."""
    return f"digest.{urlsplit(base_url).hostname or 'localhost'}"


class Composer:
    """Makes the messages of a run: each distinct digest (same entries, period, zone and
    schedule) is rendered once, then every copy is personalised and composed."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.secret = instance_secret(settings)
        self.site = Site.from_settings(settings)
        self.shared: dict[tuple[object, ...], SharedDigest] = {}
        self.dkim_key = dkim_key(settings)
        self.identity = identity_of(settings)

    def message(self, delivery: Delivery, person: Subscriber, *, sent: datetime) -> bytes:
        """The message of one delivery as it travels: CRLF, DKIM-signed when configured."""
        base = self.settings.site.base_url
        unsubscribe = f"{base}unsubscribe?token={unsubscribe_token(self.secret, person.id)}"
        view = (  # served by the service (`newsdrop run`); a preview has no delivery to show
            f"{base}digest/{delivery.id}?sig={view_signature(self.secret, delivery.id)}"
            if delivery.id
            else ""
        )
        key = (*shared_key(person, delivery.entry_ids, delivery.due), bool(view))
        shared = self.shared.get(key)
        if shared is None:
            if len(self.shared) >= 64:  # bounded: a run with many distinct digests
                self.shared.clear()
            shared = self.shared[key] = render(
                self.settings.home,
                site=self.site,
                base_url=base,
                subject_template=self.settings.digest.subject,
                subscriber=person,
                entries=self.store.entries_by_id(delivery.entry_ids),
                due=delivery.due,
                with_view=bool(view),
            )
        data = compose(
            personalize(
                shared,
                person,
                unsubscribe_url=unsubscribe,
                view_url=view,
                manage_url=manage_url(base, self.secret, person),
            ),
            identity=self.identity,
            subscriber=person,
            delivery_id=delivery.id,
            sent=sent,
            list_id=list_id(base),
            unsubscribe=list_unsubscribe(self.settings, self.secret, person.id, unsubscribe),
        )
        return signed(data, self.settings.mail, key=self.dkim_key)


def preview_message(
    settings: Settings,
    store: Store,
    person: Subscriber,
    *,
    now: datetime,
    on: datetime | None = None,
) -> bytes:
    """The digest ``person`` would get for the period now (or the one of the day ``on``),
    with what is published so far, as it would travel; nothing is sent or recorded."""
    from newsdrop.mail.schedule import next_period

    period = next_period(store, settings, person, now=now, on=on)
    preview = Delivery(
        0, person.id, period.due, period.window_start, period.due, "preview",
        period.entry_ids, 0, "", now,
    )  # fmt: skip
    return Composer(settings, store).message(preview, person, sent=now)
