"""The words readers see go through gettext: the committed catalogue template lists every
one of them (Babel extracts them again here), and a translation added as a catalogue
changes the pages, their messages and the mails' phrases alike."""

from __future__ import annotations

import mailbox
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from newsdrop import i18n, templates
from newsdrop.model import SubscriberState
from newsdrop.subscribers import manage_url, new_subscriber

from appserver import AppServer

ROOT = Path(__file__).resolve().parents[1]
POT = ROOT / "src" / "newsdrop" / "locale" / "messages.pot"


def msgids(path: Path) -> set[object]:
    with path.open("rb") as handle:
        return {message.id for message in read_po(handle) if message.id}


def test_the_committed_catalogue_template_lists_every_message(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "--no-location", "--omit-header", "-o", str(fresh), "."],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    missing = msgids(fresh) - msgids(POT)
    assert not missing, f"run `make messages`: {sorted(map(str, missing))[:5]}"
    assert {"Your subscription", "How often", "Check your inbox"} <= msgids(POT)
    assert ("%(num)d week", "%(num)d weeks") in msgids(POT)  # plurals as pairs


UKRAINIAN = {
    "Your subscription": "Ваша підписка",
    "How often": "Як часто",
    "This link does not work": "Це посилання не працює",
    "you get {chosen}.": "ви отримуєте {chosen}.",
    "a daily digest at {time} ({zone})": "щоденний дайджест о {time} ({zone})",
    "{what}, on {topics}": "{what}, на теми {topics}",
}


@pytest.fixture
def ukrainian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    catalog = Catalog(locale="uk")
    for source, translated in UKRAINIAN.items():
        catalog.add(source, translated)
    folder = tmp_path / "locale"
    folder.mkdir(parents=True)
    with (folder / "uk.po").open("wb") as handle:
        write_po(handle, catalog)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path / "locale")
    i18n.translations.cache_clear()
    templates.environment.cache_clear()
    yield
    i18n.translations.cache_clear()
    templates.environment.cache_clear()


def test_a_catalogue_translates_the_templates_the_messages_and_the_phrases(
    home: Path, ukrainian: None
) -> None:
    with AppServer(home, {"NEWSDROP_SITE__LANGUAGE": "uk"}) as server:
        wanted = new_subscriber("olena@example.org", timezone="Europe/Kyiv", tags="war")
        (person,), _ = server.store.add_subscribers(
            [wanted], now=datetime.now(UTC), state=SubscriberState.ACTIVE
        )
        page = server.http.get("/" + manage_url("", b"a test secret of enough length", person))
        assert page.status_code == 200
        assert "<h2>Ваша підписка</h2>" in page.text  # a template's words
        assert "<legend>Як часто</legend>" in page.text
        assert "ви отримуєте щоденний дайджест о 07:00 (Europe/Kyiv), на теми war." in page.text
        assert 'lang="uk"' in page.text
        refused = server.http.get("/manage/1.x")
        assert "Це посилання не працює" in refused.text  # the service's own message
        assert "Pause for" in page.text  # what the catalogue lacks stays English


SHIPPED = ("uk", "de", "fr", "es", "ar")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


@pytest.mark.parametrize("language", SHIPPED)
def test_every_shipped_catalogue_translates_every_message_keeping_its_placeholders(
    language: str,
) -> None:
    with (ROOT / "src" / "newsdrop" / "locale" / f"{language}.po").open("rb") as handle:
        catalog = read_po(handle)
    found = {message.id: message for message in catalog if message.id}
    assert set(found) >= msgids(POT), sorted(map(str, msgids(POT) - set(found)))[:5]
    for message in found.values():
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy and all(strings), message.id
        wanted = set(PLACEHOLDER.findall(ids[0])) | set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) <= wanted, (message.id, string)
        if isinstance(message.id, tuple):  # plurals: as many forms as the language has
            assert len(strings) == catalog.num_plurals, message.id


