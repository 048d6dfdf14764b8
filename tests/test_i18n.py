"""The words readers see go through gettext: the committed catalogue template lists every
one of them (Babel extracts them again here), and a translation added as a catalogue
changes the pages, their messages and the mails' phrases alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

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
    folder = tmp_path / "locale" / "uk" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.mo").open("wb") as handle:
        write_mo(handle, catalog)
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
