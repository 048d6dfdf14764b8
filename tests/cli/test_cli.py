"""The newsdrop command as a user runs it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, CliRun

pytestmark = pytest.mark.both_stores  # every test here runs on SQLite and PostgreSQL

NEWSDROP = [sys.executable, "-m", "newsdrop"]


def newsdrop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*NEWSDROP, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_init_makes_an_instance_with_a_private_secret(tmp_path: Path) -> None:
    result = newsdrop("init", str(tmp_path / "news"))
    assert result.returncode == 0, result.stderr
    for name in ("seeds", "feeds", "digest", "state", "config/newsdrop.toml"):
        assert (tmp_path / "news" / name).exists()
    secret = tmp_path / "news" / "state" / "secret"
    assert secret.stat().st_mode & 0o077 == 0 and len(secret.read_text().strip()) >= 32
    assert (tmp_path / "news" / "state").stat().st_mode & 0o077 == 0  # the subscriber list
    assert "base_url" in result.stdout and "run" in result.stdout
    again = newsdrop("init", str(tmp_path / "news"))
    assert again.returncode == 2 and "already" in again.stderr and "Traceback" not in again.stderr


def test_init_adds_to_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n*.log")
    assert newsdrop("init", str(tmp_path)).returncode == 0
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n*.log\nfeeds/\nstate/\n"


def test_a_folder_that_is_not_an_instance_is_refused(tmp_path: Path) -> None:
    result = newsdrop("--home", str(tmp_path / "typo"), "status")
    assert result.returncode == 2 and "is not a newsdrop instance" in result.stderr
    assert not (tmp_path / "typo").exists()


def test_postgres_without_its_driver_says_what_to_install(tmp_path: Path) -> None:
    newsdrop("init", str(tmp_path / "n"))
    result = newsdrop(
        "--home", str(tmp_path / "n"), "status",
        env={"NEWSDROP_STORE__URL": "postgresql+psycopg://u@127.0.0.1:1/x"},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "newsdrop[postgres]" in result.stderr or "cannot open the store" in result.stderr


def test_ingest_list_status_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "news"
    assert newsdrop("init", str(home)).returncode == 0
    shutil.copy(ROOT / "seeds" / "bakhmut-counterattacks.txt", home / "seeds")
    (home / "seeds" / "bad.txt").write_bytes(bytes(range(256)))
    ingest = newsdrop("--home", str(home), "ingest", "--json")
    assert ingest.returncode == 0, ingest.stderr
    summary = json.loads(ingest.stdout)
    assert summary["added"] == 1 and summary["problems"][0]["path"] == "bad.txt"
    assert newsdrop("--home", str(home), "ingest", "--strict").returncode == 1
    listed = newsdrop("--home", str(home), "entries", "list", "--json")
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(records) == 1
    record = records[0]
    assert record["source"] == "bakhmut-counterattacks.txt" and record["id"].startswith("tag:")
    assert set(record) >= {
        "id", "slug", "title", "summary", "content_text", "content_html", "published",
        "updated", "tags", "lang", "source", "word_count",
    }  # fmt: skip
    status = newsdrop("--home", str(home), "status")
    assert "1 published" in status.stdout and "bad.txt" in status.stdout
    status_json = json.loads(newsdrop("--home", str(home), "status", "--json").stdout)
    assert status_json["entries"]["problems"] == 1


def test_config_error_exits_2_with_one_sentence(tmp_path: Path) -> None:
    home = tmp_path / "news"
    newsdrop("init", str(home))
    result = newsdrop("--home", str(home), "status", env={"NEWSDROP_MAIL__PORT": "many"})
    assert result.returncode == 2
    assert "NEWSDROP_MAIL__PORT" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_usage_error_exits_2(tmp_path: Path) -> None:
    newsdrop("init", str(tmp_path))
    result = newsdrop("--home", str(tmp_path), "entries", "list", "--limit", "zero")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_store_that_cannot_open_is_one_clear_sentence(tmp_path: Path) -> None:
    newsdrop("init", str(tmp_path))
    result = newsdrop(
        "--home", str(tmp_path), "status", env={"NEWSDROP_STORE__URL": "sqlite:////proc/nope/x.db"}
    )
    assert result.returncode == 1
    assert "cannot open the store" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command", [[], ["init"], ["ingest"], ["entries", "list"], ["status"], ["check"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    result = newsdrop(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_check_reports_template_errors_and_local_authority(home: Path, run: CliRun) -> None:
    (home / "digest" / "digest.html.j2").write_text("{% for x in %}")
    result = run("check")
    assert result.exit_code == 2
    assert "digest.html.j2:1: template syntax error" in result.output
    assert "tag_authority is '127.0.0.1'" in result.output


@pytest.mark.parametrize("key", ["missing", "garbage"])
def test_a_bad_dkim_key_is_named_before_any_digest_is_made(home: Path, key: str) -> None:
    if key == "garbage":
        (home / "dkim.pem").write_text("garbage\n")
    env = {
        "NEWSDROP_MAIL__DKIM_SELECTOR": "news",
        "NEWSDROP_MAIL__DKIM_DOMAIN": "example.org",
        "NEWSDROP_MAIL__DKIM_KEY_FILE": "dkim.pem",
    }
    checked = newsdrop("--home", str(home), "check", env=env)
    sent = newsdrop("--home", str(home), "digest", "send", "--now", env=env)
    for result in (checked, sent):
        assert result.returncode == 2, result.stderr
        output = result.stdout + result.stderr
        assert "[mail] dkim_key_file = 'dkim.pem'" in output and "Traceback" not in output
    assert ("cannot read" if key == "missing" else "not a usable PEM private key") in sent.stderr


def test_check_passes_on_the_repository_instance() -> None:
    result = newsdrop("--home", str(ROOT), "check")
    assert result.returncode == 0 and "warning" not in result.stdout + result.stderr


def test_check_warns_when_the_local_base_url_is_not_where_the_server_listens(
    home: Path,
) -> None:
    result = newsdrop("--home", str(home), "check", env={"NEWSDROP_SERVER__PORT": "9999"})
    assert result.returncode == 0
    assert "base_url is http://127.0.0.1:8080/ but the server listens on 127.0.0.1:9999" in (
        result.stdout + result.stderr
    )
