"""The chaos run's mail relay: the tests' aiosmtpd server (tests/smtpd.py) on bad days.

`ChaoticSink` answers DATA at random (421, 451, 550, a dropped connection) and, when
told to, 421 to every MAIL FROM or a 552 5.3.4 to the next message. aiosmtpd has no hook
for its greeting, so `BusyGreeter` takes the relay's port for a while and answers every
connection `421 4.3.2` there, as a relay out of connection slots does. `Relay` owns the
port: the real server, an outage and a busy greeting take turns under one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import smtplib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from smtpd import PASSWORD, USER, Sink, SmtpServer
from typing import Any

BUSY = "421 4.3.2 too many connections, try again later"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"


class ChaoticSink(Sink):
    """Random answers at DATA (unless ``calm``), 421 at MAIL FROM while ``mail_busy``, and
    ``fail_next`` (a reply) given once, to the next message."""

    def __init__(self, rng: random.Random, *, random_faults: bool) -> None:
        super().__init__()
        self.rng = rng
        self.calm = not random_faults
        self.mail_busy = False
        self.fail_next: str | None = None
        self.replies: Counter[str] = Counter()
        self.refused: list[tuple[float, str, list[str]]] = []  # (when, reply, recipients)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.mail_busy:
            self.replies["421 at MAIL FROM"] += 1
            # 421 closes the channel (RFC 5321 3.8): the reply goes out first, then the close.
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
            return BUSY
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_next is not None:
            reply, self.fail_next = self.fail_next, None
            self.replies[reply[:9] + " at DATA"] += 1
            self.refused.append((time.time(), reply, list(envelope.rcpt_tos)))
            return reply
        roll = self.rng.random()
        if not self.calm and roll < 0.04:
            self.replies["421"] += 1
            return "421 4.3.2 service shutting down, try later"
        if not self.calm and roll < 0.08:
            self.replies["451"] += 1
            return "451 4.3.0 temporary failure"
        if not self.calm and roll < 0.10:
            self.replies["550"] += 1
            return "550 5.1.1 mailbox unavailable"
        if not self.calm and roll < 0.13:
            self.replies["dropped"] += 1
            server.transport.abort()  # the connection dies in the middle of DATA
            return "451 4.4.2 lost"
        self.replies["250"] += 1
        return await super().handle_DATA(server, session, envelope)


class BusyGreeter:
    """A listener on the relay's port that greets every connection with a 421 and closes."""

    def __init__(self, port: int, replies: Counter[str]) -> None:
        self.port = port
        self.replies = replies
        self.stopping = threading.Event()
        self.listener: socket.socket | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        assert self.listener is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(f"{BUSY}\r\n".encode())
            self.replies["421 at greeting"] += 1
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(2)  # let the client's QUIT arrive, so that the close is clean
            while conn.recv(1024):
                pass

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        if self.listener is not None:
            self.listener.close()
        self.listener = self.thread = None


class Relay:
    """The SMTP server the service sends to, and its outages."""

    def __init__(self, workdir: Path, rng: random.Random, *, random_faults: bool) -> None:
        self.smtp = SmtpServer(workdir)
        self.sink = ChaoticSink(rng, random_faults=random_faults)
        self.smtp.sink = self.sink
        self.greeter = BusyGreeter(self.smtp.port, self.sink.replies)
        self.lock = threading.Lock()  # one of: the server, an outage, a busy greeting
        self.outages = 0
        self.own_checks: Counter[str] = Counter()  # 421s given to check_421, not the service

    def check_421(self, where: str) -> str:
        """Connect as a client would and return the reply at ``where`` ("greeting" or
        "MAIL FROM"): proof that the fault is on, whoever else connects. Tried up to three
        times. At MAIL FROM it holds the relay's lock, so that no outage begins meanwhile
        (the busy greeting already holds it: nothing else listens on the port then)."""
        if where == "MAIL FROM":
            with self.lock:
                return self._check_421(where)
        return self._check_421(where)

    def _check_421(self, where: str) -> str:
        for _ in range(3):
            reply = self._reply_at_mail()
            if reply.startswith("421"):
                self.own_checks[where] += 1
            if not reply.startswith("no reply"):
                return reply
            time.sleep(1)
        return reply

    def _reply_at_mail(self) -> str:
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp.port, timeout=5) as client:
                client.starttls(context=ssl.create_default_context(cafile=self.smtp.cafile))
                client.login(USER, PASSWORD)
                code, text = client.mail("chaos-check@example.org")
                return f"{code} {text.decode(errors='replace')}"
        except smtplib.SMTPConnectError as exc:
            return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
        except (OSError, smtplib.SMTPException) as exc:
            return f"no reply: {exc!r}"

    def env(self) -> dict[str, str]:
        return self.smtp.env()

    def start(self) -> None:
        self.smtp.start()

    def stop(self) -> None:
        self.greeter.stop()
        self.smtp.stop()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Nothing listens on the relay's port meanwhile."""
        with self.lock:
            self.smtp.stop()
            try:
                yield
            finally:
                self.smtp.start()

    @contextlib.contextmanager
    def busy_greeting(self) -> Iterator[None]:
        """Every connection is greeted with a 421 meanwhile."""
        with self.down():
            self.greeter.start()
            try:
                yield
            finally:
                self.greeter.stop()