DAILY_ARCHIVE = {"uk": "Архів", "de": "archiv", "fr": "Archives", "es": "Archivo", "ar": "الأرشيف"}
JANUARY = {"uk": "січня", "de": "Januar", "fr": "janvier", "es": "enero", "ar": "يناير"}


@pytest.mark.parametrize("language", SHIPPED)
def test_a_page_and_a_digest_in_each_shipped_language(
    home: Path, run: Callable[..., Any], language: str
) -> None:
    from email import message_from_bytes, policy

    env = {"NEWSDROP_SITE__LANGUAGE": language}
    assert run("subscribers", "add", "reader@example.org", env=env).exit_code == 0
    (home / "seeds" / "a.md").write_text(
        "---\ntitle: A story\ndate: 2026-01-15T07:05:00Z\n---\nText of the story.\n"
    )
    assert run("ingest", env=env).exit_code == 0 and run("build", env=env).exit_code == 0
    page = (home / "feeds" / "index.html").read_text(encoding="utf-8")
    assert f'lang="{language}"' in page and JANUARY[language] in page
    assert "Daily archive" not in page and "Subscribe:" not in page
    archive = (home / "feeds" / "digests" / "index.html").read_text(encoding="utf-8")
    assert DAILY_ARCHIVE[language] in archive, archive
    assert run("digest", "send", "--now", env=env).exit_code == 0
    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    (mail,) = [message_from_bytes(box.get_bytes(k), policy=policy.default) for k in box.iterkeys()]
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "You receive this digest" not in text and "A story" in text
    assert ("rtl" if language == "ar" else "ltr") in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_an_instance_catalogue_wins_and_check_reports_what_one_lacks(
    home: Path, run: Callable[..., Any]
) -> None:
    catalog = Catalog(locale="pl")
    catalog.add("Daily archive", "Archiwum dzienne")
    (home / "digest" / "locale").mkdir(parents=True)
    with (home / "digest" / "locale" / "pl.po").open("wb") as handle:
        write_po(handle, catalog)
    env = {"NEWSDROP_SITE__LANGUAGE": "pl"}
    assert run("build", env=env).exit_code == 0
    page = (home / "feeds" / "index.html").read_text(encoding="utf-8")
    assert "Archiwum dzienne" in page and "Subscribe:" in page  # the rest stays English
    checked = run("check", env=env).output
    assert "pl.po: " in checked and f"{len(msgids(POT)) - 1} of {len(msgids(POT))}" in checked
    assert "has no catalogue" in run("check", env={"NEWSDROP_SITE__LANGUAGE": "fi"}).output


def test_a_subscriber_gets_mails_in_the_language_their_browser_asked_for(home: Path) -> None:
    from email import message_from_bytes, policy

    from newsdrop.config import load_settings
    from newsdrop.mail.confirmations import confirmation_message
    from newsdrop.model import Site

    with AppServer(home) as server:
        headers = {"accept-language": "uk-UA,uk;q=0.9,en;q=0.5"}
        page = server.http.get("/subscribe", headers=headers)
        assert '<option value="uk" lang="uk" selected>українська</option>' in page.text
        answer = server.http.post(
            "/subscribe", data={"email": "olena@example.org"}, headers=headers
        )
        assert answer.status_code == 200
        person = server.store.subscriber("olena@example.org")
        assert person is not None and person.language == "uk"
        chose = server.http.post(
            "/subscribe", data={"email": "hans@example.org", "language": "de"}, headers=headers
        )
        assert (
            chose.status_code == 200
            and server.store.subscriber("hans@example.org").language == "de"
        )  # type: ignore[union-attr]
        wrong = server.http.post("/subscribe", data={"email": "x@example.org", "language": "tlh"})
        assert wrong.status_code == 400 and "Choose one of the languages listed." in wrong.text
    settings = load_settings(home)
    message = message_from_bytes(
        confirmation_message(
            settings, Site.from_settings(settings), person=person, email=person.email,
            url="https://x/confirm", now=datetime.now(UTC), secret=b"a test secret of enough length",
        ),
        policy=policy.default,
    )  # fmt: skip
    assert str(message["Subject"]).endswith("підтвердіть підписку")  # their language, not en


