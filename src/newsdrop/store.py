"""The store: SQLAlchemy Core tables and queries. SQLite by default (WAL, one file).

Nothing here is SQLite-only except the connection pragmas, so a
``postgresql+psycopg://`` URL is a configuration change. The schema is
versioned: ``MIGRATIONS`` is an ordered list, and ``Store.open`` applies the
ones a database has not seen yet, in one transaction each. (Alembic would be
the tool for branching histories; one linear list of Core DDL steps is all this
project needs, and keeps start-up free of a migration environment.)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from newsdrop import disk
from newsdrop.errors import StoreError, StoreFullError
from newsdrop.model import (
    Entry,
    Problem,
    StoredEntry,
    Subscriber,
    SubscriberState,
    paragraph_hash,
    slugify,
)
from newsdrop.subscribers import NewSubscriber

log = logging.getLogger(__name__)

ROOM_BYTES = 1024 * 1024  # kept beside a SQLite store for the writes after its disk fills


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite, the text SQLAlchemy's DATETIME stores ("2026-01-02 03:04:05.000006", UTC)
    # is made and read here directly: its own formatting and ``replace`` were a fifth of
    # the CPU time of a claim of digests. (Always with microseconds: the text is compared.)

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store; pass an aware one")
            return _sqlite_time(value.astimezone(UTC))

        return process

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value + "+00:00")

        return process


@lru_cache(maxsize=1024)  # a write of many rows binds the same few instants in each
def _sqlite_time(value: datetime) -> str:
    """The text of a UTC instant. (Keyed in UTC: two local times of one zone that differ
    only in ``fold``, an hour apart, compare and hash as equal.)"""
    return value.isoformat(" ", "microseconds")[:26]


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", UTCDateTime, nullable=False),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.String(400), primary_key=True),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),
    # Not unique: a withdrawn entry keeps the path its file had, which a new file may take.
    sa.Column("source", sa.String(1000), nullable=False, index=True),
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("file_mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("file_hash", sa.String(64), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content_html", sa.Text, nullable=False),
    sa.Column("content_text", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("lang", sa.String(35), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array
    sa.Column("media", sa.Text, nullable=False),  # JSON array
    sa.Column("word_count", sa.Integer, nullable=False),
    sa.Column("reading_minutes", sa.Integer, nullable=False),
    sa.Column("last_paragraph", sa.Text, nullable=False),
    sa.Column("published", UTCDateTime, nullable=False, index=True),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False, index=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False, default=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    # Publication: seq orders entries as first published (archive pages are seq ranges);
    # both are set once, when the entry first becomes visible, and never change.
    sa.Column("seq", sa.Integer, nullable=True, unique=True),
    sa.Column("first_published", UTCDateTime, nullable=True, index=True),
    # The store revision of the last change to this row: what a build has not seen yet.
    sa.Column("rev", sa.Integer, nullable=False, default=0, index=True),
)

# Tags of live entries by slug, with the entry's seq, so that a tag feed is one walk down an
# index that stops after max_entries rows, however old and common the tag is.
entry_tags = sa.Table(
    "entry_tags",
    metadata,
    sa.Column("entry_id", sa.String(400), primary_key=True),
    sa.Column("tag_slug", sa.String(120), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=True),
    sa.Index("ix_entry_tags_slug_seq", "tag_slug", "seq"),
)

# What the last feed build published of each entry (owned by build.py): when an
# entry changes, the tag feeds and day pages it used to be on are rebuilt too.
built_entries = sa.Table(
    "built_entries",
    metadata,
    sa.Column("entry_id", sa.String(400), primary_key=True),
    sa.Column("tag_slugs", sa.Text, nullable=False),  # JSON array
    sa.Column("day", sa.String(10), nullable=False, index=True),  # YYYY-MM-DD, site's zone
    sa.Column("slug", sa.String(120), nullable=False),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)


def _problems_v1(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "problems",
        meta,
        sa.Column("source", sa.String(1000), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("file_mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("seen", UTCDateTime, nullable=False),
    )


problems = _problems_v1(metadata)
# What judged the file (migration 6): its sha256, and the fingerprint of the code and settings
# that found it wanting; "" for a problem that is looked at again on every run.
problems.append_column(sa.Column("file_hash", sa.String(64), nullable=False, server_default=""))
problems.append_column(sa.Column("judged", sa.String(64), nullable=False, server_default=""))

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("finished", UTCDateTime, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),  # JSON counts
)

# The last paragraph of each document's current version, to learn boilerplate that ends
# many different bodies: one row per document, so edits of one file count once.
tails = sa.Table(
    "tails",
    metadata,
    sa.Column("source", sa.String(1000), primary_key=True),
    sa.Column("paragraph_hash", sa.String(64), nullable=False, index=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
)


subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("frequency", sa.String(10), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    sa.Column("activated", UTCDateTime, nullable=True),
    # The subscriber's latest period (kept with the ledger row, in one transaction), so that
    # finding what is due costs one read of this table, however long the ledger grows.
    sa.Column("period_end", UTCDateTime, nullable=True),
    sa.Column("period_seq", sa.Integer, nullable=False, default=0),
)


# The ledger: one row per subscriber and period, created before anything is sent.
def _deliveries_v2(meta: sa.MetaData) -> sa.Table:
    """The ledger as schema version 2 made it (later versions add columns below)."""
    return sa.Table(
        "deliveries",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("due", UTCDateTime, nullable=False),  # the period's name: its due instant
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("window_end", UTCDateTime, nullable=False),
        # What the digest holds: the entries with seq in (seq_start, seq_end]. Seqs are given
        # when entries are committed, so no entry falls between two digests, however a long
        # ingest and a send interleave.
        sa.Column("seq_start", sa.Integer, nullable=False),
        sa.Column("seq_end", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False, index=True),
        sa.Column("entry_ids", sa.Text, nullable=False),  # JSON: the contents, frozen at creation
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt", UTCDateTime, nullable=True),  # when a retrying one is due again
        sa.Column("reply", sa.Text, nullable=False, default=""),
        sa.Column("claim", sa.String(32), nullable=True, index=True),  # the run sending it
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("changed", UTCDateTime, nullable=False),
        sa.UniqueConstraint("subscriber_id", "due", name="uq_deliveries_period"),
        # Two runs that read the same last period can record only one next period.
        sa.UniqueConstraint("subscriber_id", "window_start", name="uq_deliveries_follows"),
    )


deliveries = _deliveries_v2(metadata)
# Version 4: the `newsdrop run` instance that claimed a digest being sent, so that its
# claims move on as soon as it is known dead, not after [mail] claim_timeout_s.
deliveries.append_column(sa.Column("claimed_by", sa.String(200), nullable=True))
# Version 8: a failure the recipient's address caused (a 5xx at RCPT, a full mailbox to
# the last try), which alone counts toward bouncing it; our message's or the relay's don't.
deliveries.append_column(
    sa.Column(
        "recipient_fault", sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
)


# Work shared by several `newsdrop run` instances on one store: a lease names the one
# instance that does a kind of work until it expires; instances report themselves.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("taken", UTCDateTime, nullable=False),  # when this holder took it
    sa.Column("expires", UTCDateTime, nullable=False),
)
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("seen", UTCDateTime, nullable=False),
    sa.Column("stopped", UTCDateTime, nullable=True),
)


# Version 5: confirmation mails (double opt-in), kept until sent so that none is lost to a
# relay that is down. A table of its own rather than a kind of `deliveries` row: a ledger
# row is a period (unique per subscriber and due instant, with a window and seqs, counted
# by the bounce rule and `digest status`), and every digest query would need a filter.
# One row per subscriber (the key), so a pending address has at most one mail queued.
def _confirmations_v7(meta: sa.MetaData) -> sa.Table:
    """Confirmation mails as schema version 7 made them (later versions add columns)."""
    return sa.Table(
        "confirmations",
        meta,
        sa.Column("subscriber_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(12), nullable=False, index=True),  # as deliveries.state
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt", UTCDateTime, nullable=True),
        sa.Column("reply", sa.Text, nullable=False, default=""),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("requested", UTCDateTime, nullable=False),  # the subscribe request it answers
        sa.Column("changed", UTCDateTime, nullable=False),
        sa.Column("sent", UTCDateTime, nullable=True),  # its link's validity counts from here
    )


confirmations = _confirmations_v7(metadata)
# Version 9: the instance that claimed it, as deliveries.claimed_by (version 4).
confirmations.append_column(sa.Column("claimed_by", sa.String(200), nullable=True))


# The sending rate of the whole store, whichever processes send: a token bucket kept as
# the instant its next token is free (one row per bucket; "mail" for digests).
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("next_free", sa.Float, nullable=False),  # seconds since the epoch
)


def _migration_1(conn: Connection) -> None:
    # The tables as they are at schema version 1. A later change to a table adds a
    # migration (ALTER ...) and freezes the version-1 definition here.
    for table in (entries, ingest_runs, tails, entry_tags, built_entries, counters):
        table.create(conn)
    _problems_v1(sa.MetaData()).create(conn)
    conn.execute(
        counters.insert(),
        [
            {"name": name, "value": 0}
            for name in ("revision", "seq", "built_revision", "archive_pages")
        ],
    )


def _migration_2(conn: Connection) -> None:
    subscribers.create(conn)
    _deliveries_v2(sa.MetaData()).create(conn)


def _migration_3(conn: Connection) -> None:
    leases.create(conn)
    instances.create(conn)


def _migration_4(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN claimed_by VARCHAR(200)"))


def _migration_5(conn: Connection) -> None:
    rate_buckets.create(conn)
    conn.execute(rate_buckets.insert().values(name="mail", next_free=0.0))


def _migration_6(conn: Connection) -> None:
    # Problems of older versions have no fingerprint: each is judged again once.
    for column in ("file_hash", "judged"):
        conn.execute(
            sa.text(f"ALTER TABLE problems ADD COLUMN {column} VARCHAR(64) NOT NULL DEFAULT ''")
        )


def _migration_7(conn: Connection) -> None:
    # Pending subscribers from before this version get no mail queued: whether theirs went
    # out is unknown, and a repeat subscribe queues one.
    _confirmations_v7(sa.MetaData()).create(conn)


def _migration_8(conn: Connection) -> None:
    # Older failures are not known to be the recipient's: none counts toward bouncing.
    conn.execute(
        sa.text("ALTER TABLE deliveries ADD COLUMN recipient_fault BOOLEAN NOT NULL DEFAULT FALSE")
    )


def _migration_9(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE confirmations ADD COLUMN claimed_by VARCHAR(200)"))


MIGRATIONS: Sequence[Callable[[Connection], None]] = (
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
    _migration_8,
    _migration_9,
)


@dataclass(frozen=True, slots=True)
class FileState:
    """What the store knows of a file in seeds/: enough to skip it when unchanged."""

    entry_id: str | None  # None for a file that is a problem
    size: int
    mtime_ns: int
    file_hash: str
    withdrawn: bool
    judged: str = ""  # a problem's: what found it wanting ("": look again every run)


@dataclass(frozen=True, slots=True)
class ProblemWrite:
    """A problem as recorded: the file's stat and hash, and what judged it (see FileState)."""

    problem: Problem
    size: int
    mtime_ns: int
    file_hash: str = ""
    judged: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """The lasting facts of an entry that an edit of its file keeps."""

    id: str
    slug: str
    content_hash: str
    updated: datetime
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One entry to insert or update, with the file it came from."""

    entry: Entry
    source: str
    size: int
    mtime_ns: int
    file_hash: str
    first_seen: datetime


class Store:
    """All reads and writes of the database. Blocking: the service calls it from threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        # Room kept beside a SQLite file, given up when its disk fills (see _keep_room).
        self.room = Path(f"{database}-room") if database and database != ":memory:" else None

    @classmethod
    def open(cls, url: str) -> Store:
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
                f"the store at {_redact(url)} needs the Python package {exc.name}, which is not "
                "installed; for PostgreSQL install newsdrop[postgres] (pip install 'newsdrop[postgres]')"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot open the store at {_redact(url)}: {exc.strerror} ({exc.filename}); "
                "check [store] url and that its folder is writable"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot open the store at {_redact(url)}: {exc.__class__.__name__}: "
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
                f"the PostgreSQL server at {_redact(str(self.engine.url))} cannot write: its "
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

    # --- files and entries -------------------------------------------------------------

    def file_states(self) -> dict[str, FileState]:
        """Every known source file: entries (live and withdrawn) and problems."""
        states: dict[str, FileState] = {}
        with self.begin() as conn:
            for row in conn.execute(
                sa.select(
                    problems.c.source,
                    problems.c.file_size,
                    problems.c.file_mtime_ns,
                    problems.c.file_hash,
                    problems.c.judged,
                )
            ):
                states[row.source] = FileState(
                    None, row.file_size, row.file_mtime_ns, row.file_hash, False, row.judged
                )
            for known in conn.execute(
                sa.select(
                    entries.c.id,
                    entries.c.source,
                    entries.c.file_size,
                    entries.c.file_mtime_ns,
                    entries.c.file_hash,
                    entries.c.withdrawn,
                ).order_by(entries.c.withdrawn.desc())  # live entries last: they win
            ):
                states[known.source] = FileState(
                    known.id, known.file_size, known.file_mtime_ns, known.file_hash, known.withdrawn
                )
        return states

    def entry_identity(self, source: str) -> Identity | None:
        """What an edit of this file must keep: the id, slug and first-seen time."""
        with self.begin() as conn:
            row = conn.execute(
                sa.select(
                    entries.c.id,
                    entries.c.slug,
                    entries.c.content_hash,
                    entries.c.updated,
                    entries.c.first_seen,
                )
                .where(entries.c.source == source)
                .order_by(entries.c.withdrawn, entries.c.changed.desc())
            ).first()
        if row is None:
            return None
        return Identity(row.id, row.slug, row.content_hash, row.updated, row.first_seen)

    def entry_media(self, source: str) -> tuple[str, ...]:
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(entries.c.media).where(
                    entries.c.source == source, entries.c.withdrawn.is_(False)
                )
            )
        return tuple(json.loads(value or "[]"))

    def mark_changed(self, source: str, *, now: datetime) -> None:
        """Give the live entry of a file a new revision: the next build redoes its files."""
        with self.begin() as conn:
            revision = _bump(conn, "revision")
            conn.execute(
                entries.update()
                .where(entries.c.source == source, entries.c.withdrawn.is_(False))
                .values(rev=revision, changed=now)
            )

    def has_entry_id(self, entry_id: str) -> bool:
        with self.begin() as conn:
            return conn.scalar(sa.select(entries.c.id).where(entries.c.id == entry_id)) is not None

    def taken_slugs(self) -> set[str]:
        with self.begin() as conn:
            return set(conn.scalars(sa.select(entries.c.slug)))

    def write_entries(self, writes: Sequence[EntryWrite], *, now: datetime) -> None:
        """Insert new entries and update existing ones (matched by id), in one transaction."""
        if not writes:
            return
        with self.begin() as conn:
            existing = set()
            for chunk in _chunks([w.entry.id for w in writes], 500):
                existing |= set(
                    conn.scalars(sa.select(entries.c.id).where(entries.c.id.in_(chunk)))
                )
            revision = _bump(conn, "revision")
            rows = [{**_entry_row(w, now), "rev": revision} for w in writes]
            inserts = [r for r in rows if r["id"] not in existing]
            updates = [r for r in rows if r["id"] in existing]
            # A source or slug may move between entries in one batch (a rename); free them first.
            sources = [r["source"] for r in rows]
            for chunk in _chunks(sources, 500):
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))
            if inserts:
                conn.execute(entries.insert(), inserts)
            _retag(conn, [(w.entry.id, w.entry.tags) for w in writes])
            for row in updates:
                conn.execute(
                    entries.update()
                    .where(entries.c.id == row["id"])
                    .values({k: v for k, v in row.items() if k not in ("id", "first_seen")})
                )
            tail_rows = {
                w.source: {
                    "source": w.source,
                    "paragraph_hash": paragraph_hash(w.entry.last_paragraph),
                    "body_hash": w.entry.content_hash,
                }
                for w in writes
                if w.entry.last_paragraph
            }
            for chunk in _chunks(sources, 500):
                conn.execute(tails.delete().where(tails.c.source.in_(chunk)))
            if tail_rows:
                conn.execute(tails.insert(), list(tail_rows.values()))

    def withdraw(self, sources: Iterable[str], *, now: datetime) -> int:
        """Mark the entries of vanished files withdrawn; they stay in the store."""
        count = 0
        sources = list(sources)
        if not sources:
            return 0
        with self.begin() as conn:
            revision = _bump(conn, "revision")
            for chunk in _chunks(sources, 500):
                leaving = sa.select(entries.c.id).where(
                    entries.c.source.in_(chunk), entries.c.withdrawn.is_(False)
                )
                conn.execute(entry_tags.delete().where(entry_tags.c.entry_id.in_(leaving)))
                result = conn.execute(
                    entries.update()
                    .where(entries.c.source.in_(chunk), entries.c.withdrawn.is_(False))
                    .values(withdrawn=True, changed=now, rev=revision)
                )
                count += result.rowcount
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))
                conn.execute(tails.delete().where(tails.c.source.in_(chunk)))
        return count

    def move_source(
        self, entry_id: str, new: str, *, size: int, mtime_ns: int, now: datetime
    ) -> None:
        """A renamed file: the entry keeps its id and follows the file."""
        with self.begin() as conn:
            conn.execute(problems.delete().where(problems.c.source == new))
            old = conn.scalar(sa.select(entries.c.source).where(entries.c.id == entry_id))
            conn.execute(tails.delete().where(tails.c.source == new))
            conn.execute(tails.update().where(tails.c.source == old).values(source=new))
            conn.execute(
                entries.update()
                .where(entries.c.id == entry_id)
                .values(
                    source=new,
                    file_size=size,
                    file_mtime_ns=mtime_ns,
                    withdrawn=False,
                    changed=now,
                    rev=_bump(conn, "revision"),
                )
            )
            tags = conn.scalar(sa.select(entries.c.tags).where(entries.c.id == entry_id))
            _retag(conn, [(entry_id, tuple(json.loads(tags or "[]")))])

    def touch_files(self, stats: Sequence[tuple[str, int, int]]) -> None:
        """Record new (size, mtime) for files whose bytes did not change."""
        with self.begin() as conn:
            for source, size, mtime_ns in stats:
                conn.execute(
                    entries.update()
                    .where(entries.c.source == source)
                    .values(file_size=size, file_mtime_ns=mtime_ns)
                )

    def publish_due(self, *, now: datetime) -> int:
        """Give every entry that is visible at ``now`` and not yet published its place
        (``seq``) and first-published time. Returns how many were published."""
        with self.begin() as conn:
            due = list(
                conn.scalars(
                    sa.select(entries.c.id)
                    .where(
                        entries.c.seq.is_(None),
                        entries.c.withdrawn.is_(False),
                        entries.c.published <= now,
                    )
                    .order_by(entries.c.published, entries.c.id)
                )
            )
            if not due:
                return 0
            revision = _bump(conn, "revision")
            last = _bump(conn, "seq", by=len(due))
            conn.execute(
                entries.update()
                .where(entries.c.id == sa.bindparam("entry_id"))
                .values(
                    seq=sa.bindparam("new_seq"),
                    first_published=sa.bindparam("at"),
                    rev=sa.bindparam("new_rev"),
                ),
                [
                    {
                        "entry_id": entry_id,
                        "new_seq": last - len(due) + n,
                        "at": now,
                        "new_rev": revision,
                    }
                    for n, entry_id in enumerate(due, start=1)
                ],
            )
            conn.execute(
                entry_tags.update()
                .where(entry_tags.c.entry_id == sa.bindparam("tagged_id"))
                .values(seq=sa.bindparam("new_seq")),
                [
                    {"tagged_id": entry_id, "new_seq": last - len(due) + n}
                    for n, entry_id in enumerate(due, start=1)
                ],
            )
        return len(due)

    def entries(
        self,
        *,
        include_withdrawn: bool = False,
        limit: int | None = None,
        now: datetime | None = None,
    ) -> list[StoredEntry]:
        """Entries newest first; with ``now``, documents dated after it (held) are left out."""
        query = sa.select(entries).order_by(entries.c.published.desc(), entries.c.id)
        if not include_withdrawn:
            query = query.where(entries.c.withdrawn.is_(False))
        if now is not None:
            query = query.where(entries.c.published <= now)
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as conn:
            return [_stored_entry(row) for row in conn.execute(query)]

    # --- what feeds and pages read --------------------------------------------------------
    # Feeds and pages never show an entry's text version, and lists of entries (a day's page,
    # a build's walk) not its content either: those reads leave them out (as ""), which for
    # 10,000 entries was most of their time.

    def published(
        self, *, min_seq: int = 1, max_seq: int | None = None, limit: int | None = None
    ) -> list[StoredEntry]:
        """Visible published entries with seq in [min_seq, max_seq], newest first, without
        their text version."""
        query = (
            sa.select(*_FEED_COLUMNS)
            .where(entries.c.seq >= min_seq, entries.c.withdrawn.is_(False))
            .order_by(entries.c.seq.desc())
        )
        if max_seq is not None:
            query = query.where(entries.c.seq <= max_seq)
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as conn:
            return [_stored_entry(row) for row in conn.execute(query)]

    def tagged(self, tag_slug: str, *, limit: int) -> list[StoredEntry]:
        """The newest visible entries carrying a tag (``limit`` rows of one index, then
        those), without their text version."""
        with self.begin() as conn:
            ids = list(
                conn.scalars(
                    sa.select(entry_tags.c.entry_id)
                    .where(entry_tags.c.tag_slug == tag_slug, entry_tags.c.seq.is_not(None))
                    .order_by(entry_tags.c.seq.desc())
                    .limit(limit)
                )
            )
            if not ids:
                return []
            rows = conn.execute(
                sa.select(*_FEED_COLUMNS)
                .where(entries.c.id.in_(ids))
                .order_by(entries.c.seq.desc())
            )
            return [_stored_entry(row) for row in rows]

    def tag_slugs(self) -> list[str]:
        """Every tag of a visible published entry."""
        query = (
            sa.select(entry_tags.c.tag_slug)
            .where(entry_tags.c.seq.is_not(None))
            .distinct()
            .order_by(entry_tags.c.tag_slug)
        )
        with self.begin() as conn:
            return list(conn.scalars(query))

    def first_published_between(self, start: datetime, end: datetime) -> list[StoredEntry]:
        """Visible entries first published in [start, end), newest first (a day's page),
        without their content."""
        query = (
            sa.select(*_LISTING_COLUMNS)
            .where(*_first_published_in(start, end))
            .order_by(entries.c.seq.desc())
        )
        with self.begin() as conn:
            return [_stored_entry(row) for row in conn.execute(query)]

    def has_published_between(self, start: datetime, end: datetime) -> bool:
        """Whether ``first_published_between`` has any entry."""
        query = sa.select(entries.c.id).where(*_first_published_in(start, end))
        with self.begin() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def changed_since(self, revision: int) -> list[StoredEntry]:
        """Every entry (withdrawn too) changed after a store revision, by id, without its
        content (what a build's walk needs to know of it)."""
        query = sa.select(*_LISTING_COLUMNS).where(
            entries.c.rev > revision
        )  # no ORDER BY: the index
        with self.begin() as conn:
            found = [_stored_entry(row) for row in conn.execute(query)]
        return sorted(found, key=lambda stored: stored.entry.id)

    def seq_pages(self, size: int) -> Iterator[list[StoredEntry]]:
        """Every published entry (withdrawn too) in publication order, ``size`` seqs a chunk,
        without content: chunk k is exactly archive page k. Read about 1,000 rows a query
        (a query a chunk was a fifth of a 10,000-entry build's walk)."""
        last = self.max_seq()
        step = size * max(1, 1000 // size)
        for low in range(1, last + 1, step):
            query = (
                sa.select(*_LISTING_COLUMNS)
                .where(entries.c.seq >= low, entries.c.seq < low + step)
                .order_by(entries.c.seq)
            )
            with self.begin() as conn:
                rows = [_stored_entry(row) for row in conn.execute(query)]
            chunks: list[list[StoredEntry]] = [[] for _ in range(0, step, size)]
            for stored in rows:
                chunks[((stored.seq or low) - low) // size].append(stored)
            yield from chunks[: (min(low + step, last + 1) - low + size - 1) // size]

    def unpublished(self) -> list[StoredEntry]:
        """Entries not (yet) published: held for a future date, or withdrawn before it."""
        with self.begin() as conn:
            return [
                _stored_entry(row)
                for row in conn.execute(sa.select(entries).where(entries.c.seq.is_(None)))
            ]

    def count_entries(self) -> int:
        with self.begin() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(entries)) or 0)

    def max_seq(self) -> int:
        with self.begin() as conn:
            return int(conn.scalar(sa.select(sa.func.max(entries.c.seq))) or 0)

    def counter(self, name: str) -> int:
        with self.begin() as conn:
            return int(conn.scalar(sa.select(counters.c.value).where(counters.c.name == name)) or 0)

    def built(self, entry_ids: Sequence[str]) -> dict[str, tuple[list[str], str, str]]:
        """entry id -> (tag slugs, day, slug) as the last build published it."""
        found: dict[str, tuple[list[str], str, str]] = {}
        with self.begin() as conn:
            for chunk in _chunks(list(entry_ids), 500):
                for row in conn.execute(
                    sa.select(built_entries).where(built_entries.c.entry_id.in_(chunk))
                ):
                    found[row.entry_id] = (json.loads(row.tag_slugs), row.day, row.slug)
        return found

    def has_built_day(self, day: str) -> bool:
        with self.begin() as conn:
            found = conn.scalar(
                sa.select(built_entries.c.day).where(built_entries.c.day == day).limit(1)
            )
        return found is not None

    def built_days(self) -> list[str]:
        """Days (site time zone) on which the last build published something, newest first."""
        with self.begin() as conn:
            return list(
                conn.scalars(
                    sa.select(built_entries.c.day)
                    .where(built_entries.c.day != "")
                    .distinct()
                    .order_by(built_entries.c.day.desc())
                )
            )

    def record_build(
        self,
        built: dict[str, tuple[list[str], str, str] | None],
        *,
        revision: int,
        archive_pages: int,
        page_size: int,
        fingerprint: int | None = None,
    ) -> None:
        """Remember what a build published (None: no longer published) and how far it got,
        and the fingerprint of the settings and templates it used (build.output_fingerprint)."""
        with self.begin() as conn:
            ids = list(built)
            for chunk in _chunks(ids, 500):
                conn.execute(built_entries.delete().where(built_entries.c.entry_id.in_(chunk)))
            rows = [
                {"entry_id": key, "tag_slugs": json.dumps(v[0]), "day": v[1], "slug": v[2]}
                for key, v in built.items()
                if v is not None
            ]
            if rows:
                conn.execute(built_entries.insert(), rows)
            for name, value in (
                ("built_revision", revision),
                ("archive_pages", archive_pages),
                ("built_page_size", page_size),
                *([("built_fingerprint", fingerprint)] if fingerprint is not None else []),
            ):
                updated = conn.execute(
                    counters.update().where(counters.c.name == name).values(value=value)
                )
                if updated.rowcount == 0:
                    conn.execute(counters.insert().values(name=name, value=value))

    def learned_boilerplate(self, *, min_documents: int = 3) -> frozenset[str]:
        """Paragraph hashes that end at least ``min_documents`` documents with different bodies
        (byte-identical copies count once, and so do the versions of one file)."""
        with self.begin() as conn:
            return frozenset(
                conn.scalars(
                    sa.select(tails.c.paragraph_hash)
                    .group_by(tails.c.paragraph_hash)
                    .having(sa.func.count(sa.distinct(tails.c.body_hash)) >= min_documents)
                )
            )

    # --- subscribers ---------------------------------------------------------------------

    def add_subscribers(
        self, new: Sequence[NewSubscriber], *, now: datetime, state: SubscriberState
    ) -> tuple[list[Subscriber], list[str]]:
        """Insert subscribers; an address already present is skipped and named."""
        added: list[Subscriber] = []
        skipped: list[str] = []
        with self.begin() as conn:
            for chunk_start in range(0, len(new), 500):
                chunk = new[chunk_start : chunk_start + 500]
                present = set(
                    conn.scalars(
                        sa.select(subscribers.c.email_key).where(
                            subscribers.c.email_key.in_([n.email.lower() for n in chunk])
                        )
                    )
                )
                for item in chunk:
                    if item.email.lower() in present:
                        skipped.append(item.email)
                        continue
                    row = {
                        "email": item.email,
                        "email_key": item.email.lower(),
                        "name": item.name,
                        "timezone": item.timezone,
                        "frequency": item.frequency,
                        "tags": json.dumps(list(item.tags), ensure_ascii=False),
                        "state": str(state),
                        "created": now,
                        "changed": now,
                        "activated": now if state is SubscriberState.ACTIVE else None,
                        "period_end": None,
                        "period_seq": 0,
                    }
                    new_id = conn.execute(subscribers.insert().values(row)).inserted_primary_key
                    present.add(item.email.lower())
                    added.append(_subscriber({**row, "id": new_id[0]}))  # type: ignore[index]
        return added, skipped

    def subscriber(self, email: str) -> Subscriber | None:
        with self.begin() as conn:
            row = conn.execute(
                sa.select(subscribers).where(subscribers.c.email_key == email.strip().lower())
            ).first()
        return None if row is None else _subscriber(row._mapping)

    def subscribers(self, *, state: SubscriberState | None = None) -> list[Subscriber]:
        query = sa.select(subscribers).order_by(subscribers.c.email_key)
        if state is not None:
            query = query.where(subscribers.c.state == str(state))
        with self.begin() as conn:
            return [_subscriber(row._mapping) for row in conn.execute(query)]

    def set_subscriber_state(
        self, subscriber_id: int, state: SubscriberState, *, now: datetime
    ) -> None:
        """Change a subscriber's state; becoming active (again) starts a new first period."""
        values: dict[str, Any] = {"state": str(state), "changed": now}
        if state is SubscriberState.ACTIVE:
            values["activated"] = now
        with self.begin() as conn:
            conn.execute(
                subscribers.update().where(subscribers.c.id == subscriber_id).values(values)
            )

    # --- the digest ledger -----------------------------------------------------------------

    def seq_at(self, moment: datetime) -> int:
        """The last seq first published at or before ``moment`` (0 if none)."""
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.max(entries.c.seq)).where(entries.c.first_published <= moment)
            )
        return int(value or 0)

    def subscriber_pages(
        self, *, state: SubscriberState, size: int = 500
    ) -> Iterator[list[Subscriber]]:
        """Subscribers in one state, ``size`` at a time in id order, each page read in its own
        short transaction: a send's memory does not grow with the list."""
        after = 0
        while True:
            query = (
                sa.select(subscribers)
                .where(subscribers.c.state == str(state), subscribers.c.id > after)
                .order_by(subscribers.c.id)
                .limit(size)
            )
            with self.begin() as conn:
                page = [_subscriber(row._mapping) for row in conn.execute(query)]
            if not page:
                return
            yield page
            after = page[-1].id

    def published_after_seq(self, low: int, high: int) -> list[StoredEntry]:
        """Visible entries with seq in (low, high], newest first: one digest's contents."""
        query = (
            sa.select(entries)
            .where(entries.c.seq > low, entries.c.seq <= high, entries.c.withdrawn.is_(False))
            .order_by(entries.c.seq.desc())
        )
        with self.begin() as conn:
            return [_stored_entry(row) for row in conn.execute(query)]

    def open_periods(self, periods: Sequence[Period], *, now: datetime) -> list[Period]:
        """Record periods in the ledger, in one transaction; returns those recorded. A period
        another run recorded first (cron and the service may both be up) is left out."""
        if not periods:
            return []
        encoded: dict[tuple[str, ...], str] = {}  # most periods share their contents
        rows = [
            {
                "subscriber_id": period.subscriber_id,
                "due": period.due,
                "window_start": period.window_start,
                "window_end": period.window_end,
                "seq_start": period.seq_start,
                "seq_end": period.seq_end,
                "state": period.state,
                "entry_ids": encoded.get(period.entry_ids)
                or encoded.setdefault(period.entry_ids, json.dumps(list(period.entry_ids))),
                "attempts": 0,
                "reply": "",
                "created": now,
                "changed": now,
            }
            for period in periods
        ]
        moved = (
            subscribers.update()
            .where(subscribers.c.id == sa.bindparam("person"))
            .values(period_end=sa.bindparam("end"), period_seq=sa.bindparam("seq"))
        )
        recorded: list[Period] = []
        with self.begin() as conn:
            try:  # the usual case, no other run in the way: two statements for them all
                with conn.begin_nested():
                    conn.execute(deliveries.insert(), rows)
                    conn.execute(
                        moved,
                        [
                            {"person": p.subscriber_id, "end": p.window_end, "seq": p.seq_end}
                            for p in periods
                        ],
                    )
                return list(periods)
            except sa.exc.IntegrityError:
                pass  # another run recorded some of them: one at a time, keeping the rest
            for period, row in zip(periods, rows, strict=True):
                try:
                    with conn.begin_nested():
                        conn.execute(deliveries.insert().values(row))
                        conn.execute(
                            moved,
                            {
                                "person": period.subscriber_id,
                                "end": period.window_end,
                                "seq": period.seq_end,
                            },
                        )
                except sa.exc.IntegrityError:
                    continue
                recorded.append(period)
        return recorded

    def open_period(self, period: Period, *, now: datetime) -> int | None:
        """Record one period; its delivery id, or None if another run recorded it first."""
        if not self.open_periods([period], now=now):
            return None
        with self.begin() as conn:
            return conn.scalar(
                sa.select(deliveries.c.id).where(
                    deliveries.c.subscriber_id == period.subscriber_id,
                    deliveries.c.due == period.due,
                )
            )

    def claim_batch(
        self,
        *,
        now: datetime,
        claim_timeout: float = 600.0,
        limit: int = 200,
        claimant: str | None = None,
        instance: str | None = None,
        lease_seconds: float = 15.0,
    ) -> list[Delivery]:
        """Take up to ``limit`` deliveries to send, for this run alone, in one transaction:
        queued ones, retries that are due, and ones claimed by a run that died.

        A run is known dead when its claim is older than ``claim_timeout``, or at once when
        it was made by a `newsdrop run` instance (``instance``) that has not been seen for
        ``lease_seconds`` or has started again since. A run that claims several times
        names itself (``claimant``, see ``new_claimant``), so that it never takes back its
        own digests in flight, however long they take."""
        stamp = max(now, datetime.now(UTC))
        stale = stamp - timedelta(seconds=claim_timeout)
        token = claimant or new_claimant()
        claimer_dead = _claimer_dead(deliveries, stamp=stamp, lease_seconds=lease_seconds)
        kinds = (  # what may be sent, queued first
            deliveries.c.state == "queued",
            (deliveries.c.state == "retrying") & (deliveries.c.next_attempt <= now),
            (deliveries.c.state == "sending")
            & deliveries.c.claim.is_distinct_from(token)
            & ((deliveries.c.changed < stale) | claimer_dead),
        )
        sendable = sa.or_(*kinds)
        with self.begin() as conn:
            # One query a kind, each stopping at `limit` rows on the state index: with
            # the kinds OR-ed and ORDER BY id, every claim read and sorted the whole
            # queue (a send of N digests read N^2/limit rows).
            # FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite serialises writers anyway): rows
            # another instance is claiming right now are passed over, not waited for, so
            # several instances take disjoint batches instead of racing for the same one.
            wanted: list[int] = []
            for kind in kinds:
                if len(wanted) < limit:
                    wanted += conn.scalars(
                        sa.select(deliveries.c.id)
                        .where(kind)
                        .order_by(deliveries.c.id)
                        .limit(limit - len(wanted))
                        .with_for_update(skip_locked=True)
                    )
            if not wanted:
                return []
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(wanted), sendable)  # re-checked: another run may race
                .values(state="sending", changed=stamp, claim=token, claimed_by=instance)
            )
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.id.in_(wanted), deliveries.c.claim == token)
                .order_by(deliveries.c.id)
            )
            return [_delivery(row._mapping) for row in rows]

    def finish_sent(self, sent: Sequence[tuple[int, str]], *, now: datetime) -> None:
        """Mark delivered digests (id, server reply) in one transaction."""
        if not sent:
            return
        with self.begin() as conn:
            conn.execute(
                _MARK_SENT,
                [{"delivery_id": d, "server_reply": r, "now": now} for d, r in sent],
            )

    def release_claims(self, claimant: str, *, reply: str, now: datetime) -> int:
        """Give back every digest a run still holds as being sent (queued, the attempt not
        counted); how many."""
        with self.begin() as conn:
            done = conn.execute(
                deliveries.update()
                .where(deliveries.c.claim == claimant, deliveries.c.state == "sending")
                .values(state="queued", reply=reply, changed=now, claim=None, claimed_by=None)
            )
            return int(done.rowcount)

    def subscribers_by_id(self, ids: Sequence[int]) -> dict[int, Subscriber]:
        found: dict[int, Subscriber] = {}
        with self.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                rows = conn.execute(sa.select(subscribers).where(subscribers.c.id.in_(chunk)))
                found.update((row.id, _subscriber(row._mapping)) for row in rows)
        return found

    def finish_delivery(
        self,
        delivery_id: int,
        *,
        state: str,
        reply: str,
        now: datetime,
        next_attempt: datetime | None = None,
        counts_as_attempt: bool = True,
        recipient_fault: bool = False,
    ) -> None:
        """Record a delivery's outcome: sent, failed (``recipient_fault``: because of the
        recipient's address), retrying (at ``next_attempt``), or queued again without
        counting the attempt (sending paused)."""
        with self.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(
                    state=state,
                    reply=reply,
                    changed=now,
                    next_attempt=next_attempt,
                    attempts=deliveries.c.attempts + (1 if counts_as_attempt else 0),
                    recipient_fault=recipient_fault,
                )
            )

    def recent_failures(self, subscriber_id: int, *, last: int = 3) -> int:
        """How many of a subscriber's last ``last`` digests that tell about the address
        (sent, or failed because of it) failed; a failure of our message or the relay
        says nothing about it, and is passed over."""
        with self.begin() as conn:
            states = conn.scalars(
                sa.select(deliveries.c.state)
                .where(
                    deliveries.c.subscriber_id == subscriber_id,
                    (deliveries.c.state == "sent")
                    | ((deliveries.c.state == "failed") & deliveries.c.recipient_fault),
                )
                .order_by(deliveries.c.due.desc())
                .limit(last)
            )
            return sum(state == "failed" for state in states)

    def delivery_summary(self) -> list[tuple[datetime, str, int]]:
        """(due, state, count) for every period, newest first."""
        query = (
            sa.select(deliveries.c.due, deliveries.c.state, sa.func.count())
            .group_by(deliveries.c.due, deliveries.c.state)
            .order_by(deliveries.c.due.desc(), deliveries.c.state)
        )
        with self.begin() as conn:
            return [(_aware(due), state, count) for due, state, count in conn.execute(query)]

    def entries_by_id(self, entry_ids: Sequence[str]) -> list[StoredEntry]:
        """These entries, newest first (the order of a digest), leaving out any withdrawn
        since the digest was recorded."""
        found: list[StoredEntry] = []
        with self.begin() as conn:
            for chunk in _chunks(list(entry_ids), 500):
                query = sa.select(entries).where(
                    entries.c.id.in_(chunk), entries.c.withdrawn.is_(False)
                )
                found += [_stored_entry(row) for row in conn.execute(query)]
        return sorted(found, key=lambda s: s.seq or 0, reverse=True)

    # --- confirmation mails ------------------------------------------------------------------

    def queue_confirmation(self, subscriber_id: int, *, now: datetime) -> bool:
        """Queue the confirmation mail of a pending subscriber; False when one is already
        waiting (queued, retrying or being sent): a repeat request adds none. After one was
        sent (or failed), a repeat request queues a new one, with a new link."""
        fresh = {
            "state": "queued", "attempts": 0, "next_attempt": None, "reply": "",
            "claim": None, "requested": now, "changed": now,
        }  # fmt: skip
        with self.begin() as conn:
            state = conn.scalar(
                sa.select(confirmations.c.state).where(
                    confirmations.c.subscriber_id == subscriber_id
                )
            )
            if state is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            confirmations.insert().values(subscriber_id=subscriber_id, **fresh)
                        )
                except sa.exc.IntegrityError:  # another request queued it just now
                    return False
                return True
            if state in _CONFIRMATION_WAITING:
                return False
            done = conn.execute(
                confirmations.update()
                .where(
                    confirmations.c.subscriber_id == subscriber_id,
                    confirmations.c.state.not_in(_CONFIRMATION_WAITING),
                )
                .values(fresh)
            )
            return bool(done.rowcount)

    def claim_confirmations(
        self,
        *,
        now: datetime,
        claimant: str,
        limit: int = 50,
        claim_timeout: float = 600.0,
        instance: str | None = None,
        lease_seconds: float = 15.0,
    ) -> list[Confirmation]:
        """Take up to ``limit`` confirmation mails to send, for this run alone: queued ones,
        retries that are due, and ones a run that died left being sent (after
        ``claim_timeout``, or at once when a dead `newsdrop run` instance claimed them:
        as ``claim_batch``)."""
        stamp = max(now, datetime.now(UTC))
        c = confirmations.c
        claimer_dead = _claimer_dead(confirmations, stamp=stamp, lease_seconds=lease_seconds)
        sendable = sa.or_(
            c.state == "queued",
            (c.state == "retrying") & (c.next_attempt <= now),
            (c.state == "sending")
            & c.claim.is_distinct_from(claimant)
            & ((c.changed < stamp - timedelta(seconds=claim_timeout)) | claimer_dead),
        )
        with self.begin() as conn:
            wanted = list(
                conn.scalars(
                    sa.select(c.subscriber_id)
                    .where(sendable)
                    .order_by(c.requested)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not wanted:
                return []
            conn.execute(
                confirmations.update()
                .where(c.subscriber_id.in_(wanted), sendable)
                .values(state="sending", claim=claimant, changed=stamp, claimed_by=instance)
            )
            rows = conn.execute(
                sa.select(c.subscriber_id, c.attempts, subscribers.c.email, subscribers.c.state)
                .join(subscribers, subscribers.c.id == c.subscriber_id, isouter=True)
                .where(c.subscriber_id.in_(wanted), c.claim == claimant, c.state == "sending")
                .order_by(c.requested)
            )
            return [
                Confirmation(
                    subscriber_id=row.subscriber_id,
                    email=row.email or "",
                    pending=row.state == str(SubscriberState.PENDING),
                    attempts=row.attempts,
                )
                for row in rows
            ]

    def finish_confirmation(
        self,
        subscriber_id: int,
        *,
        state: str,
        reply: str,
        now: datetime,
        next_attempt: datetime | None = None,
        counts_as_attempt: bool = True,
    ) -> None:
        """Record a confirmation mail's outcome: sent (at ``now``), retrying, failed,
        cancelled, or queued again without counting the attempt (sending paused)."""
        values: dict[str, Any] = {
            "state": state, "reply": reply, "changed": now, "next_attempt": next_attempt,
            "claim": None, "attempts": confirmations.c.attempts + int(counts_as_attempt),
        }  # fmt: skip
        if state == "sent":
            values["sent"] = now
        with self.begin() as conn:
            conn.execute(
                confirmations.update()
                .where(confirmations.c.subscriber_id == subscriber_id)
                .values(values)
            )

    def release_confirmations(self, claimant: str, *, reply: str, now: datetime) -> None:
        """Give back every confirmation mail a run still holds as being sent."""
        c = confirmations.c
        with self.begin() as conn:
            conn.execute(
                confirmations.update()
                .where(c.claim == claimant, c.state == "sending")
                .values(state="queued", reply=reply, changed=now, claim=None, claimed_by=None)
            )

    def next_confirmation(self) -> datetime | None:
        """When the earliest confirmation mail waiting is due (None: none waits)."""
        c = confirmations.c
        due = sa.case((c.state == "retrying", c.next_attempt), else_=c.requested)
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.min(due)).where(c.state.in_(["queued", "retrying"]))
            )
        return None if value is None else _aware(value)

    def confirmation_counts(self) -> dict[str, int]:
        """How many confirmation mails are in each state."""
        c = confirmations.c
        query = sa.select(c.state, sa.func.count()).group_by(c.state)
        with self.begin() as conn:
            return {state: count for state, count in conn.execute(query)}

    def confirmation_state(self, subscriber_id: int) -> tuple[str, int, datetime | None] | None:
        """(state, attempts, sent) of a subscriber's confirmation mail, if one was queued."""
        c = confirmations.c
        with self.begin() as conn:
            row = conn.execute(
                sa.select(c.state, c.attempts, c.sent).where(c.subscriber_id == subscriber_id)
            ).first()
        if row is None:
            return None
        return row.state, row.attempts, None if row.sent is None else _aware(row.sent)

    # --- problems and runs ---------------------------------------------------------------

    def record_problems(self, found: Sequence[ProblemWrite]) -> None:
        """Replace the problem of each file."""
        if not found:
            return
        with self.begin() as conn:
            for chunk in _chunks([w.problem.source for w in found], 500):
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))
            conn.execute(
                problems.insert(),
                [
                    {
                        "source": w.problem.source,
                        "reason": w.problem.reason,
                        "seen": w.problem.seen,
                        "file_size": w.size,
                        "file_mtime_ns": w.mtime_ns,
                        "file_hash": w.file_hash,
                        "judged": w.judged,
                    }
                    for w in found
                ],
            )

    def clear_problems(self, sources: Iterable[str]) -> None:
        with self.begin() as conn:
            for chunk in _chunks(list(sources), 500):
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))

    def problems(self) -> list[Problem]:
        with self.begin() as conn:
            return [
                Problem(row.source, row.reason, row.seen)
                for row in conn.execute(sa.select(problems).order_by(problems.c.source))
            ]

    def record_run(self, *, started: datetime, finished: datetime, summary: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(
                ingest_runs.insert().values(
                    started=started, finished=finished, summary=json.dumps(summary)
                )
            )

    def last_run(self) -> tuple[datetime, dict[str, Any]] | None:
        with self.begin() as conn:
            row = conn.execute(
                sa.select(ingest_runs).order_by(ingest_runs.c.id.desc()).limit(1)
            ).first()
        return None if row is None else (row.finished, json.loads(row.summary))

    def counts(self, *, now: datetime) -> dict[str, int]:
        with self.begin() as conn:
            live = entries.c.withdrawn.is_(False)
            return {
                "published": conn.scalar(
                    sa.select(sa.func.count()).where(live, entries.c.published <= now)
                )
                or 0,
                "scheduled": conn.scalar(
                    sa.select(sa.func.count()).where(live, entries.c.published > now)
                )
                or 0,
                "withdrawn": conn.scalar(
                    sa.select(sa.func.count()).where(entries.c.withdrawn.is_(True))
                )
                or 0,
                "problems": conn.scalar(sa.select(sa.func.count()).select_from(problems)) or 0,
            }

    # --- what the service asks ---------------------------------------------------------------

    def ping(self) -> None:
        """Raise StoreError unless the store answers a query (readiness)."""
        try:
            with self.begin() as conn:
                conn.scalar(sa.select(1))
        except SQLAlchemyError as exc:
            raise StoreError(f"the store does not answer: {exc.__class__.__name__}") from exc

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self.begin() as conn:
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
        return None if row is None else _delivery(row._mapping)

    def next_retry(self) -> datetime | None:
        """When the earliest deferred delivery is due again (None: nothing to retry)."""
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.min(deliveries.c.next_attempt)).where(
                    deliveries.c.state == "retrying"
                )
            )
        return None if value is None else _aware(value)

    def next_publication(self, *, now: datetime) -> datetime | None:
        """When the earliest future-dated live entry comes due (None: none is waiting)."""
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.min(entries.c.published)).where(
                    entries.c.withdrawn.is_(False), entries.c.published > now
                )
            )
        return None if value is None else _aware(value)

    def delivery_counts(self) -> dict[str, int]:
        """How many deliveries are in each state (queue depth is queued + retrying)."""
        query = sa.select(deliveries.c.state, sa.func.count()).group_by(deliveries.c.state)
        with self.begin() as conn:
            return {state: count for state, count in conn.execute(query)}

    def take_send_slots(self, count: int, *, gap: float, now: float, bucket: str = "mail") -> float:
        """Take ``count`` send slots ``gap`` seconds apart from the store's token bucket: how
        many seconds from now the first one is (the others follow it at ``gap``). The
        clock is the database server's on PostgreSQL, so that instances on machines whose
        clocks differ share one, else ``now`` (seconds since the epoch, from the caller).
        One conditional UPDATE, so racing processes get disjoint slots; an idle bucket
        saves up nothing, so no burst exceeds the rate."""
        clock: sa.ColumnElement[float] = sa.literal(now, sa.Float)
        if self.engine.dialect.name == "postgresql":
            clock = sa.cast(sa.func.extract("epoch", sa.func.statement_timestamp()), sa.Float)
        free = rate_buckets.c.next_free
        with self.begin() as conn:
            wait = conn.execute(
                rate_buckets.update()
                .where(rate_buckets.c.name == bucket)
                .values(next_free=sa.case((free > clock, free), else_=clock) + count * gap)
                .returning(free - count * gap - clock)
            ).scalar_one()
        return float(wait)

    # --- instances sharing the store ----------------------------------------------------------

    def take_lease(self, name: str, holder: str, *, now: datetime, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until now + seconds; False while
        another holder's lease runs. One conditional UPDATE decides between racers."""
        until = now + timedelta(seconds=seconds)
        with self.begin() as conn:
            renewed = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires=until)
            ).rowcount
            if renewed:
                return True
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.expires < now)
                .values(holder=holder, taken=now, expires=until)
            ).rowcount
            if taken:
                return True
            if conn.scalar(sa.select(leases.c.name).where(leases.c.name == name)) is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        leases.insert().values(name=name, holder=holder, taken=now, expires=until)
                    )
            except sa.exc.IntegrityError:
                return False  # another instance inserted it first
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))

    def lease(self, name: str) -> tuple[str, datetime, datetime] | None:
        """(holder, taken, expires) of a lease, or None."""
        with self.begin() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else (row.holder, _aware(row.taken), _aware(row.expires))

    def heartbeat(
        self, name: str, *, pid: int, host: str, url: str, started: datetime, now: datetime
    ) -> None:
        """Record that the instance ``name`` is alive (for `newsdrop status`), and forget
        instances stopped or unseen for a day (a service's name includes its port when
        [cluster] instance is unset, so old names would pile up over months)."""
        values = {
            "pid": pid,
            "host": host,
            "url": url,
            "started": started,
            "seen": now,
            "stopped": None,
        }
        with self.begin() as conn:
            gone = (instances.c.stopped < now - FORGET_INSTANCES) | (
                instances.c.seen < now - FORGET_INSTANCES
            )
            conn.execute(instances.delete().where(gone, instances.c.name != name))
            if conn.execute(
                instances.update().where(instances.c.name == name).values(values)
            ).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(instances.insert().values(name=name, **values))
            except sa.exc.IntegrityError:
                conn.execute(instances.update().where(instances.c.name == name).values(values))

    def instance_stopped(self, name: str, *, now: datetime) -> None:
        with self.begin() as conn:
            conn.execute(instances.update().where(instances.c.name == name).values(stopped=now))

    def instances(self) -> list[dict[str, Any]]:
        with self.begin() as conn:
            rows = conn.execute(sa.select(instances).order_by(instances.c.name)).all()
        return [
            {
                "name": row.name,
                "pid": row.pid,
                "host": row.host,
                "url": row.url,
                "started": _aware(row.started),
                "seen": _aware(row.seen),
                "stopped": _aware(row.stopped) if row.stopped else None,
            }
            for row in rows
        ]

    def subscribers_version(self) -> tuple[int, str]:
        """Changes whenever a subscriber is added or changes state (from any process)."""
        query = sa.select(sa.func.count(), sa.func.max(subscribers.c.changed))
        with self.begin() as conn:
            count, changed = conn.execute(query).one()
        return int(count), str(changed)

    def last_sent(self) -> datetime | None:
        with self.begin() as conn:
            value = conn.scalar(
                sa.select(sa.func.max(deliveries.c.changed)).where(deliveries.c.state == "sent")
            )
        return None if value is None else _aware(value)


