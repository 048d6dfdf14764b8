"""Where messages go: a Maildir outbox or an SMTP relay, with one send(sender, recipient, data)
-> reply over the wire bytes, paced by one rate for the whole store."""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import os
import ssl
import time
from collections import deque
from pathlib import Path

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from newsdrop import disk
from newsdrop.config import MailSettings, Settings
from newsdrop.errors import (
    DeliveryError,
    MessageRefusedError,
    RecipientDeferredError,
    RecipientRejectedError,
    SendingPausedError,
    ServerRejectedError,
    TemporaryDeliveryError,
)
from newsdrop.mail import smtp_status, smtp_wire
from newsdrop.store import Store


class MaildirTransport:
    """Delivers into a Maildir: written to tmp/, then renamed into new/ (by ``mailbox``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.box: mailbox.Maildir | None = None  # made on first use: a full disk pauses

    async def __aenter__(self) -> MaildirTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, *, sender: str, recipient: str, data: bytes) -> str:
        # A full disk is every message's fault: a pause, not an attempt charged to each.
        # The store is on this disk by default, so writing stops while RESERVE_BYTES are
        # still free, for the sent marks of what was written (no message written twice).
        if disk.is_full(self.path):
            raise SendingPausedError(disk.full_folder(self.path))
        try:
            key = await asyncio.to_thread(self._add, data)
        except OSError as exc:
            if disk.is_disk_full(exc):
                raise SendingPausedError(disk.full_folder(self.path)) from exc
            raise TemporaryDeliveryError(f"cannot write to the Maildir: {exc.strerror}") from exc
        return f"stored in the Maildir as {key}"

    def _add(self, data: bytes) -> str:
        if self.box is None:
            for sub in ("tmp", "new", "cur"):  # (``mailbox`` makes them only with the folder)
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            self.box = mailbox.Maildir(self.path, create=True)
        return self.box.add(data)


class StoreRate:
    """``[mail] rate_per_second`` for the whole store, whichever processes send: send slots
    are taken from the store's token bucket (``Store.take_send_slots``) a few at a time, a
    tenth of a second of sending per round trip, and each message waits for its slot."""

    def __init__(self, store: Store, *, rate: float) -> None:
        self.store = store
        self.gap = 1.0 / rate
        self.batch = max(1, min(50, round(rate * 0.1)))
        self.slots: deque[float] = deque()  # instants on this process's monotonic clock
        self.lock = asyncio.Lock()

    async def turn(self) -> None:
        async with self.lock:
            if not self.slots:
                wait = await asyncio.to_thread(
                    self.store.take_send_slots, self.batch, gap=self.gap, now=time.time()
                )
                first = time.monotonic() + wait  # (late by the round trip: never early)
                self.slots.extend(first + i * self.gap for i in range(self.batch))
            slot = self.slots.popleft()
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class SmtpTransport:
    """SMTP with aiosmtplib: ``pool_size`` connections, each reused for many messages, no
    more than ``rate_per_second`` messages a second (for the whole store with a
    ``StoreRate``, else for this transport), a timeout on every command.

    Replies are sorted for the ledger: a 4xx or 5xx at the greeting, EHLO, STARTTLS, AUTH
    or MAIL FROM, and a 421 anywhere, is about the server or our account, which no
    recipient should pay for (sending pauses); replies at RCPT and DATA are classified
    by ``smtp_status``; a lost connection is temporary.
    """

    def __init__(
        self, mail: MailSettings, *, password: str | None, rate: StoreRate | None = None
    ) -> None:
        self.mail = mail
        self.password = password
        self.rate = rate
        self.idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self.slots = asyncio.Semaphore(mail.pool_size)
        self.gap = 1.0 / mail.rate_per_second
        self.next_start = 0.0
        self.pace = asyncio.Lock()
        self.open: list[aiosmtplib.SMTP] = []
        self.connections: list[SMTPProtocol] = []  # every one made: waited for at the end
        self.context: ssl.SSLContext | None = None
        self.offers_smtputf8: bool | None = None  # as the relay's EHLO said (None: not yet)

    async def __aenter__(self) -> SmtpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.open:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await asyncio.wait_for(client.quit(), timeout=self.mail.timeout_s)
            client.close()  # even when QUIT failed
        await gone(self.connections, within=min(self.mail.timeout_s, 2.0))

    async def send(self, *, sender: str, recipient: str, data: bytes) -> str:
        """Send one message, ``data`` as it travels: CRLF line ends only, ending in one (as
        ``Composer`` and ``confirmation_message`` make them; checking again here cost a
        twentieth of a digest's CPU time). The server's reply, or a DeliveryError."""
        async with self.slots:
            await self._wait_for_turn()
            client = await self._client()
            try:
                reply = await self._transaction(client, sender, recipient, data)
            except SendingPausedError:  # a 421 closed the connection; the run stops anyway
                await self._discard(client)
                raise
            except DeliveryError:
                await self._reset(client)
                raise
            except (aiosmtplib.SMTPException, OSError) as exc:  # lost connection, timeout
                await self._discard(client)
                raise TemporaryDeliveryError(f"{exc.__class__.__name__}: {exc}") from exc
            self._release(client)
            return reply

    async def _transaction(
        self, client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes
    ) -> str:
        """MAIL, RCPT and DATA for one recipient, with replies sorted. aiosmtplib's
        ``sendmail`` parses both addresses twice and rewrites the line ends of the whole
        message twice (one pass for SIZE); ours are checked once here, and the message
        comes with CRLF line ends (see ``send``), so SIZE is its length. MAIL and RCPT go
        through the public ``execute_command`` with the addresses as given: ``client.mail``
        and ``client.rcpt`` run them through ``email.utils.parseaddr``, which changes some
        (``a,b@example.org`` becomes ``<a>``, ``a(b)@example.org`` ``<a@example.org>``)."""
        options = [b"SIZE=%d" % len(data)] if client.supports_extension("size") else []
        mail_from, rcpt_to = _envelope_address(sender), _envelope_address(recipient)
        if mail_from is None:
            raise ServerRejectedError(f"[mail] from {sender!r} cannot be used in MAIL FROM")
        if rcpt_to is None:
            raise RecipientRejectedError(f"{recipient!r} cannot be used in RCPT TO")
        if not rcpt_to.isascii():
            if not client.supports_extension("smtputf8"):
                raise RecipientRejectedError(
                    f"{self.mail.host} does not offer SMTPUTF8, which {recipient} needs"
                )
            options.append(b"SMTPUTF8")
        reply = await client.execute_command(b"MAIL", b"FROM:" + mail_from, *options)
        if reply.code != 250:
            raise _session_error(reply.code, reply.message, f"{self.mail.host} at MAIL FROM")
        reply = await client.execute_command(b"RCPT", b"TO:" + rcpt_to)
        if reply.code not in (250, 251):
            raise _message_error(reply.code, reply.message, self.mail.host)
        try:  # DATA, then the message as it travels (see smtp_wire: why not ``client.data``)
            reply = await smtp_wire.data(client, data)
        except aiosmtplib.SMTPDataError as exc:  # at DATA or after the message
            if exc.code == 421:  # closing: as aiosmtplib's execute_command does
                client.close()
            raise _message_error(exc.code, exc.message, self.mail.host) from exc
        return reply.message

    async def _wait_for_turn(self) -> None:
        if self.rate is not None:
            await self.rate.turn()
            return
        async with self.pace:
            now = asyncio.get_running_loop().time()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.gap
        if delay > 0:
            await asyncio.sleep(delay)

    async def _client(self) -> aiosmtplib.SMTP:
        while not self.idle.empty():
            client = self.idle.get_nowait()
            if client.is_connected:
                return client
        return await self._connect()

    async def probe(self, envelope: tuple[str, str] | None = None) -> bool:
        """Connect (TLS and login as configured) and say whether the relay offers SMTPUTF8;
        a DeliveryError when it cannot be reached or refuses us. With an ``envelope``
        (sender, recipient), MAIL FROM and RCPT TO are tried too, then RSET: nothing is
        sent, and a refusal of either is a DeliveryError with the relay's words."""
        client = await self._connect()
        try:
            if envelope is not None:
                sender, recipient = envelope
                reply = await client.execute_command(b"MAIL", f"FROM:<{sender}>".encode())
                if reply.code != 250:
                    raise _session_error(
                        reply.code, reply.message, f"{self.mail.host} at MAIL FROM"
                    )
                reply = await client.execute_command(b"RCPT", f"TO:<{recipient}>".encode())
                if reply.code not in (250, 251):
                    raise _session_error(reply.code, reply.message, f"{self.mail.host} at RCPT TO")
                await client.rset()
        finally:
            await self._discard(client)
        return bool(self.offers_smtputf8)

    async def _open(self) -> aiosmtplib.SMTP:
        mail = self.mail
        if self.context is None and mail.security != "none":  # made once: it reads the CA store
            self.context = ssl.create_default_context(cafile=mail.cafile or None)
        context = self.context
        client = aiosmtplib.SMTP(
            hostname=mail.host,
            port=mail.port,
            timeout=mail.timeout_s,
            use_tls=mail.security == "tls",
            start_tls=mail.security == "starttls",  # never None: "none" means no upgrade
            tls_context=context if mail.security != "none" else None,
        )
        try:
            await client.connect()
            if client.protocol is not None:
                self.connections.append(client.protocol)
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not client.is_connected:  # a 421: no use trying HELO
                        raise
                    await client.helo()
            self.offers_smtputf8 = client.supports_extension("smtputf8")
            if mail.username:
                await client.login(mail.username, self.password or "")
        except BaseException:
            client.close()  # never leave a half-open connection to the garbage collector
            raise
        self.open.append(client)
        return client

    async def _connect(self) -> aiosmtplib.SMTP:
        """A new connection (TLS as configured, logged in), with failures sorted."""
        mail = self.mail
        try:
            return await self._open()
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code < 500:
                raise _session_error(
                    exc.code, exc.message, f"{mail.host}:{mail.port} at AUTH"
                ) from exc
            raise ServerRejectedError(
                f"{mail.host}:{mail.port} refused the login of {mail.username}: {exc.code} "
                f"{exc.message}; check [mail] username and the password in ${mail.password_env}"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:  # greeting, EHLO, STARTTLS
            raise _session_error(exc.code, exc.message, f"{mail.host}:{mail.port}") from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            # Down or out of reach: no digest's fault, so none is charged an attempt (an
            # outage of a day would otherwise fail a day's digests); sending resumes later.
            raise SendingPausedError(
                f"cannot connect to {mail.host}:{mail.port} ({exc.__class__.__name__}: {exc}); "
                "sending resumes when it answers: check [mail] host and port"
            ) from exc
        except aiosmtplib.SMTPException as exc:  # it lacks what [mail] asks for: AUTH, TLS
            raise ServerRejectedError(
                f"{mail.host}:{mail.port}: {exc}; check [mail] security and username"
            ) from exc

    def _release(self, client: aiosmtplib.SMTP) -> None:
        self.idle.put_nowait(client)

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """After a refusal: RSET, so the connection can carry the next message."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._discard(client)
        else:
            self._release(client)

    async def _discard(self, client: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            client.close()
        if client in self.open:
            self.open.remove(client)


CLOSE_POLL_SECONDS = 0.005


async def gone(connections: list[SMTPProtocol], *, within: float) -> None:
    """Wait, at most ``within`` seconds, until each closed connection is gone (its protocol
    saw ``connection_lost``). A TLS connection goes only after the close_notify exchange; a
    loop that ended first would leave its socket to the garbage collector (a ResourceWarning),
    and uvloop refuses to close with it still open."""
    for _ in range(max(1, int(within / CLOSE_POLL_SECONDS))):
        await asyncio.sleep(CLOSE_POLL_SECONDS)  # at least one turn: the close callbacks
        if all(connection.transport is None for connection in connections):
            return


def _session_error(code: int, message: str, where: str) -> DeliveryError:
    """A refusal of the session (greeting, EHLO, STARTTLS, AUTH, MAIL FROM): every digest
    would meet it, so none pays for it. A 4xx is a busy server: sending resumes later."""
    reply = f"{code} {message}"
    if 400 <= code < 500:
        return SendingPausedError(
            f"{where}: {reply}; the server is busy or unavailable for now: sending pauses "
            "and resumes when it accepts mail again",
            key=reply,
        )
    return ServerRejectedError(f"{where}: {reply}", key=reply)


def _message_error(code: int, message: str, host: str) -> DeliveryError:
    """A refusal at RCPT or DATA, by ``smtp_status``'s table; a 421 (the server closes the
    connection) and a refusal to relay are about the server or our account, not this
    digest."""
    reply = f"{code} {message}"
    if code == 421:
        return _session_error(code, message, host)
    if not 400 <= code < 600:  # nonsense from the server: try again later
        return TemporaryDeliveryError(reply)
    status = smtp_status.classify(code, message)
    if smtp_status.refuses_relaying(code, message):
        return ServerRejectedError(reply, key=status.key)  # our account, not the recipient
    error: type[DeliveryError]
    if status.fault is smtp_status.Fault.RECIPIENT:
        error = RecipientRejectedError if status.permanent else RecipientDeferredError
    else:
        error = MessageRefusedError if status.permanent else TemporaryDeliveryError
    return error(reply, key=status.key)


_UNSAFE_IN_ADDRESS = frozenset("<> ")


def _envelope_address(address: str) -> bytes | None:
    """``<address>`` for MAIL FROM or RCPT TO, or None for one that could smuggle another
    command or parameter (subscribers' addresses are validated when they are added)."""
    if not address or not address.isprintable() or not _UNSAFE_IN_ADDRESS.isdisjoint(address):
        return None
    return f"<{address}>".encode()


Transport = MaildirTransport | SmtpTransport


def transport_for(settings: Settings, *, store: Store | None = None) -> Transport:
    """The configured transport; with ``store``, SMTP keeps to the rate of the whole store."""
    mail = settings.mail
    if mail.transport == "smtp":
        if mail.cafile:  # relative to the home, as every path in the settings
            mail = mail.model_copy(update={"cafile": str(settings.home / mail.cafile)})
        rate = None if store is None else StoreRate(store, rate=mail.rate_per_second)
        return SmtpTransport(mail, password=os.environ.get(mail.password_env), rate=rate)
    return MaildirTransport(settings.state_dir / "outbox")
