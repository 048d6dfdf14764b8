"""The store's engine: connections, transactions, migrations, disk-full errors and store-wide locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from newsdrop import disk
from newsdrop.errors import StoreError, StoreFullError
from newsdrop.store.migrations import MIGRATIONS
from newsdrop.store.schema import (
    schema_version,
)

log = logging.getLogger(__name__)

ROOM_BYTES = 1024 * 1024  # kept beside a SQLite store for the writes after its disk fills


class StoreBase:
    """The engine and its transactions: opening, migrating, disk-full errors, store-wide locks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        # Room kept beside a SQLite file, given up when its disk fills (see _keep_room).
        self.room = Path(f"{database}-room") if database and database != ":memory:" else None

    @classmethod
    def open(cls, url: str) -> Self:
        """Connect, create the folder of a SQLite file, and migrate to the latest schema."""
        try:
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            store = cls(engine)
            store.migrate()
            store._keep_room()
        except ModuleNotFoundError as exc:
            raise StoreError(
                f"the store at {redact(url)} needs the Python package {exc.name}, which is not "
                "installed; for PostgreSQL install newsdrop[postgres] (pip install 'newsdrop[postgres]')"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot open the store at {redact(url)}: {exc.strerror} ({exc.filename}); "
                "check [store] url and that its folder is writable"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store at {redact(url)}: {exc.__class__.__name__}: "
                f"{str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}; "
                "check [store] url and that the database is reachable and writable"
            ) from exc
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            full = self._disk_full(exc)
            if full is not None:  # one clear error instead of OperationalError, everywhere
                self._give_room()
                raise full from exc
            raise

    def _keep_room(self) -> None:
        """Keep ROOM_BYTES allocated beside a SQLite file while its disk has space. When
        the disk fills, the first write that fails gives them up, so that the writes that
        settle a run (the sent marks of messages already out, claims given back) still
        fit: a full disk then sends nothing twice and leaves nothing claimed."""
        if self.room is None or self.room.exists():
            return
        folder = self.room.parent
        if disk.is_full(folder, reserve=disk.RESERVE_BYTES + ROOM_BYTES):
            return
        try:
            with self.room.open("wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, ROOM_BYTES)
        except OSError:  # a file system without fallocate: no room kept, no harm
            with contextlib.suppress(OSError):
                self.room.unlink()

    def _give_room(self) -> None:
        if self.room is not None:
            with contextlib.suppress(OSError):
                self.room.unlink()

    def _disk_full(self, exc: SQLAlchemyError) -> StoreFullError | None:
        """A StoreFullError naming the place, when ``exc`` is the store's disk being full."""
        orig = getattr(exc, "orig", None)
        if self.engine.dialect.name == "postgresql":
            if getattr(orig, "sqlstate", None) != "53100":  # disk_full
                return None
            return StoreFullError(
                f"the PostgreSQL server at {redact(str(self.engine.url))} cannot write: its "
                "disk is full; free space on the database server: nothing is lost, what was "
                "not recorded is done on the next run",
                where="the database server",
            )
        code = getattr(orig, "sqlite_errorcode", None)
        database = self.engine.url.database
        if code is None or not database or database == ":memory:":
            return None
        folder = Path(database).resolve().parent
        # SQLITE_FULL, or an I/O error (a WAL that cannot grow) on a disk without room.
        if code & 0xFF != 13 and not (code & 0xFF == 10 and disk.is_full(folder, reserve=1 << 16)):
            return None
        return StoreFullError(
            f"the store {database} cannot be written: {disk.full_folder(folder)}",
            where=f"{folder.name}/",
        )

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the store-wide lock ``name`` for the block: one holder at a time among all
        the processes and machines on this store (a PostgreSQL advisory lock; on SQLite, an
        flock beside the database file). It goes with its holder's connection or process,
        however that ends; a holder that must wait says so."""
        if self.engine.dialect.name == "postgresql":
            digest = hashlib.blake2b(f"newsdrop:{name}".encode(), digest_size=8).digest()
            key = {"key": int.from_bytes(digest, "big", signed=True)}
            with self.engine.connect() as conn:
                if not conn.scalar(sa.text("select pg_try_advisory_lock(:key)"), key):
                    log.warning("waiting for another %s of this store to finish", name)
                    conn.execute(sa.text("select pg_advisory_lock(:key)"), key)
                conn.commit()  # the lock is the session's: no transaction stays open
                try:
                    yield
                finally:
                    conn.execute(sa.text("select pg_advisory_unlock(:key)"), key)
                    conn.commit()
            return
        database = self.engine.url.database
        if not database or database == ":memory:":  # one process's own database
            yield
            return
        with open(f"{database}-{name}.lock", "a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("waiting for another %s of this store to finish", name)
                fcntl.flock(held, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        with self.begin() as conn:
            schema_version.create(conn, checkfirst=True)
            current = conn.scalar(sa.select(sa.func.max(schema_version.c.version))) or 0
        if current > len(MIGRATIONS):
            raise StoreError(
                f"the store has schema version {current}, newer than this newsdrop knows "
                f"({len(MIGRATIONS)}); upgrade newsdrop"
            )
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.begin() as conn:
                step(conn)
                conn.execute(
                    schema_version.insert().values(version=version, applied=datetime.now(UTC))
                )
            log.info("store migrated to schema version %d", version)
        return len(MIGRATIONS)

    def ping(self) -> None:
        """Raise StoreError unless the store answers a query (readiness)."""
        try:
            with self.begin() as conn:
                conn.scalar(sa.select(1))
        except SQLAlchemyError as exc:
            raise StoreError(f"the store does not answer: {exc.__class__.__name__}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL makes NORMAL crash-safe
    cursor.execute("PRAGMA busy_timeout=10000")  # `digest send` from cron while `run` is up
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
