"""What newsdrop.mail.smtp_wire relies on in aiosmtplib beyond its public API (``SMTP.protocol``,
and that protocol's ``write`` and ``read_response``): the version bound in pyproject.toml, the
names and signatures it uses, and the behaviour they make together against a real server (the
tests' aiosmtpd, with STARTTLS and AUTH): a message arrives byte for byte, leading dots and
8-bit octets included, and each reply is paired with its own message. When an upgrade of
aiosmtplib changes any of it, this file fails before a digest goes astray. The last test sends
through the real SmtpTransport: dots, an SMTPUTF8 recipient and 8-bit text, byte for byte."""

from __future__ import annotations

import asyncio
import inspect
import ssl
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from smtpd import PASSWORD, USER, Sink, SmtpServer
from typing import Any

import aiosmtplib
import pytest
from aiosmtplib.protocol import SMTPProtocol
from packaging.requirements import Requirement
from packaging.version import Version

from newsdrop.config import MailSettings
from newsdrop.mail import smtp_wire
from newsdrop.mail.transports import SmtpTransport, gone

ROOT = Path(__file__).resolve().parents[2]

# Every line start the dot-stuffing has to get right, and 8-bit octets (UTF-8 in a header
# and the body, as SMTPUTF8 allows), all with CRLF line ends, as the messages travel.
MESSAGE = (
    "From: Вісник <news@example.org>\r\n"
    "To: <ünï@exämple.org>\r\n"
    "Subject: Новини дня ✉\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    ".a line that starts with a dot\r\n"
    ".\r\n"
    "..\r\n"
    "...three\r\n"
    " . not at the start\r\n"
    "Привіт, світ: eight-bit octets as they are\r\n"
    "\r\n"
    ".\r\n"
).encode()


@dataclass
class RawSink(Sink):
    """The tests' sink, keeping the bytes of each message taken and its envelope."""

    raw: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            self.raw.append(envelope.original_content)
            self.envelopes.append(
                (envelope.mail_from, list(envelope.rcpt_tos), list(envelope.mail_options))
            )
        return reply