def _entry_row(write: EntryWrite, now: datetime) -> dict[str, Any]:
    e = write.entry
    return {
        "id": e.id,
        "slug": e.slug,
        "source": write.source,
        "file_size": write.size,
        "file_mtime_ns": write.mtime_ns,
        "file_hash": write.file_hash,
        "content_hash": e.content_hash,
        "title": e.title,
        "summary": e.summary,
        "content_html": e.content_html,
        "content_text": e.content_text,
        "author": e.author,
        "lang": e.lang,
        "tags": json.dumps(list(e.tags), ensure_ascii=False),
        "media": json.dumps(list(e.media), ensure_ascii=False),
        "word_count": e.word_count,
        "reading_minutes": e.reading_minutes,
        "last_paragraph": e.last_paragraph,
        "published": e.published,
        "updated": e.updated,
        "first_seen": write.first_seen,
        "withdrawn": False,
        "changed": now,
    }


def _first_published_in(start: datetime, end: datetime) -> tuple[Any, ...]:
    """Visible entries first published in [start, end)."""
    return (
        entries.c.first_published >= start,
        entries.c.first_published < end,
        entries.c.withdrawn.is_(False),
    )


_opened: dict[str, Store] = {}


def opened(url: str) -> Store:
    """This process's own connection to the store at ``url``, opened on first use and
    kept (a worker process's: the service's pipeline process, a render process)."""
    if url not in _opened:
        _opened[url] = Store.open(url)
    return _opened[url]


