"""Subscribers through the CLI and the store; tokens; the schema migration that added them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsdrop.config import instance_secret, load_settings
from newsdrop.errors import UsageError
from newsdrop.store import Store
from newsdrop.store.migrations import MIGRATIONS
from newsdrop.store.schema import schema_version
from newsdrop.subscribers import new_subscriber, parse_csv, token_subscriber, unsubscribe_token

from conftest import CliRun

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL


def listed(run: CliRun) -> dict[str, dict[str, object]]:
    result = run("subscribers", "list", "--json")
    return {r["email"]: r for r in map(json.loads, result.output.splitlines())}


def test_add_list_remove_reactivate(run: CliRun) -> None:
    assert run("subscribers", "add", "Ada@Example.ORG", "--name", "Ada", "--tz", "Europe/Kyiv",
               "--frequency", "weekly", "--tags", "ukraine, war").exit_code == 0  # fmt: skip
    people = listed(run)
    assert list(people) == ["Ada@example.org"]
    ada = people["Ada@example.org"]
    assert (ada["name"], ada["timezone"], ada["frequency"], ada["tags"], ada["state"]) == (
        "Ada", "Europe/Kyiv", "weekly", ["ukraine", "war"], "active"
    )  # fmt: skip
    again = run("subscribers", "add", "ada@example.org")
    assert again.exit_code == 2 and "already a subscriber" in again.output
    assert run("subscribers", "remove", "ADA@example.org").exit_code == 0
    assert listed(run)["Ada@example.org"]["state"] == "unsubscribed"
    assert run("subscribers", "reactivate", "ada@example.org").exit_code == 0
    assert listed(run)["Ada@example.org"]["state"] == "active"
    missing = run("subscribers", "remove", "nobody@example.org")
    assert missing.exit_code == 2 and "is not a subscriber" in missing.output
    assert "1 active" in run("status").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-address"], "is not a valid email address"),
        (["a@example.org", "--tz", "Mars/Olympus"], "is not an IANA zone"),
        (["a@example.org", "--frequency", "hourly"], "hourly"),
        (["a@example.org", "--name", "A" * 201], "the name is 201 characters long; at most 200"),
    ],
)
def test_bad_input_is_one_clear_error(run: CliRun, args: list[str], message: str) -> None:
    result = run("subscribers", "add", *args)
    assert result.exit_code == 2 and message in result.output
    assert listed(run) == {}


def test_import_reports_bad_rows_and_imports_the_rest(home: Path, run: CliRun) -> None:
    run("subscribers", "add", "old@example.org")
    csv_file = home / "list.csv"
    csv_file.write_text(
        "email,name,tz,frequency,tags\n"
        "ann@example.org,Ann,Europe/Kyiv,daily,\n"
        "broken-address,Bob,UTC,daily,\n"
        'cy@example.org,Cy,America/New_York,weekly,"tech,science"\n'
        "ANN@example.org,Ann again,,,\n"
        "old@example.org,,,,\n"
        "dee@example.org,Dee,Nowhere/Land,daily,\n"
        "eve@example.org,Eve,UTC,daily,tech,science\n"
    )
    run("subscribers", "remove", "old@example.org")
    result = run("subscribers", "import", str(csv_file))
    assert result.exit_code == 1  # bad rows: cron notices
    assert "imported 2, skipped 5" in result.output
    assert "line 3:" in result.output and "line 5:" in result.output and "line 7:" in result.output
    assert "line 8: 6 fields, but a row has at most 5" in result.output  # tags unquoted
    assert "old@example.org: already a subscriber (unsubscribed; `newsdrop subscribers " in (
        result.output
    )
    people = listed(run)
    assert set(people) == {"old@example.org", "ann@example.org", "cy@example.org"}
    assert people["cy@example.org"]["tags"] == ["tech", "science"]


def test_edit_changes_only_what_is_given_and_export_imports_back(
    home: Path, run: CliRun, tmp_path: Path
) -> None:
    """The operator changes a subscriber's choices; an export of the list, re-imported into a
    fresh instance, gives the same subscribers with the same choices."""
    assert run("subscribers", "add", "ada@example.org", "--name", "Ada", "--tz", "Europe/Kyiv",
               "--tags", "war").exit_code == 0  # fmt: skip
    edited = run("subscribers", "edit", "ADA@example.org", "--frequency", "weekly",
                 "--weekday", "friday", "--at", "18:30")  # fmt: skip
    assert edited.exit_code == 0, edited.output
    assert "a weekly digest on Friday at 18:30 (Europe/Kyiv), on war" in edited.output
    ada = listed(run)["ada@example.org"]
    assert (ada["name"], ada["frequency"], ada["at"], ada["weekday"], ada["tags"]) == (
        "Ada", "weekly", "18:30", "friday", ["war"]
    )  # fmt: skip
    assert run("subscribers", "edit", "ada@example.org", "--tags", "", "--at", "").exit_code == 0
    ada = listed(run)["ada@example.org"]
    assert (ada["tags"], ada["at"], ada["weekday"]) == ([], None, "friday")  # the site's hour
    for bad, says in ((["--at", "7"], "on the hour or half hour"), (["--weekday", "fri"], "fri")):
        refused = run("subscribers", "edit", "ada@example.org", *bad)
        assert refused.exit_code == 2 and says in refused.output
    assert run("subscribers", "edit", "ada@example.org").exit_code == 2  # nothing to change
    assert run("subscribers", "edit", "nobody@example.org", "--at", "08:00").exit_code == 2
    run("subscribers", "add", "bo@example.org", "--frequency", "monthly", "--at", "06:30")
    exported = run("subscribers", "export")
    assert exported.exit_code == 0
    lines = exported.output.splitlines()
    assert lines[0] == "email,name,tz,frequency,tags,at,weekday,state,joined,last_sent"
    assert lines[1].startswith("ada@example.org,Ada,Europe/Kyiv,weekly,,,friday,active,")
    assert lines[2].startswith("bo@example.org,,UTC,monthly,,06:30,,active,")
    (tmp_path / "list.csv").write_text(exported.output)
    run("subscribers", "remove", "bo@example.org")
    again = run("subscribers", "import", str(tmp_path / "list.csv"))
    assert "imported 0, skipped 2" in again.output and again.exit_code == 0  # both known


def test_import_by_header_takes_columns_in_any_order_and_names_an_unknown_one() -> None:
    good, bad = parse_csv(
        "weekday,frequency,email,at\nsunday,weekly,ann@example.org,09:00\n",
        default_timezone="UTC",
    )
    assert bad == [] and [(s.email, s.weekday, s.send_at) for s in good] == [
        ("ann@example.org", "sunday", "09:00")
    ]
    good, bad = parse_csv("email,zone\nann@example.org,UTC\n", default_timezone="UTC")
    assert good == [] and bad == [
        "line 1: unknown column 'zone'; the columns are "
        "email,name,tz,frequency,tags,at,weekday,state,joined,last_sent"
    ]


def test_parse_csv_defaults_and_header_less_files() -> None:
    good, bad = parse_csv(
        "ann@example.org\nbob@example.org,Bob,,weekly\n", default_timezone="Asia/Tokyo"
    )
    assert bad == []
    assert [(s.email, s.timezone, s.frequency) for s in good] == [
        ("ann@example.org", "Asia/Tokyo", "daily"), ("bob@example.org", "Asia/Tokyo", "weekly")
    ]  # fmt: skip


# The second review, finding 13.
def test_13_time_zones_that_are_not_zones_are_refused(run: CliRun) -> None:
    for zone in ("America", "localtime"):
        result = run("subscribers", "add", "a@example.org", "--tz", zone)
        assert result.exit_code == 2 and "is not an IANA zone" in result.output
    good, bad = parse_csv("a@example.org,A,America\nb@example.org,B,UTC\n", default_timezone="UTC")
    assert [s.email for s in good] == ["b@example.org"] and bad[0].startswith("line 1:")


def test_addresses_are_normalised() -> None:
    assert new_subscriber("  user@BÜCHER.de ", timezone="UTC").email == "user@bücher.de"
    with pytest.raises(UsageError, match="something after the @-sign"):
        new_subscriber("bad@", timezone="UTC")


# The second review, finding 1.
def test_1_non_ascii_local_parts_are_refused_when_added_unless_the_relay_carries_them() -> None:
    with pytest.raises(UsageError, match=r"the part before the @ is not ASCII.*SMTPUTF8"):
        new_subscriber("josé@exämple.org", timezone="UTC")
    assert new_subscriber("jose@exämple.org", timezone="UTC").email == "jose@exämple.org"
    taken = new_subscriber("josé@exämple.org", timezone="UTC", utf8_local=True)
    assert taken.email == "josé@exämple.org"


def test_tokens_round_trip_and_forgeries_are_refused() -> None:
    secret = b"a secret of enough length"
    token = unsubscribe_token(secret, 42)
    assert token_subscriber(secret, token) == 42
    assert token_subscriber(secret, token) == 42  # using it twice is harmless
    for forged in (
        token.replace("42.", "43."),
        token[:-2] + "AA",
        "42",
        "",
        "x.y",
        "9" * 40 + ".a",
    ):
        assert token_subscriber(secret, forged) is None
    assert token_subscriber(b"another secret entirely", token) is None


def test_secret_is_private_and_overridable(home: Path) -> None:
    settings = load_settings(home, environ={})
    path = home / "state" / "secret"
    assert path.stat().st_mode & 0o077 == 0
    assert instance_secret(settings, environ={}) == path.read_text().strip().encode()
    assert (
        instance_secret(settings, environ={"NEWSDROP_SECRET": "from-the-env-123456"})
        == b"from-the-env-123456"
    )
    path.unlink()
    made = instance_secret(settings, environ={})  # made again when it is missing
    assert len(made) >= 32 and path.exists()


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a store as the first release left it
        schema_version.create(conn)
        MIGRATIONS[0](conn)
        conn.execute(schema_version.insert().values(version=1, applied=sa.func.now()))
    engine.dispose()
    store = Store.open(url)
    with store.begin() as conn:
        assert conn.scalar(sa.select(sa.func.max(schema_version.c.version))) == len(MIGRATIONS)
    columns = {column["name"] for column in sa.inspect(store.engine).get_columns("deliveries")}
    assert "claimed_by" in columns  # version 4 added it to the table version 2 made
    assert store.subscribers() == []
    store.close()
    os.remove(tmp_path / "old.db")


def test_sqlite_keeps_times_as_the_text_sqlalchemy_writes(tmp_path: Path) -> None:
    """The store writes and reads SQLite's times itself, for speed: the text must stay
    what SQLAlchemy's DATETIME writes (stores made before hold it, and SQL compares it)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy.dialects.sqlite.base import DATETIME

    store = Store.open(f"sqlite:///{tmp_path / 'times.db'}")
    kyiv = datetime(2026, 3, 29, 12, 4, 5, tzinfo=ZoneInfo("Europe/Kyiv"))  # EEST, +3
    with store.begin() as conn:
        for version, moment in ((98, kyiv), (99, kyiv.replace(microsecond=7))):
            conn.execute(schema_version.insert().values(version=version, applied=moment))
        raw = conn.exec_driver_sql(
            "select applied from schema_version where version >= 98 order by version"
        ).scalars()
        read = conn.scalars(
            sa.select(schema_version.c.applied).where(schema_version.c.version >= 98)
        )
        assert list(raw) == ["2026-03-29 09:04:05.000000", "2026-03-29 09:04:05.000007"]
        assert list(read) == [kyiv, kyiv.replace(microsecond=7)]
        # 03:30 on 25 October 2026 comes twice in Kyiv; fold tells which (EEST, then EET).
        first = datetime(2026, 10, 25, 3, 30, tzinfo=ZoneInfo("Europe/Kyiv"))
        for version, moment in ((100, first), (101, first.replace(fold=1))):
            conn.execute(schema_version.insert().values(version=version, applied=moment))
        twice = conn.exec_driver_sql(
            "select applied from schema_version where version >= 100 order by version"
        ).scalars()
        assert list(twice) == ["2026-10-25 00:30:00.000000", "2026-10-25 01:30:00.000000"]
    written = DATETIME().bind_processor(store.engine.dialect)
    assert written is not None
    assert written(kyiv.astimezone(UTC).replace(tzinfo=None)) == "2026-03-29 09:04:05.000000"
    store.close()
