"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1 with STARTTLS and AUTH.

``Sink.faults`` scripts the server's answers: each entry is used by one message,
at "RCPT" or "DATA", e.g. ("DATA", "451 4.3.0 try again later"). ``Sink.always``
answers every command of a stage ("EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA")
with its reply until it is removed, and ``Sink.greeting`` replaces the 220 greeting
(the server then hangs up), as a busy relay does.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USER, PASSWORD = "newsdrop", "s3cret-pass"


@dataclass
class Sink:
    received: list[EmailMessage] = field(default_factory=list)
    faults: list[tuple[str, str]] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)  # address -> reply at RCPT, always
    hold: float = 0.0  # seconds each message is held before the answer, as a real relay does
    always: dict[str, str] = field(default_factory=dict)  # stage -> reply, every time
    greeting: str = ""  # a reply instead of the 220 greeting, then the server hangs up
    times: list[float] = field(default_factory=list)  # time.monotonic() of each message taken
    gate: threading.Event | None = None  # when set: MAIL waits until it is open (60 s at most)
    peers: set[tuple[str, int]] = field(default_factory=set)  # connections that sent MAIL
    recipients: list[str] = field(default_factory=list)  # RCPT TO of each message taken
    contents: list[bytes] = field(default_factory=list)  # each message taken, as it came
    senders: list[str] = field(default_factory=list)  # MAIL FROM of each message taken

    def _fault(self, stage: str) -> str | None:
        if stage in self.always:
            return self.always[stage]
        if self.faults and self.faults[0][0] == stage:
            return self.faults.pop(0)[1]
        return None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        fault = self._fault("EHLO")
        if fault:
            return [fault]
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        fault = self._fault("EHLO")  # the client falls back to HELO: the same answer
        if fault:
            return fault
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.peers.add(session.peer)
        if self.gate is not None and not self.gate.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
        fault = self._fault("MAIL")
        if fault:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        fault = self._fault("AUTH")
        if fault:
            return AuthResult(success=False, handled=False, message=fault)
        return authenticate(server, session, envelope, mechanism, data)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        fault = self._fault("RCPT") or self.reject.get(address)
        if fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self._fault("DATA")
        if fault:
            return fault
        if self.hold:
            await asyncio.sleep(self.hold)
        raw = envelope.original_content
        if not raw.count(b"\r\n") == raw.count(b"\n") == raw.count(b"\r"):
            # As Gmail and Postfix have refused since the SMTP smuggling fixes of 2024.
            return "550 5.6.11 bare CR or LF in the message"
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.contents.append(envelope.content)
        self.senders.append(envelope.mail_from)
        self.recipients += envelope.rcpt_tos
        self.times.append(time.monotonic())
        return "250 2.0.0 queued"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login == USER.encode()
        and data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FaultySmtp(SMTP):
    """aiosmtpd's server, with the answers a handler hook cannot give: the greeting and
    the reply to STARTTLS."""

    def __init__(self, sink: Sink, **kwargs: Any) -> None:
        super().__init__(sink, **kwargs)
        self.sink = sink

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if self.sink.greeting and text == f"220 {self.hostname} {self.__ident__}":
            await super().push(self.sink.greeting)
            if self.transport is not None:
                self.transport.close()
            return
        await super().push(status)

    async def smtp_STARTTLS(self, arg: str) -> None:
        fault = self.sink.always.get("STARTTLS")
        if fault:
            await self.push(fault)
            return
        await super().smtp_STARTTLS(arg)


class FaultyController(Controller):
    def factory(self) -> SMTP:
        assert isinstance(self.handler, Sink)
        return FaultySmtp(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """aiosmtpd with a certificate from a test CA: STARTTLS required before AUTH."""

    def __init__(self, tmp: Path) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.cafile = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.cafile))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.context = context
        self.sink = Sink()
        self.port = free_port()
        self.controller: FaultyController | None = None
        self.smtputf8 = False  # whether it offers SMTPUTF8

    def start(self) -> None:
        """Start (again: an aiosmtpd controller cannot be restarted, so each start is new)."""
        self.controller = FaultyController(
            self.sink,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.context,
            require_starttls=True,
            authenticator=self.sink.authenticate,
            auth_require_tls=True,
            enable_SMTPUTF8=self.smtputf8,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "NEWSDROP_MAIL__TRANSPORT": "smtp",
            "NEWSDROP_MAIL__HOST": "127.0.0.1",
            "NEWSDROP_MAIL__PORT": str(self.port),
            "NEWSDROP_MAIL__SECURITY": "starttls",
            "NEWSDROP_MAIL__USERNAME": USER,
            "NEWSDROP_MAIL__CAFILE": str(self.cafile),
            "NEWSDROP_MAIL__TIMEOUT_S": "5",
            **extra,
        }
