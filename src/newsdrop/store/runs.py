"""Problems (documents not published, and why) and the record of ingest runs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsdrop.model import (
    Problem,
)
from newsdrop.store.engine import StoreBase
from newsdrop.store.rows import chunks
from newsdrop.store.schema import (
    entries,
    ingest_runs,
    problems,
)
from newsdrop.store.values import (
    ProblemWrite,
)

log = logging.getLogger(__name__)


class RunRecords(StoreBase):
    """Problems with documents, and the record of ingest runs."""

    def record_problems(self, found: Sequence[ProblemWrite]) -> None:
        """Replace the problem of each file."""
        if not found:
            return
        with self.begin() as conn:
            for chunk in chunks([w.problem.source for w in found], 500):
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
            for chunk in chunks(list(sources), 500):
                conn.execute(problems.delete().where(problems.c.source.in_(chunk)))

    def problems(self) -> list[Problem]:
        with self.begin() as conn:
            return [
                Problem(row.source, row.reason, row.seen)
                for row in conn.execute(sa.select(problems).order_by(problems.c.source))
            ]

    def entry_notes(self) -> list[tuple[str, list[str]]]:
        """(source, notes) of each published entry whose normalising guessed something."""
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(entries.c.source, entries.c.notes)
                .where(entries.c.notes != "[]", entries.c.withdrawn == sa.false())
                .order_by(entries.c.source)
            )
            return [(row.source, json.loads(row.notes)) for row in rows]

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