def test_the_digest_comes_in_the_subscribers_language_and_the_cli_sets_it(
    home: Path, run: Callable[..., Any]
) -> None:
    from email import message_from_bytes, policy

    assert run("subscribers", "add", "a@example.org", "--language", "uk").exit_code == 0
    assert run("subscribers", "add", "b@example.org").exit_code == 0
    refused = run("subscribers", "add", "c@example.org", "--language", "tlh")
    assert refused.exit_code == 2 and "mails can be written in en, ar, de" in refused.output
    assert run("subscribers", "edit", "a@example.org", "--name", "Olena").exit_code == 0
    (home / "seeds" / "a.md").write_text("---\ntitle: A story\n---\nText.\n")
    assert run("ingest").exit_code == 0 and run("digest", "send", "--now").exit_code == 0
    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    texts = {}
    for key in box.iterkeys():
        mail = message_from_bytes(box.get_bytes(key), policy=policy.default)
        body = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        texts[mail["To"].addresses[0].addr_spec] = body
    assert "Ви отримуєте цей дайджест" in texts["a@example.org"]  # kept through the edit
    assert "You receive this digest" in texts["b@example.org"]


@pytest.mark.parametrize(
    ("language", "day", "count"),
    [
        ("en", "15 January 2030", "12,345"),
        ("en-US", "January 15, 2030", "12,345"),
        ("uk", "15 січня 2030\u202fр.", "12\xa0345"),
        ("de", "15. Januar 2030", "12.345"),
        ("fr", "15 janvier 2030", "12\u202f345"),
        ("xx", "15 January 2030", "12,345"),  # a language CLDR does not know: English
    ],
)
def test_dates_and_numbers_are_written_as_each_language_writes_them(
    language: str, day: str, count: str
) -> None:
    assert i18n.day_name(datetime(2030, 1, 15, tzinfo=UTC), language) == day
    assert i18n.number(12345, language) == count


def test_accept_language_is_read_by_quality_and_bounded() -> None:
    available = ("en", "uk", "de", "fr")
    assert i18n.accepted_language("de;q=0.5, fr", available) == "fr"
    assert i18n.accepted_language("uk-UA,uk;q=0.9,en;q=0.8", available) == "uk"
    assert i18n.accepted_language("zh-CN, *;q=0.1", available) == ""
    assert i18n.accepted_language("x;q=abc," * 10_000 + "de", available) == ""  # past 20 parts


def test_the_sites_language_can_be_chosen_over_the_browsers(home: Path) -> None:
    with AppServer(home) as server:
        headers = {"accept-language": "uk"}
        data = {"email": "anna@example.org", "language": "site"}
        assert server.http.post("/subscribe", data=data, headers=headers).status_code == 200
        person = server.store.subscriber("anna@example.org")
        assert person is not None and person.language == ""


def test_a_broken_instance_message_shows_in_english_and_check_says_why(
    home: Path, run: Callable[..., Any]
) -> None:
    catalog = Catalog(locale="de")
    catalog.add("Published on %(day)s", "Veröffentlicht am %(tag)s", flags=["python-format"])
    catalog.add("Daily archive", "Archiv nach Tagen")
    (home / "digest" / "locale").mkdir(parents=True)
    with (home / "digest" / "locale" / "de.po").open("wb") as handle:
        write_po(handle, catalog)
    env = {"NEWSDROP_SITE__LANGUAGE": "de"}
    (home / "seeds" / "a.md").write_text("---\ntitle: A story\n---\nText.\n")
    assert run("ingest", env=env).exit_code == 0 and run("build", env=env).exit_code == 0
    day = next((home / "feeds" / "digests").glob("20*.html")).read_text(encoding="utf-8")
    assert "Veröffentlicht am " in day  # the shipped catalogue's, not the broken one
    assert "Archiv nach Tagen" in day  # the instance's words that are right still serve
    assert "unknown named placeholder 'tag'" in run("check", env=env).output
