"""Deliveries: open the periods that are due in the ledger, then send what is queued.

Every digest is a row in the ledger (``deliveries``), created before anything
is sent and marked with the transport's answer after: a run that dies in
between leaves a queued row that the next run sends. The default transport
writes into a Maildir (state/outbox/) that any mail client opens, so a fresh
install works with no mail server; ``smtp`` sends through a relay with aiosmtplib.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
import os
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path

import aiosmtplib

from newsdrop import disk, loop
from newsdrop.config import MailSettings, Settings, instance_secret
from newsdrop.errors import (
    ConfigError,
    DeliveryError,
    MessageRefusedError,
    RecipientDeferredError,
    RecipientRejectedError,
    RenderError,
    SendingPausedError,
    ServerRejectedError,
    StoreError,
    TemporaryDeliveryError,
)
from newsdrop.mail import digest, smtp_status
from newsdrop.mail.confirmations import send_confirmations
from newsdrop.model import Site, StoredEntry, Subscriber, SubscriberState
from newsdrop.store import Delivery, Period, Store, new_claimant
from newsdrop.subscribers import unsubscribe_token

log = logging.getLogger(__name__)


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
        self.context: ssl.SSLContext | None = None

    async def __aenter__(self) -> SmtpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.open:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await asyncio.wait_for(client.quit(), timeout=self.mail.timeout_s)
            client.close()  # even when QUIT failed: no socket is left to the collector
        await asyncio.sleep(0.01)  # let the loop run the transports' close callbacks

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
        comes with CRLF line ends (see ``send``), so SIZE is its length."""
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
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            raise _message_error(reply.code, reply.message, self.mail.host)
        # The message as it travels, written straight to the connection: ``client.data``
        # would rewrite every line end and dot of it with two regular expressions, the
        # largest part of a send's CPU time.
        protocol = client.protocol
        if protocol is None:  # the server hung up after its 354
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        protocol.write(_dot_stuffed(data))
        reply = await protocol.read_response(timeout=client.timeout)
        if reply.code != 250:
            if reply.code == 421:  # closing: as aiosmtplib's execute_command does
                client.close()
            raise _message_error(reply.code, reply.message, self.mail.host)
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
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if not client.is_connected:  # a 421: no use trying HELO
                        raise
                    await client.helo()
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


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA of a CRLF message: a dot doubled at the start of a line (RFC 5321 4.5.2),
    then the final dot."""
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


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


@dataclass(slots=True)
class SendReport:
    opened: list[Period] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    skipped: int = 0
    retrying: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    bounced: list[str] = field(default_factory=list)
    paused: str = ""  # why sending stopped, when the server or our account is at fault
    confirmations: list[int] = field(default_factory=list)  # subscribers sent their link
    confirmations_failed: list[tuple[int, str]] = field(default_factory=list)
    store_error: str = ""  # the store could not be written (a full disk): why
    store_full: str = ""  # where the full disk is, for pages that show no paths (state/)
    unrecorded: int = 0  # sent, but neither marked nor given back (a store that failed)

    def __repr__(self) -> str:
        # Counts only: asyncio formats the result of the task it ran (``asyncio.run``
        # checks its SIGINT handler, whose repr holds that task), and a full repr of
        # 10,000 periods was a 12 MB string, most of the peak memory of a send.
        return (
            f"SendReport(opened={len(self.opened)}, sent={len(self.sent)}, "
            f"skipped={self.skipped}, retrying={len(self.retrying)}, "
            f"failed={len(self.failed)}, bounced={len(self.bounced)}, paused={self.paused!r}, "
            f"confirmations={len(self.confirmations)})"
        )


def due_periods(
    settings: Settings, store: Store, *, now: datetime, close_now: bool = False
) -> list[Period]:
    """The period each active subscriber has due at ``now`` that the ledger lacks. One
    period spans everything since the last one, however many were missed."""
    return [
        period
        for page in due_period_pages(settings, store, now=now, close_now=close_now)
        for period in page
    ]


def due_period_pages(
    settings: Settings, store: Store, *, now: datetime, close_now: bool = False
) -> Iterator[list[Period]]:
    """``due_periods`` a page of subscribers at a time (read as the pages are consumed), so
    that opening them does not hold every subscriber in memory."""
    top = store.max_seq()  # entries published after this go to the next digests
    windows: dict[int, list[StoredEntry]] = {}  # most subscribers share one window
    seq_at = lru_cache(maxsize=4096)(store.seq_at)  # most joined at one of a few instants
    contents: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}  # one tuple, shared
    dues: dict[tuple[str, str], datetime] = {}  # by time zone and frequency
    for people in store.subscriber_pages(state=SubscriberState.ACTIVE):
        periods = []
        for person in people:
            start, low = window_start(store, person, seq_at=seq_at)
            key = (person.timezone, person.frequency)  # (what a schedule depends on)
            if key not in dues:
                dues[key] = (
                    now if close_now else digest.Schedule.of(person, settings.digest).last_due(now)
                )
            due = dues[key]
            if due <= start:
                continue  # nothing has come due since the last digest (or since they joined)
            if low not in windows:
                if len(windows) >= 64:  # bounded: a list of one-off windows
                    windows.clear()
                    contents.clear()
                windows[low] = store.published_after_seq(low, top)
            ids = contents.get((low, person.tags))
            if ids is None:
                if len(contents) >= 1024:
                    contents.clear()
                ids = tuple(s.entry.id for s in digest.wanted(person, windows[low]))
                contents[(low, person.tags)] = ids
            empty = not ids and settings.digest.skip_empty
            periods.append(
                Period(
                    subscriber_id=person.id,
                    due=due,
                    window_start=start,
                    window_end=due,
                    seq_start=low,
                    seq_end=top,
                    entry_ids=ids,
                    state="skipped" if empty else "queued",
                )
            )
        if periods:
            yield periods


def window_start(
    store: Store, person: Subscriber, *, seq_at: Callable[[datetime], int] | None = None
) -> tuple[datetime, int]:
    """Where a subscriber's next digest starts: (instant, last seq already sent or skipped).
    The end of their last period, or the moment they (re)joined: no backlog."""
    joined = person.activated or person.created
    if person.period_end is None or joined > person.period_end:
        return joined, max(person.period_seq, (seq_at or store.seq_at)(joined))
    return person.period_end, person.period_seq


def send_digests(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    close_now: bool = False,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    open_due: bool = True,
    instance: str | None = None,
) -> SendReport:
    """Open due periods in the ledger, then deliver every queued digest. ``stop`` (the
    service's shutdown) ends the run early: messages in flight finish, the rest wait.
    Without ``open_due`` (an instance that is not the leader) it only helps send.
    ``instance`` names the `newsdrop run` sending, whose claims others take over as soon
    as it is dead (see ``Store.claim_batch``)."""
    report = SendReport()
    for page in due_period_pages(settings, store, now=now, close_now=close_now) if open_due else ():
        for period in page if dry_run else store.open_periods(page, now=now):  # one transaction
            report.opened.append(period)
            report.skipped += period.state == "skipped"
    if not dry_run:
        transport = transport_for(settings, store=store)
        loop.run(
            deliver(
                settings, store, transport, now=now, report=report, stop=stop, instance=instance
            )
        )
    return report


class SentMarks:
    """Marks sent digests in the ledger a few at a time: a mark waits until ``group``
    marks are pending or ``linger`` seconds have passed, then they are committed in one
    thread call and one transaction (a thread call and a commit for every message were
    a tenth of a send's CPU time).

    A sender waits until its own mark is committed and keeps its sending slot until
    then: a run killed at any moment has at most ``pool_size`` messages sent and unmarked,
    as when each was marked alone."""

    def __init__(self, store: Store, *, now: datetime, group: int, linger: float = 0.005) -> None:
        self.store = store
        self.now = now
        self.group = group
        self.linger = linger
        self.pending: list[tuple[int, str, asyncio.Future[None]]] = []
        self.lock = asyncio.Lock()  # one commit at a time
        self.timer: asyncio.TimerHandle | None = None
        self.flushes: set[asyncio.Task[None]] = set()
        self.commits = 0

    async def mark(self, delivery_id: int, reply: str) -> None:
        done = asyncio.get_running_loop().create_future()
        self.pending.append((delivery_id, reply, done))
        if len(self.pending) >= self.group:
            self._flush_after(0.0)
        elif len(self.pending) == 1:
            self._flush_after(self.linger)
        await done

    def _flush_after(self, delay: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self.timer = None
        task = asyncio.get_running_loop().create_task(self._flush())
        self.flushes.add(task)
        task.add_done_callback(self.flushes.discard)

    async def _flush(self) -> None:
        async with self.lock:
            batch, self.pending = self.pending, []
            if not batch:
                return
            if self.timer is not None:  # this commit takes the marks it was set for
                self.timer.cancel()
                self.timer = None
            self.commits += 1
            try:
                await asyncio.to_thread(
                    self.store.finish_sent, [(d, r) for d, r, _ in batch], now=self.now
                )
            except Exception as exc:  # every sender of the group sees the store's error
                for _, _, waiter in batch:
                    waiter.set_exception(exc)
            except BaseException:
                for _, _, waiter in batch:
                    waiter.cancel()
                raise
            else:
                for _, _, waiter in batch:
                    waiter.set_result(None)


async def deliver(
    settings: Settings,
    store: Store,
    transport: Transport,
    *,
    now: datetime,
    report: SendReport,
    stop: threading.Event | None = None,
    instance: str | None = None,
) -> SendReport:
    """Send every queued confirmation mail, then every queued digest (and every retry that
    is due) through one transport:
    ``pool_size`` senders take digests from claims of about CLAIM_SECONDS of work each.
    Store calls run in threads, so the event loop never blocks."""
    composer = Composer(settings, store)
    sender = parseaddr(settings.mail.from_)[1]
    marks = SentMarks(store, now=now, group=max(1, settings.mail.pool_size // 2))
    claims = Claims(settings, store, now=now, report=report, stop=stop, instance=instance)
    streak = Streak()

    async def record(held: list[Refusal]) -> None:
        # After a store write failed, the room left is for `settle` (see Store._keep_room):
        # these claims are given back with the rest, to be tried again.
        for delivery, person, error in () if report.store_error else held:
            await asyncio.to_thread(
                record_failure, settings, store, delivery, person, error, now, report
            )

    async def one(delivery: Delivery, person: Subscriber | None) -> None:
        stopping = stop is not None and stop.is_set()
        if report.paused or stopping:  # give it back untouched: the next run sends it
            if report.store_error:  # (`settle` gives every claim back in one write)
                return
            await asyncio.to_thread(
                store.finish_delivery, delivery.id, state="queued",
                reply=report.paused or "not sent yet: the service was stopping",
                now=now, counts_as_attempt=False,
            )  # fmt: skip
            return
        if person is None or person.state is not SubscriberState.ACTIVE:
            await asyncio.to_thread(
                store.finish_delivery, delivery.id, state="cancelled", reply="no longer active", now=now
            )  # fmt: skip
            return
        try:
            data = composer.message(delivery, person, sent=now)
        except RenderError as exc:  # the templates: every digest would fail alike
            await asyncio.to_thread(
                record_failure, settings, store, delivery, person,
                SendingPausedError(str(exc)), now, report,
            )  # fmt: skip
            return
        except Exception as exc:  # an address, say: this digest, not the run
            reply = f"the message could not be made: {exc}"
            await asyncio.to_thread(
                store.finish_delivery, delivery.id, state="failed", reply=reply, now=now
            )
            report.failed.append((delivery.id, reply))
            log.error("digest %d to %s: %s", delivery.id, person.email, reply)
            return
        try:
            reply = await transport.send(sender=sender, recipient=person.email, data=data)
        except DeliveryError as exc:
            await record(streak.add((delivery, person, exc)))
            return
        await record(streak.end())
        # Marked before the sender takes its next digest, not with the claim: a run
        # killed now repeats at most what was in flight (pool_size messages).
        try:
            await marks.mark(delivery.id, reply)
        except StoreError:
            unmarked.append((delivery.id, reply))
            raise
        report.sent.append(delivery.id)
        claims.done += 1

    unmarked: list[tuple[int, str]] = []  # sent, but the mark could not be committed

    async def sender_loop() -> None:
        try:
            while (item := await claims.next()) is not None:
                await one(*item)
        except StoreError as exc:  # its disk is full, say: this sender stops, the rest too
            store_failed(report, exc)

    async with transport:
        # Confirmation mails first: someone is waiting for each, and they are few.
        await send_confirmations(
            settings, store, transport, now=now, report=report, stop=stop, instance=instance,
            dkim_key=composer.dkim_key,
        )  # fmt: skip
        await asyncio.gather(*(sender_loop() for _ in range(settings.mail.pool_size)))
    try:
        await record(streak.end())  # a streak too short to pause: recorded as it came
    except StoreError as exc:
        store_failed(report, exc)
    if report.store_error:
        await asyncio.to_thread(
            settle, store, claimant=claims.claimant, unmarked=unmarked, now=now, report=report
        )
    log.debug("%d sent, marked in %d commits", len(report.sent), marks.commits)
    return report


Refusal = tuple[Delivery, Subscriber, DeliveryError]
PAUSE_STREAK = 5  # different recipients in a row refused alike: the fault is not theirs


class Streak:
    """Refusals about our message or the relay with the same code (``DeliveryError.key``),
    in a row: held unrecorded while they last. When PAUSE_STREAK different recipients are
    refused alike, every digest would be, so they all go back queued, uncharged, and
    sending pauses; a streak that ends sooner is recorded as it came (the digests fail or
    are retried, nobody is bounced). Other outcomes pass straight through."""

    def __init__(self) -> None:
        self.key = ""
        self.held: list[Refusal] = []
        self.paused: SendingPausedError | None = None

    def add(self, refusal: Refusal) -> list[Refusal]:
        """The refusals to record now (with the errors to record them by)."""
        error = refusal[2]
        streaks = error.key and isinstance(error, MessageRefusedError | TemporaryDeliveryError)
        if not streaks or isinstance(error, RecipientDeferredError):
            return [*self.end(), refusal]
        if self.paused is not None and error.key == self.key:
            return [(refusal[0], refusal[1], self.paused)]  # still in flight at the pause
        ended = self.end() if error.key != self.key else []
        self.key = error.key
        self.held.append(refusal)
        recipients = len({person.id for _, person, _ in self.held})
        if recipients < PAUSE_STREAK:
            return ended
        self.paused = SendingPausedError(
            f"{recipients} different recipients in a row were refused with {error.reply!r}: "
            "a fault of our message, our account or the relay, not theirs; sending pauses "
            "(nobody is bounced, no digest is charged) and resumes when it is fixed",
            key=error.key,
        )
        held, self.held = self.held, []
        return [*ended, *((d, p, self.paused) for d, p, _ in held)]

    def end(self) -> list[Refusal]:
        """A different outcome came (or the run ended): the streak's refusals stand."""
        held, self.held = self.held, []
        if self.paused is None:
            self.key = ""
        return held


SETTLE_TRIES = 3  # after a store write failed: mark and give back, a second apart


def store_failed(report: SendReport, exc: StoreError) -> None:
    """The store could not record an outcome: sending pauses (no message goes out that
    could not be recorded), and the run says why."""
    if not report.store_error:
        report.store_error = str(exc)
        report.store_full = getattr(exc, "where", "")
        log.error("sending paused: %s", exc)
    report.paused = report.paused or str(exc)


def settle(
    store: Store,
    *,
    claimant: str,
    unmarked: list[tuple[int, str]],
    now: datetime,
    report: SendReport,
) -> None:
    """After a store write failed: record the digests sent whose marks failed, and give back
    every claim of this run, so that the next run neither sends those again nor waits
    [mail] claim_timeout_s for the others. What cannot be recorded is counted."""
    marked = not unmarked
    for attempt in range(SETTLE_TRIES):
        try:
            if not marked:  # (each mark counts an attempt: made once)
                store.finish_sent(unmarked, now=now)
                marked = True
                report.sent += [d for d, _ in unmarked]
            store.release_claims(claimant, reply=report.store_error, now=now)
        except StoreError:
            if attempt + 1 < SETTLE_TRIES:
                time.sleep(1.0)
            continue
        return
    if not marked:
        report.unrecorded = len(unmarked)
    log.error(
        "this run's claims could not be given back, and %d digests sent could not be "
        "recorded as sent; once the store can be written, they are taken again after "
        "[mail] claim_timeout_s (those %d sent again)",
        report.unrecorded, report.unrecorded,
    )  # fmt: skip


CLAIM_SECONDS = 0.5  # a claim holds about this much sending: the last one ends together


class Claims:
    """Deliveries for the senders, claimed from the ledger a batch at a time when the last
    one is used up. A batch is about CLAIM_SECONDS of sending at the rate so far (from
    2 x pool_size up to 200): several instances then finish a send within about that
    of each other, and a run that dies leaves few digests claimed."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        now: datetime,
        report: SendReport,
        stop: threading.Event | None,
        instance: str | None,
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.store = store
        self.now = now
        self.report = report
        self.stop = stop
        self.ready: list[tuple[Delivery, Subscriber | None]] = []
        self.lock = asyncio.Lock()  # one claim at a time
        self.exhausted = False
        self.done = 0  # digests sent so far, for the rate
        self.claimant = new_claimant()
        self.started = asyncio.get_running_loop().time()

    def size(self) -> int:
        pool = self.settings.mail.pool_size
        elapsed = asyncio.get_running_loop().time() - self.started
        if not self.done or elapsed <= 0:
            return 2 * pool
        return max(2 * pool, min(200, round(self.done / elapsed * CLAIM_SECONDS)))

    async def next(self) -> tuple[Delivery, Subscriber | None] | None:
        """The next digest to send, or None when the ledger has no more for this run (a
        pause or a stop claims no more; digests already claimed are still handed out, so
        that the sender gives them back)."""
        async with self.lock:
            halted = self.report.paused or (self.stop is not None and self.stop.is_set())
            if not self.ready and not self.exhausted and not halted:
                batch = await asyncio.to_thread(
                    self.store.claim_batch, now=self.now, limit=self.size(),
                    claim_timeout=self.settings.mail.claim_timeout_s, claimant=self.claimant,
                    instance=self.instance, lease_seconds=self.settings.cluster.lease_seconds,
                )  # fmt: skip
                people = await asyncio.to_thread(
                    self.store.subscribers_by_id, sorted({d.subscriber_id for d in batch})
                )
                self.ready = [(d, people.get(d.subscriber_id)) for d in reversed(batch)]
                self.exhausted = not batch
            return self.ready.pop() if self.ready else None


def record_failure(
    settings: Settings,
    store: Store,
    delivery: Delivery,
    person: Subscriber,
    error: DeliveryError,
    now: datetime,
    report: SendReport,
) -> None:
    """Retry later, fail, bounce, or pause: what the ledger does with a refusal."""
    if isinstance(error, SendingPausedError):
        store.finish_delivery(
            delivery.id, state="queued", reply=error.reply, now=now, counts_as_attempt=False
        )
        if not report.paused:
            report.paused = error.reply
            log.error("sending paused: %s", error.reply)
        return
    if (
        isinstance(error, TemporaryDeliveryError)
        and delivery.attempts + 1 < settings.mail.max_attempts
    ):
        backoff = settings.mail.retry_base_s * 2**delivery.attempts
        # bandit B311: this randomness spreads retries out; it protects nothing.
        wait = min(3600.0, backoff) * random.uniform(0.8, 1.2)  # nosec B311
        store.finish_delivery(
            delivery.id, state="retrying", reply=error.reply, now=now,
            next_attempt=now + timedelta(seconds=wait),
        )  # fmt: skip
        report.retrying.append((delivery.id, error.reply))
        log.warning("digest %d to %s will be retried: %s", delivery.id, person.email, error.reply)
        return
    theirs = isinstance(error, RecipientRejectedError | RecipientDeferredError)
    store.finish_delivery(
        delivery.id, state="failed", reply=error.reply, now=now, recipient_fault=theirs
    )
    report.failed.append((delivery.id, error.reply))
    log.error("digest %d to %s failed: %s", delivery.id, person.email, error.reply)
    if theirs and store.recent_failures(person.id) >= 3:
        store.set_subscriber_state(person.id, SubscriberState.BOUNCED, now=now)
        report.bounced.append(person.email)
        log.warning("%s bounced: three digests in a row were refused", person.email)


def dkim_key(settings: Settings) -> bytes:
    """The DKIM private key (empty when signing is off), read and tried on a sample once:
    a missing or broken key is a ConfigError naming the setting, before any digest."""
    mail = settings.mail
    if not mail.dkim_selector:
        return b""
    path = settings.home / mail.dkim_key_file
    setting = f"{settings.source}: [mail] dkim_key_file = {mail.dkim_key_file!r}"
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot read {path} ({exc.strerror}); point it at the PEM private key "
            f"whose public half is published at {mail.dkim_selector}._domainkey.{mail.dkim_domain}"
        ) from exc
    problem = _dkim_key_problem(key, mail.dkim_selector, mail.dkim_domain)
    if problem:
        raise ConfigError(
            f"{setting}: {path} is not a usable PEM private key ({problem}); make one with "
            "openssl genrsa -out dkim.pem 2048"
        )
    return key


@lru_cache(maxsize=4)
def _dkim_key_problem(key: bytes, selector: str, domain: str) -> str:
    """What signing a sample with this key says is wrong, or "" (an RSA signature costs
    milliseconds, and the service composes a Composer at every digest wake-up)."""
    try:
        digest.dkim_sign(
            b"From: a@example.org\r\nSubject: a sample\r\n\r\nA sample.\r\n",
            selector=selector, domain=domain, key=key,
        )  # fmt: skip
    except Exception as exc:  # dkimpy's errors vary by what is wrong with the file
        return str(exc) or exc.__class__.__name__
    return ""


class Composer:
    """Makes the messages of a run: each distinct digest (same entries, period, zone and
    schedule) is rendered once, then every copy is personalised and composed."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.secret = instance_secret(settings)
        self.site = Site.from_settings(settings)
        self.shared: dict[tuple[object, ...], digest.SharedDigest] = {}
        self.dkim_key = dkim_key(settings)

    def message(self, delivery: Delivery, person: Subscriber, *, sent: datetime) -> bytes:
        """The message of one delivery as it travels: CRLF, DKIM-signed when configured."""
        base = self.settings.site.base_url
        unsubscribe = f"{base}unsubscribe?token={unsubscribe_token(self.secret, person.id)}"
        view = (  # served by the service (`newsdrop run`); a preview has no delivery to show
            f"{base}digest/{delivery.id}?sig={digest.view_signature(self.secret, delivery.id)}"
            if delivery.id
            else ""
        )
        key = (*digest.shared_key(person, delivery.entry_ids, delivery.due), bool(view))
        shared = self.shared.get(key)
        if shared is None:
            if len(self.shared) >= 64:  # bounded: a run with many distinct digests
                self.shared.clear()
            shared = self.shared[key] = digest.render(
                self.settings.home,
                site=self.site,
                base_url=base,
                subject_template=self.settings.digest.subject,
                subscriber=person,
                entries=self.store.entries_by_id(delivery.entry_ids),
                due=delivery.due,
                with_view=bool(view),
            )
        data = digest.compose(
            digest.personalize(shared, person, unsubscribe_url=unsubscribe, view_url=view),
            sender=self.settings.mail.from_,
            subscriber=person,
            delivery_id=delivery.id,
            sent=sent,
            list_id=digest.list_id(base),
            unsubscribe_url=unsubscribe,
        )
        return digest.signed(data, self.settings.mail, key=self.dkim_key)
