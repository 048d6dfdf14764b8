"""The store's schema history: one frozen file per version, applied in order.

``StoreBase.migrate`` applies the versions a database has not seen, one transaction each.
Adding a column: add it to schema.py, and add ``vNNN.py`` with its ALTER TABLE and its
name at the end of ``MIGRATIONS``; never edit an earlier file. (Alembic would be the tool
for branching histories; one linear list of Core DDL steps is all this project needs.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Connection

from newsdrop.store.migrations import (
    v001,
    v002,
    v003,
    v004,
    v005,
    v006,
    v007,
    v008,
    v009,
    v010,
    v011,
    v012,
    v013,
    v014,
    v015,
    v016,
    v017,
    v018,
)

MIGRATIONS: Sequence[Callable[[Connection], None]] = tuple(
    version.upgrade
    for version in (
        v001,
        v002,
        v003,
        v004,
        v005,
        v006,
        v007,
        v008,
        v009,
        v010,
        v011,
        v012,
        v013,
        v014,
        v015,
        v016,
        v017,
        v018,
    )
)