def _claimer_dead(table: sa.Table, *, stamp: datetime, lease_seconds: float) -> Any:
    """Whether a row's claim was made by a `newsdrop run` instance now known dead: not seen
    for ``lease_seconds``, or started again since it claimed the row."""
    return sa.exists().where(
        instances.c.name == table.c.claimed_by,
        (instances.c.seen < stamp - timedelta(seconds=lease_seconds))
        | (instances.c.started > table.c.changed),
    )


_FEED_OMITS = ("content_text", "last_paragraph")  # never in a feed or page
_LISTING_OMITS = ("content_html", *_FEED_OMITS)  # nor in a list of entries
_FEED_COLUMNS = [c for c in entries.c if c.name not in _FEED_OMITS]
_LISTING_COLUMNS = [c for c in entries.c if c.name not in _LISTING_OMITS]


def _stored_entry(row: sa.Row[Any]) -> StoredEntry:
    """A row of ``entries``; columns a read leaves out (_FEED_OMITS, _LISTING_OMITS) are "".
    By a dict of the row: four times faster than by its attributes, for 10,000 rows a build
    reads three times over."""
    values = dict(zip(row._fields, row, strict=True))
    entry = Entry(
        id=values["id"],
        slug=values["slug"],
        title=values["title"],
        summary=values["summary"],
        content_html=values.get("content_html", ""),
        content_text=values.get("content_text", ""),
        published=values["published"],
        updated=values["updated"],
        author=values["author"],
        lang=values["lang"],
        tags=_json_tuple(values["tags"]),
        word_count=values["word_count"],
        reading_minutes=values["reading_minutes"],
        content_hash=values["content_hash"],
        last_paragraph=values.get("last_paragraph", ""),
        media=_json_tuple(values["media"]),
    )
    return StoredEntry(
        entry,
        values["source"],
        values["first_seen"],
        values["withdrawn"],
        values["seq"],
        values["first_published"],
        values["rev"],
    )


