"""The finished digest message: inlined CSS, size limit, 72 columns, web view, spam score."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest

from dkim_keys import new_dkim_key
from newsdrop.config import Settings, instance_secret, load_settings
from newsdrop.ingest.run import ingest
from newsdrop.mail.compose import Composer, view_signature
from newsdrop.mail.deliver import send_digests
from newsdrop.model import SubscriberState
from newsdrop.store import Delivery, Store
from newsdrop.subscribers import new_subscriber

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WORDS = "The council met on Tuesday evening to discuss the new budget for the coming year, "


def digest_of(home: Path, store: Store, count: int, *, summary_words: int = 30) -> EmailMessage:
    for number in range(count):
        summary = (WORDS * 10)[: summary_words * 6].rsplit(" ", 1)[0] + "."
        (home / "seeds" / f"{number:03d}.md").write_text(
            f"---\ntitle: Story number {number} about the town budget\nsummary: {summary}\n---\nBody.\n"
        )
    settings = load_settings(home)
    ingest(settings, store, now=T)
    (person,), _ = store.add_subscribers(
        [new_subscriber("ann@example.org", name="Ann", timezone="UTC")],
        now=T,
        state=SubscriberState.ACTIVE,
    )
    ids = tuple(s.entry.id for s in store.entries())
    delivery = Delivery(
        7, person.id, T + timedelta(days=1), T, T + timedelta(days=1), "queued", ids, 0, "", T
    )
    data = Composer(settings, store).message(delivery, person, sent=T + timedelta(days=1))
    return message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def test_html_has_inlined_css_and_a_signed_web_view(home: Path, store: Store) -> None:
    message = digest_of(home, store, 3)
    html = message.get_body(("html",)).get_content()
    assert re.search(r'<a class="title" [^>]*style="[^"]*font-size: 18px', html)  # inlined
    assert "prefers-color-scheme: dark" in html  # the media query stays in <style>
    signature = view_signature(instance_secret(load_settings(home)), 7)
    view = f"http://127.0.0.1:8080/digest/7?sig={signature}"
    assert view in html and view in message.get_body(("plain",)).get_content()


def test_text_part_fits_72_columns(home: Path, store: Store) -> None:
    text = digest_of(home, store, 5).get_body(("plain",)).get_content()
    long_lines = [line for line in text.splitlines() if len(line) > 72 and "http" not in line]
    assert long_lines == []


def test_a_long_digest_stays_under_100_kb_and_links_the_rest(home: Path, store: Store) -> None:
    message = digest_of(home, store, 400, summary_words=45)
    size = len(bytes(message))
    html = message.get_body(("html",)).get_content()
    assert size < 100_000, size
    assert re.search(r"\d+ more stories in the full digest", html)
    assert html.rstrip().endswith("</html>") and "unsubscribe</a>" in html  # nothing clipped


@pytest.mark.skipif(
    shutil.which("spamassassin") is None, reason="spamassassin is not installed (CI installs it)"
)
def test_spamassassin_local_rules_score_a_digest_low(home: Path, store: Store) -> None:
    message = digest_of(home, store, 6)
    result = subprocess.run(
        ["spamassassin", "-L", "-t"], input=bytes(message), capture_output=True, timeout=120
    )
    report = result.stdout.decode(errors="replace")
    status = re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)[^\n]*(?:\n\s+[^\n]*)*", report)
    assert status, report[:2000]
    score = float(status.group(1))
    fired = status.group(0)
    for rule in ("MISSING_DATE", "MISSING_MID", "MIME_HTML_ONLY", "SUBJ_ALL_CAPS", "DATE_IN_PAST",
                 "HTML_IMAGE_ONLY", "MPART_ALT_DIFF"):  # fmt: skip
        assert rule not in fired, fired
    print(f"SpamAssassin: {fired}")
    assert score <= 0, fired


def signing(home: Path) -> tuple[Settings, bytes]:
    """Settings that DKIM-sign with a new key in state/dkim.pem, and the DNS TXT record
    that publishes its public half."""
    public = new_dkim_key(home / "state" / "dkim.pem")
    settings = load_settings(
        home,
        environ={
            "NEWSDROP_MAIL__DKIM_SELECTOR": "news",
            "NEWSDROP_MAIL__DKIM_DOMAIN": "example.org",
            "NEWSDROP_MAIL__DKIM_KEY_FILE": "state/dkim.pem",
        },
    )
    return settings, f"v=DKIM1; k=rsa; p={public}".encode()


def test_a_confirmation_mail_is_dkim_signed_as_digests_are(home: Path, store: Store) -> None:
    """Before, only digests were signed: the first mail a new subscriber gets (the one a
    receiver knows least) went out unsigned."""
    import dkim

    settings, record = signing(home)
    (person,), _ = store.add_subscribers(
        [new_subscriber("new@example.org", timezone="UTC")], now=T, state=SubscriberState.PENDING
    )
    assert store.queue_confirmation(person.id, now=T)
    report = send_digests(settings, store, now=datetime.now(UTC))
    assert report.confirmations == [person.id]
    (data,) = [p.read_bytes() for p in (home / "state" / "outbox" / "new").iterdir()]
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)


def test_dkim_signature_covers_the_list_headers_and_verifies(home: Path, store: Store) -> None:
    import dkim

    settings, record = signing(home)
    digest_of(home, store, 2)
    person = store.subscriber("ann@example.org")
    assert person is not None
    ids = tuple(s.entry.id for s in store.entries())
    delivery = Delivery(7, person.id, T, T, T, "queued", ids, 0, "", T)
    data = Composer(settings, store).message(delivery, person, sent=T)
    assert data.startswith(b"DKIM-Signature:")
    signed = message_from_bytes(data, policy=policy.default)["DKIM-Signature"]
    covered = re.search(r"h=([^;]+)", "".join(str(signed).split())).group(1).lower().split(":")  # type: ignore[union-attr]
    for header in (
        "from",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert header in covered
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)
    tampered = data.replace(b"\r\nSubject: newsdrop", b"\r\nSubject: Newsdrop")
    assert tampered != data
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)


def test_the_html_part_travels_as_7bit_lines_of_at_most_998_octets_or_as_base64() -> None:
    from html import unescape

    from newsdrop.mail.mime import html_body

    def same(a: str, b: str) -> bool:  # equal as HTML: line breaks are white space
        return " ".join(unescape(a).split()) == " ".join(unescape(b).split())

    page = (
        "<html><body>\n"
        + "<p>The council met on Tuesday to discuss a £5m budget — and more.</p>\n" * 400
        + "</body></html>\n"
    )
    encoding, body = html_body(page)
    lines = body.split("\r\n")
    assert encoding == "7bit" and body.isascii() and "\n" not in body.replace("\r\n", "")
    assert max(map(len, lines)) <= 998 and len(lines) <= len(body) // 800 + 1 and same(body, page)
    for fallback in (
        "<pre>\n  two spaces\n</pre>",  # white space counts
        "<style>p::before { content: '→'; }</style><p>é</p>",  # no references in CSS
        "<p>" + "x" * 2000 + "</p>",  # no space to break at
        "<p>Привіт, світ, привіт, світ</p>",  # references would outgrow base64
        "<p>bell\x07</p>",  # not 7bit text
    ):
        assert html_body(fallback)[0] == "base64", fallback


def test_smtp_data_is_dot_stuffed() -> None:
    from newsdrop.mail.smtp_wire import dot_stuffed

    assert dot_stuffed(b".a\r\n.\r\nb\r\n") == b"..a\r\n..\r\nb\r\n.\r\n"


def test_copies_of_one_rendered_digest_carry_each_subscribers_own_name_and_links(
    home: Path, store: Store
) -> None:
    """One digest is rendered once and filled in per copy: each copy holds its own name
    (escaped in HTML, never read as another stand-in), and a name too long for a 7bit
    line sends that copy's HTML as base64."""
    from html import unescape

    from newsdrop.mail.compose import EMAIL_TOKEN
    from newsdrop.subscribers import unsubscribe_token

    (home / "seeds" / "a.md").write_text("---\ntitle: Budget night\n---\nThe council met.\n")
    settings = load_settings(home)
    ingest(settings, store, now=T)
    names = ["Ann", "Борис <b>&amp;</b>", f"Eve {EMAIL_TOKEN}", "Ж" * 200]
    people, _ = store.add_subscribers(
        [
            new_subscriber(f"p{n}@example.org", name=name, timezone="UTC")
            for n, name in enumerate(names)
        ],
        now=T,
        state=SubscriberState.ACTIVE,
    )
    # A name longer than new_subscriber allows, as a store of an older version may hold.
    people.append(replace(people[0], id=people[0].id, name="Long " + "y" * 1200))
    ids = tuple(s.entry.id for s in store.entries())
    composer, secret = Composer(settings, store), instance_secret(settings)
    encodings = []
    for number, person in enumerate(people, start=1):
        due = T + timedelta(days=1)
        delivery = Delivery(number, person.id, due, T, due, "queued", ids, 0, "", T)
        data = composer.message(delivery, person, sent=due)
        assert max(map(len, data.split(b"\r\n"))) <= 998 and data.endswith(b"\r\n")
        assert data.count(b"\r\n") == data.count(b"\n") == data.count(b"\r")  # as SMTP wants
        message = message_from_bytes(data, policy=policy.default)
        html_part = message.get_body(("html",))
        html, text = html_part.get_content(), message.get_body(("plain",)).get_content()
        assert f"for {person.name}" in unescape(html) and "<b>&amp;</b>" not in html
        assert f"Hello {person.name}," in text
        to = str(make_header(decode_header(raw_to(data))))
        assert person.name in to and to.endswith(f" <{person.email}>")
        assert f"unsubscribe?token={unsubscribe_token(secret, person.id)}" in html
        assert f"/digest/{number}?sig={view_signature(secret, number)}" in text
        encodings.append(html_part["Content-Transfer-Encoding"])
    assert encodings == ["7bit", "7bit", "7bit", "base64", "base64"]
    assert len(composer.shared) == 1  # rendered once for all


def raw_to(data: bytes) -> str:
    """The To header as it travels, unfolded (Python's parser puts a space between
    adjacent encoded-words, where RFC 2047 says to drop the white space)."""
    header = re.search(rb"^To: (.*?)\r\n(?! )", data, re.S | re.M)
    assert header is not None
    return header.group(1).decode("ascii").replace("\r\n ", " ")
