"""The store's schema history, on SQLite and PostgreSQL: a store of every earlier version
upgrades to what a new store has, and a column added the obvious way (schema.py plus one new
migration) works on new and old stores alike."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsdrop.store import Store
from newsdrop.store.migrations import MIGRATIONS
from newsdrop.store.schema import schema_version

NewStore = Callable[[str], str]  # a name -> the URL of a new, empty database


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> NewStore:
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    server = request.getfixturevalue("postgres")
    return lambda name: str(server.database())


def layout(engine: sa.Engine) -> dict[str, Any]:
    """Every table's columns (name, type, nullable) and indexes, as the database has them."""
    seen = sa.inspect(engine)
    return {
        table: (
            sorted((c["name"], str(c["type"]), c["nullable"]) for c in seen.get_columns(table)),
            sorted((i["name"], tuple(i["column_names"])) for i in seen.get_indexes(table)),
        )
        for table in sorted(seen.get_table_names())
    }


def store_at(url: str, version: int) -> None:
    """A store as the newsdrop of schema ``version`` left it."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        schema_version.create(conn)
        for number, step in enumerate(MIGRATIONS[:version], start=1):
            step(conn)
            conn.execute(schema_version.insert().values(version=number, applied=sa.func.now()))
    engine.dispose()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_a_store_of_every_earlier_version_upgrades_to_what_a_new_store_has(
    new_store: NewStore, version: int
) -> None:
    fresh = Store.open(new_store("fresh"))
    old_url = new_store(f"v{version}")
    store_at(old_url, version)
    upgraded = Store.open(old_url)
    with upgraded.begin() as conn:
        assert conn.scalar(sa.select(sa.func.max(schema_version.c.version))) == len(MIGRATIONS)
    assert layout(upgraded.engine) == layout(fresh.engine)
    assert upgraded.subscribers() == [] and upgraded.count_entries() == 0
    upgraded.close()
    fresh.close()


def test_a_column_added_the_obvious_way_works_on_new_and_old_stores(new_store: NewStore) -> None:
    """What a developer does to add a field: a column in schema.py, an ALTER TABLE in a new
    migration. (Before the migrations were frozen, version 2 created `subscribers` from the
    live table, so a fresh store then failed with "duplicate column name".) In a process of
    its own, since it changes the live tables."""
    script = textwrap.dedent(
        """
        import sys
        import sqlalchemy as sa
        from newsdrop.store import Store, engine, schema
        from newsdrop.store.migrations import MIGRATIONS

        schema.subscribers.append_column(sa.Column("nickname", sa.Text, nullable=True))
        def v_next(conn):
            conn.execute(sa.text("ALTER TABLE subscribers ADD COLUMN nickname TEXT"))
        engine.MIGRATIONS = (*MIGRATIONS, v_next)
        for url in sys.argv[1:]:
            store = Store.open(url)
            with store.begin() as conn:
                conn.execute(schema.subscribers.update().values(nickname="x"))
                names = {c["name"] for c in sa.inspect(conn).get_columns("subscribers")}
            assert "nickname" in names, names
            store.close()
        print("ok")
        """
    )
    old = new_store("old")
    store_at(old, len(MIGRATIONS))
    result = subprocess.run(
        [sys.executable, "-c", script, new_store("new"), old],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_version_16_gives_tags_in_any_script_their_rows_and_marks_the_entry_changed(
    home: Path, run: Callable[..., Any]
) -> None:
    """A store from before version 16 has no tag row for "україна" (its slug was empty):
    the upgrade makes it, and marks the entry changed so the next build writes its feeds."""
    from newsdrop.config import load_settings
    from newsdrop.store.migrations import v016
    from newsdrop.store.schema import entries, entry_tags

    (home / "seeds" / "kyiv.md").write_text(
        "---\ntitle: Kyiv\ntags: [україна, News]\n---\nText.\n", encoding="utf-8"
    )
    assert run("ingest").exit_code == 0
    store = Store.open(load_settings(home).store_url)
    try:
        with store.begin() as conn:  # as version 15 left it
            conn.execute(entry_tags.delete().where(entry_tags.c.tag_slug != "news"))
            before = conn.scalar(sa.select(entries.c.rev))
            v016.upgrade(conn)
            slugs = set(conn.scalars(sa.select(entry_tags.c.tag_slug)))
            after = conn.scalar(sa.select(entries.c.rev))
            v016.upgrade(conn)  # again: nothing left to change
            again = conn.scalar(sa.select(entries.c.rev))
    finally:
        store.close()
    assert slugs == {"україна", "news"}
    assert after > before and again == after
