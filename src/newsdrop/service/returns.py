"""Returned mail reaching `newsdrop run`: an SMTP listener on ``[bounces] listen`` (aiosmtpd,
on the service's own event loop), to which the operator's MTA relays the bounce domain, and
the drain of ``[bounces] maildir``, a Maildir an MTA delivers returned mail to. Each message
is kept in the store before the listener answers 250 (or before its file leaves the
Maildir); one task then acts on what was kept (mail/bounces.py), so a crash loses none and
acts on none twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP
from limits import parse as parse_rate
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from newsdrop.config import Settings
from newsdrop.errors import ConfigError, UsageError
from newsdrop.mail.bounces import admissible, handle_kept, take_maildir
from newsdrop.service.base import ServiceBase, log_failure
from newsdrop.store import Store

log = logging.getLogger("newsdrop.service")

RETURNS = "returned mail"  # the work the shutdown knows of

SESSION_TIMEOUT_S = 30  # an idle SMTP client is dropped after this
DRAIN_SECONDS = 10.0  # the Maildir is looked at (and leftovers of a crash acted on) this often
# Acting waits for a lull in what the listener takes (its thread would slow the listener's
# answers, the interpreter being one), but never longer than this.
LULL_SECONDS, MOST_DEFERRED_SECONDS = 0.25, 5.0


class ReturnsHandler:
    """aiosmtpd's handler: recipients at the bounce domain only, a message size cap
    (aiosmtpd's ``data_size_limit``), a rate per client, and each message kept before the
    250 that lets the sending MTA forget it."""

    def __init__(self, settings: Settings, store: Store, kept: Callable[[], None]) -> None:
        self.settings = settings
        self.store = store
        self.kept = kept
        self.domain = settings.bounces.domain
        self.limit = parse_rate(settings.bounces.limit_per_client)
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self.keeper = Keeper(store)

    async def handle_RCPT(  # (the names are aiosmtpd's)
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower() != self.domain or len(address) > 254:
            return f"550 5.7.1 <{address[:254]}>: this server takes mail for {self.domain} only"
        if envelope.rcpt_tos:  # a returned message names one of ours; the MTA sends the rest
            return "452 4.5.3 one recipient per message; send the others separately"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        client = str(session.peer[0]) if session.peer else "unknown"
        if not self.limiter.hit(self.limit, client):
            return f"451 4.7.1 too many messages from {client}; try again later"
        data = envelope.original_content or envelope.content
        try:
            admissible(self.settings, data)
            await self.keeper.keep([(data, recipient) for recipient in envelope.rcpt_tos])
        except UsageError as exc:
            return f"552 5.3.4 {exc}"
        except Exception as exc:  # the store's trouble (or a bug): a 4xx, so the MTA keeps it
            log_failure(f"returned mail from {client} could not be kept", exc)
            return "451 4.3.0 the message could not be kept; try again later"
        self.kept()
        return "250 2.0.0 kept"


class Keeper:
    """Keeps what the listener takes in batches: the messages that arrive while a batch is
    being written go into the next one, one transaction each, instead of a commit apiece."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.waiting: list[tuple[list[tuple[bytes, str]], asyncio.Future[None]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def keep(self, messages: list[tuple[bytes, str]]) -> None:
        """Return once these (data, envelope recipient) are kept; a StoreError if not."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((messages, done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            messages = [message for group, _ in batch for message in group]
            try:
                await asyncio.to_thread(
                    self.store.store_returned_many, messages, now=datetime.now(UTC)
                )
            except Exception as exc:  # each sender hears of it: a 451, and it tries again
                for _, done in batch:
                    if not done.done():  # (a sender that hung up meanwhile is gone)
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


async def listen_for_returns(
    settings: Settings, store: Store, kept: Callable[[], None]
) -> asyncio.Server:
    """The listener on ``[bounces] listen``; a ConfigError when it cannot listen there."""
    host, port = settings.bounces.listen_address()
    handler = ReturnsHandler(settings, store, kept)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line per command

    def session() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=settings.bounces.max_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.bounces.domain,
            ident="newsdrop",
            timeout=SESSION_TIMEOUT_S,
        )

    try:
        return await asyncio.get_running_loop().create_server(session, host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen for returned mail on {settings.bounces.listen}: "
            f"{exc.strerror or exc}; another program may be using that port: change "
            f"[bounces] listen in {settings.source}"
        ) from None


class ReturnsJobs(ServiceBase):
    """The service's part in returned mail: the listener and the one task that acts."""

    returns_kept: asyncio.Event
    last_kept: float  # monotonic: when the listener last kept a message
    returns_server: asyncio.Server | None = None

    async def start_returns(self) -> list[asyncio.Task[None]]:
        """Start listening and draining, as configured; the tasks to cancel at the end."""
        bounces = self.settings.bounces
        if not bounces.domain:
            return []
        self.returns_kept = asyncio.Event()
        if bounces.maildir and not (self.settings.home / bounces.maildir / "new").is_dir():
            raise ConfigError(
                f"[bounces] maildir: {self.settings.home / bounces.maildir} is not a Maildir "
                f"(it has no new/ folder); create it or fix the setting in {self.settings.source}"
            )
        self.last_kept = 0.0
        if bounces.listen:
            self.returns_server = await listen_for_returns(self.settings, self.store, self.kept_one)
            self.status["bounces"] = bounces.listen
        return [asyncio.create_task(self.drain_returns())]

    def kept_one(self) -> None:
        self.last_kept = time.monotonic()
        self.returns_kept.set()

    async def drain_returns(self) -> None:
        """Act on what a crash left at once, then on kept messages whenever the listener
        kept one, and every DRAIN_SECONDS take the Maildir's."""
        while not self.stopping.is_set():
            self.returns_kept.clear()
            steps = [take_maildir] if self.settings.bounces.maildir else []
            for step in [*steps, handle_kept]:  # each on its own: one failing stops not the other
                try:
                    now = datetime.now(UTC)
                    await self.work(RETURNS, step, self.settings, self.store, now=now)
                except Exception as exc:  # the store is down, say: the next round tries again
                    log_failure(f"returned mail ({step.__name__})", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.returns_kept.wait(), timeout=DRAIN_SECONDS)
            for _ in range(int(MOST_DEFERRED_SECONDS / LULL_SECONDS)):
                if time.monotonic() - self.last_kept >= LULL_SECONDS:
                    break
                await asyncio.sleep(LULL_SECONDS)

    def stop_returns(self) -> None:
        if self.returns_server is not None:
            self.returns_server.close()