class Utf8SmtpServer(SmtpServer):
    """The tests' server (STARTTLS required, AUTH), offering SMTPUTF8 too."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.sink: RawSink = RawSink()
        self.smtputf8 = True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Utf8SmtpServer]:
    running = Utf8SmtpServer(tmp_path)
    running.start()
    yield running
    running.stop()


def test_aiosmtplib_is_bounded_below_the_next_major_version_and_the_installed_one_is_inside() -> (
    None
):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pin = next(r for r in map(Requirement, project["dependencies"]) if r.name == "aiosmtplib")
    installed = Version(version("aiosmtplib"))
    uppers = [Version(spec.version) for spec in pin.specifier if spec.operator == "<"]
    assert uppers, f"{pin}: smtp_wire reaches into aiosmtplib, so it needs an upper bound"
    assert max(uppers) <= Version(str(installed.major + 1)), (str(pin), str(installed))
    assert installed in pin.specifier, (str(installed), str(pin))


def test_the_attributes_and_signatures_smtp_wire_relies_on_are_there() -> None:
    def parameters(function: Any) -> list[str]:
        return list(inspect.signature(function).parameters)

    assert parameters(SMTPProtocol.write) == ["self", "data"]
    assert parameters(SMTPProtocol.read_response) == ["self", "timeout"]
    assert inspect.signature(SMTPProtocol.read_response).parameters["timeout"].default is None
    assert inspect.iscoroutinefunction(SMTPProtocol.read_response)
    execute = inspect.signature(aiosmtplib.SMTP.execute_command).parameters
    assert execute["args"].kind is inspect.Parameter.VAR_POSITIONAL and "timeout" in execute
    assert inspect.iscoroutinefunction(aiosmtplib.SMTP.execute_command)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=25, timeout=7.0)
    assert client.protocol is None and client.timeout == 7.0  # not connected: no protocol
    response = aiosmtplib.SMTPResponse(250, "queued")
    assert (response.code, response.message) == (250, "queued")
    error = aiosmtplib.SMTPDataError(451, "later")
    assert (error.code, error.message) == (451, "later")


async def _connected(server: Utf8SmtpServer) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=server.port,
        timeout=5,
        start_tls=True,
        tls_context=ssl.create_default_context(cafile=str(server.cafile)),
    )
    await client.connect()
    await client.login(USER, PASSWORD)
    assert isinstance(client.protocol, SMTPProtocol)  # what smtp_wire writes to
    return client


async def _envelope(client: aiosmtplib.SMTP, recipient: str) -> None:
    options = [b"SMTPUTF8"] if not recipient.isascii() else []
    reply = await client.execute_command(b"MAIL", b"FROM:<news@example.org>", *options)
    assert reply.code == 250, reply
    reply = await client.execute_command(b"RCPT", b"TO:<%s>" % recipient.encode())
    assert reply.code == 250, reply


def test_a_message_sent_through_the_reach_arrives_byte_for_byte(server: Utf8SmtpServer) -> None:
    first_line_dot = b".starts the message\r\nthen\r\n.\r\n"

    async def scenario() -> list[aiosmtplib.SMTPResponse]:
        client = await _connected(server)
        replies = []
        for recipient, message in [("ünï@exämple.org", MESSAGE), ("a@example.org", first_line_dot)]:
            await _envelope(client, recipient)
            replies.append(await smtp_wire.data(client, message))
        connection = client.protocol
        await client.quit()
        await gone([connection], within=5)
        return replies

    replies = asyncio.run(scenario())
    assert [(r.code, r.message) for r in replies] == [(250, "2.0.0 queued")] * 2
    assert server.sink.raw == [MESSAGE, first_line_dot]


def test_each_reply_is_paired_with_its_own_message_refused_or_not(server: Utf8SmtpServer) -> None:
    """A refusal at DATA (no RCPT: aiosmtpd's 503), one after the message, a 421 after it:
    SMTPDataError with the reply's code, as ``client.data`` raises it, and the connection
    carries the next message with the next reply, nothing left over or lost."""
    server.sink.faults = [("DATA", "550 5.7.1 refused by policy")]

    async def scenario() -> list[tuple[int, str]]:
        client = await _connected(server)
        seen = []
        assert (await client.execute_command(b"MAIL", b"FROM:<news@example.org>")).code == 250
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp_wire.data(client, MESSAGE)  # no recipient yet
        seen.append((refused.value.code, refused.value.message))
        await client.rset()
        for _ in range(2):
            await _envelope(client, "a@example.org")
            try:
                reply = await smtp_wire.data(client, MESSAGE)
            except aiosmtplib.SMTPDataError as exc:
                seen.append((exc.code, exc.message))
                await client.rset()
            else:
                seen.append((reply.code, reply.message))
        server.sink.faults = [("DATA", "421 4.3.2 closing")]
        await _envelope(client, "a@example.org")
        with pytest.raises(aiosmtplib.SMTPDataError) as closing:
            await smtp_wire.data(client, MESSAGE)
        seen.append((closing.value.code, closing.value.message))
        connection = client.protocol
        client.close()
        await gone([connection], within=5)  # the TLS close, done before the loop ends
        return seen

    assert asyncio.run(scenario()) == [
        (503, "Error: need RCPT command"),
        (550, "5.7.1 refused by policy"),
        (250, "2.0.0 queued"),
        (421, "4.3.2 closing"),
    ]
    assert server.sink.raw == [MESSAGE]


def test_smtp_transport_delivers_dots_smtputf8_and_8bit_byte_for_byte(
    server: Utf8SmtpServer,
) -> None:
    """Through the real SmtpTransport (STARTTLS, AUTH, SIZE, SMTPUTF8 for a non-ASCII
    recipient, one pooled connection for both messages): what arrives is what was given."""
    mail = MailSettings.model_validate(
        {
            "transport": "smtp",
            "from": "news@example.org",
            "host": "127.0.0.1",
            "port": server.port,
            "security": "starttls",
            "username": USER,
            "cafile": str(server.cafile),
            "timeout_s": 5,
            "pool_size": 1,
            "rate_per_second": 1000,
        }
    )
    second = b".first line\r\n..\r\nbody\r\n"

    async def scenario() -> list[str]:
        async with SmtpTransport(mail, password=PASSWORD) as transport:
            return [
                await transport.send(sender="news@example.org", recipient=to, data=data)
                for to, data in [("ünï@exämple.org", MESSAGE), ("ann@example.org", second)]
            ]

    assert asyncio.run(scenario()) == ["2.0.0 queued"] * 2
    assert server.sink.raw == [MESSAGE, second]
    (sender, to, options), (_, to_ann, options_ann) = server.sink.envelopes
    assert sender == "news@example.org" and to == ["ünï@exämple.org"]
    assert options == [f"SIZE={len(MESSAGE)}", "SMTPUTF8"]
    assert to_ann == ["ann@example.org"] and options_ann == [f"SIZE={len(second)}"]
    assert len(server.sink.peers) == 1  # one connection, reused
