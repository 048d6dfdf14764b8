"""Text from outside (tokens in links, subscribers' names, file names) at the edges where
it becomes something else: a subscriber id, a mail header, a line of `newsdrop status` or
of the log. Nothing raises, nothing is taken for what it is not, and no control character
gets through raw."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest

from newsdrop.config import load_settings
from newsdrop.logs import TextFormatter, printable
from newsdrop.mail.compose import DigestMessage, compose
from newsdrop.mail.identity import Identity
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.store import Store
from newsdrop.subscribers import (
    confirm_token,
    confirm_token_subscriber,
    new_subscriber,
    parse_csv,
    token_subscriber,
    unsubscribe_token,
)

from conftest import CliRun

SECRET = b"a secret of enough length"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE_NAME = "Ada\x00 \x1b[2JLovelace\x7f\r\nBcc: all@example.org\x85"
CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.mark.parametrize("digit", ["²", "١", "１", "߁", "𝟏"])
def test_tokens_with_digits_that_are_not_ascii_are_refused_not_raised(digit: str) -> None:
    real = unsubscribe_token(SECRET, 1)
    assert token_subscriber(SECRET, real) == 1
    assert token_subscriber(SECRET, real.replace("1", digit, 1)) is None  # not taken as 1
    assert token_subscriber(SECRET, f"{digit}.x") is None
    confirm = confirm_token(SECRET, 1, expires=2_000_000_000)
    assert confirm_token_subscriber(SECRET, confirm, now=0) == 1
    _number, expires, mac = confirm.split(".")
    for forged in (f"{digit}.{expires}.{mac}", f"1.{digit}.x", f"1.{expires[:-1]}{digit}.{mac}"):
        assert confirm_token_subscriber(SECRET, forged, now=0) is None
    assert token_subscriber(SECRET, "0" + real) is None  # one spelling per id


def test_a_name_loses_its_control_characters_wherever_it_comes_in() -> None:
    added = new_subscriber("ada@example.org", name=HOSTILE_NAME, timezone="UTC")
    assert added.name == "Ada [2JLovelace Bcc: all@example.org"
    good, bad = parse_csv(f'ada@example.org,"{HOSTILE_NAME}",UTC\n', default_timezone="UTC")
    assert bad == [] and good[0].name == added.name


def test_subscribers_add_and_import_store_clean_names(home: Path, run: CliRun) -> None:
    assert run("subscribers", "add", "ada@example.org", "--name", HOSTILE_NAME).exit_code == 0
    (home / "list.csv").write_text('bob@example.org,"Bob\x1b]0;owned\x07"\n')
    assert run("subscribers", "import", str(home / "list.csv")).exit_code == 0
    store = Store.open(load_settings(home).store_url)
    try:
        names = {person.email: person.name for person in store.subscribers()}
    finally:
        store.close()
    assert names == {
        "ada@example.org": "Ada [2JLovelace Bcc: all@example.org",
        "bob@example.org": "Bob ]0;owned",
    }


def test_a_name_stored_raw_by_an_older_version_never_reaches_the_to_header() -> None:
    person = Subscriber(
        id=7, email="ada@example.org", name=HOSTILE_NAME, timezone="UTC", frequency="daily",
        tags=(), state=SubscriberState.ACTIVE, created=NOW, changed=NOW, activated=NOW,
    )  # fmt: skip
    data = compose(
        DigestMessage(subject="News", text="Hello", html="<p>Hello</p>", html_part=None),
        identity=Identity(sender="News <news@example.org>", reply_to="", host="example.org"),
        subscriber=person,
        delivery_id=1,
        sent=NOW,
        list_id="digest.example.org",
        unsubscribe="<https://example.org/unsubscribe?token=7.x>",
    )
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not CONTROLS.search(head.decode("ascii"))
    assert b"\nBcc:" not in head and b"\r\nBcc" not in head
    message = message_from_bytes(data, policy=email_policy.default)
    assert message["To"].addresses[0].display_name == "Ada [2JLovelace Bcc: all@example.org"
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    assert message["Bcc"] is None


def test_printable_escapes_what_could_forge_a_line_or_drive_a_terminal() -> None:
    assert printable("a\x1b[31mb\nc\rd\te\x00\x7f\x9b\u202eé ✓") == (
        "a\\x1b[31mb\\nc\\rd\\te\\x00\\x7f\\x9b\\u202eé ✓"
    )


def test_a_file_name_cannot_forge_a_text_log_line() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("newsdrop.test_untrusted_input")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        name = "a.md\n12:00:00 error   the store was deleted\x1b[2J"
        logger.warning("problem: %s", "empty file", extra={"path": name})
        logger.warning("problem in %s", name)
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert all("\x1b" not in line for line in lines)
    assert lines[0].endswith("path=a.md\\n12:00:00 error   the store was deleted\\x1b[2J")


def test_status_and_ingest_show_a_hostile_file_name_escaped(home: Path, run: CliRun) -> None:
    name = "evil\x1b[31m\n12:00 problems: 0\u202e.md"
    (home / "seeds" / name).write_text("")  # empty: a problem, named in both outputs
    ingest = run("ingest")
    status = run("status").output
    for output in (ingest.output, status):
        assert "\x1b" not in output and "\u202e" not in output
        assert "evil\\x1b[31m\\n12:00 problems: 0\\u202e.md" in output
    assert [line for line in status.splitlines() if line.startswith("problems:")] == ["problems: 1"]
