"""The store: SQLAlchemy Core tables and queries. SQLite by default (WAL, one file).

Nothing here is SQLite-only except the connection pragmas, so a ``postgresql+psycopg://``
URL is a configuration change. engine.py opens, migrates and guards; schema.py holds the
tables; migrations/ their history; one module of queries per domain."""

from newsdrop.store.returned import Act, PeriodReturns, StoredReturn
from newsdrop.store.store import Store, opened
from newsdrop.store.values import (
    Confirmation,
    Delivery,
    EntryWrite,
    FileState,
    Identity,
    Period,
    ProblemWrite,
    new_claimant,
)

__all__ = [
    "Act",
    "Confirmation",
    "Delivery",
    "EntryWrite",
    "FileState",
    "Identity",
    "Period",
    "PeriodReturns",
    "ProblemWrite",
    "Store",
    "StoredReturn",
    "new_claimant",
    "opened",
]