def _json_tuple(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def _retag(conn: Connection, tagged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
    """Replace the tag rows of these (live) entries, carrying each entry's seq."""
    ids = [entry_id for entry_id, _ in tagged]
    seqs: dict[str, int | None] = {}
    for chunk in _chunks(ids, 500):
        conn.execute(entry_tags.delete().where(entry_tags.c.entry_id.in_(chunk)))
        found = conn.execute(sa.select(entries.c.id, entries.c.seq).where(entries.c.id.in_(chunk)))
        seqs.update((row.id, row.seq) for row in found)
    rows = {
        (entry_id, slug): {"entry_id": entry_id, "tag_slug": slug, "seq": seqs.get(entry_id)}
        for entry_id, tags in tagged
        for slug in (slugify(tag) for tag in tags)
        if slug
    }
    if rows:
        conn.execute(entry_tags.insert(), list(rows.values()))


def _bump(conn: Connection, name: str, *, by: int = 1) -> int:
    """Advance a counter inside the caller's transaction (which serialises writers)."""
    conn.execute(
        counters.update().where(counters.c.name == name).values(value=counters.c.value + by)
    )
    return int(conn.scalar(sa.select(counters.c.value).where(counters.c.name == name)) or 0)


FORGET_INSTANCES = timedelta(days=1)  # `status` lists instances seen within this


def new_claimant() -> str:
    """A name for one sending run's claims (it fits the ``claim`` column)."""
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Period:
    """A digest to record in the ledger: whose, which period, what window, what contents."""

    subscriber_id: int
    due: datetime
    window_start: datetime
    window_end: datetime
    seq_start: int
    seq_end: int
    entry_ids: tuple[str, ...]
    state: str  # "queued", or "skipped" for an empty digest with [digest] skip_empty


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    subscriber_id: int
    due: datetime
    window_start: datetime
    window_end: datetime
    state: str
    entry_ids: tuple[str, ...]
    attempts: int
    reply: str
    changed: datetime


_CONFIRMATION_WAITING = ("queued", "retrying", "sending")


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A confirmation mail claimed for sending: to whom, and whether they still wait."""

    subscriber_id: int
    email: str
    pending: bool  # False: confirmed meanwhile (by an earlier link), left, or removed
    attempts: int


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row["id"],
        subscriber_id=row["subscriber_id"],
        due=_aware(row["due"]),
        window_start=_aware(row["window_start"]),
        window_end=_aware(row["window_end"]),
        state=row["state"],
        entry_ids=tuple(json.loads(row["entry_ids"])),
        attempts=row["attempts"],
        reply=row["reply"],
        changed=_aware(row["changed"]),
    )


# Built once: a send marks its digests a few at a time, and building the statement cost
# as much as running it.
_MARK_SENT = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
    .values(
        state="sent",
        reply=sa.bindparam("server_reply"),
        changed=sa.bindparam("now"),
        next_attempt=None,
        attempts=deliveries.c.attempts + 1,
    )
)


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        timezone=row["timezone"],
        frequency=row["frequency"],
        tags=tuple(json.loads(row["tags"])) if row["tags"] != "[]" else (),
        state=SubscriberState(row["state"]),
        created=_aware(row["created"]),
        changed=_aware(row["changed"]),
        activated=_aware(row["activated"]) if row["activated"] is not None else None,
        period_end=_aware(row["period_end"]) if row.get("period_end") is not None else None,
        period_seq=int(row.get("period_seq") or 0),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL makes NORMAL crash-safe
    cursor.execute("PRAGMA busy_timeout=10000")  # `digest send` from cron while `run` is up
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
