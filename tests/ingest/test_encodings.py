"""Legacy encodings of documents that are not UTF-8 (issue #17): short texts guessed by their
language as well as their bytes, over a corpus of short texts in seven encodings written for
these tests (tests/data/world/short_texts.json, CC0); a document's own declaration and
[normalize] encoding override the guess."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from newsdrop.config import load_settings
from newsdrop.errors import ConfigError, UndecodableError
from newsdrop.ingest.normalize import configured_encoding, normalize
from newsdrop.ingest.text import decode
from newsdrop.model import Hints

from conftest import CliRun

CORPUS = Path(__file__).resolve().parents[1] / "data" / "world" / "short_texts.json"


def corpus_accuracy() -> tuple[dict[str, float], float]:
    texts = json.loads(CORPUS.read_text(encoding="utf-8"))
    right: Counter[str] = Counter()
    for encoding, items in texts.items():
        for item in items:
            right[encoding] += decode(item["text"].encode(encoding), "short.txt") == item["text"]
    per = {encoding: right[encoding] / len(items) for encoding, items in texts.items()}
    total = sum(right.values()) / sum(len(items) for items in texts.values())
    return per, total


def test_short_texts_are_decoded_exactly_in_95_percent_of_the_corpus() -> None:
    per, total = corpus_accuracy()
    print("per encoding:", {k: f"{v:.0%}" for k, v in per.items()}, f"overall {total:.1%}")
    assert total >= 0.95
    assert min(per.values()) >= 0.85  # no encoding left behind


def test_the_issues_windows_1252_example_reads_right(hints: Hints) -> None:
    entry = normalize("café naïve".encode("cp1252"), "note.txt", hints)
    assert entry.title == "café naïve"


def test_front_matter_encoding_overrides_the_guess(hints: Hints) -> None:
    text = "---\nencoding: koi8-u\n---\nЇжак їсть ґрунт.\n"
    entry = normalize(text.encode("koi8-u"), "note.md", hints)
    assert entry.content_text == "Їжак їсть ґрунт."


def test_a_web_pages_meta_charset_is_honoured(hints: Hints) -> None:
    page = '<html><head><meta charset="windows-1251"><title>Привіт</title></head><body><p>Добрий день, світе.</p></body></html>'
    assert normalize(page.encode("cp1251"), "page.html", hints).title == "Привіт"


def test_a_folders_configured_encoding_applies_to_the_files_in_it(hints: Hints) -> None:
    folders = (("", "cp1252"), ("archive/ru", "koi8-r"))
    assert configured_encoding("archive/ru/2001/a.txt", folders) == "koi8-r"
    assert configured_encoding("archive/rus.txt", folders) == "cp1252"
    assert configured_encoding("b.txt", (("archive", "cp1250"),)) == ""
    text = "Мир".encode("koi8-r")  # three bytes: any single-byte encoding reads them
    entry = normalize(text, "archive/ru/a.txt", replace(hints, encodings=folders))
    assert entry.title == "Мир"


def test_utf8_wins_over_any_configured_encoding(hints: Hints) -> None:
    entry = normalize("Київ".encode(), "a.txt", replace(hints, encodings=(("", "cp1251"),)))
    assert entry.title == "Київ"


def test_a_declared_encoding_that_does_not_fit_is_a_problem_naming_it(hints: Hints) -> None:
    with pytest.raises(UndecodableError, match=r"shift_jis.*its own declaration"):
        normalize(b"---\nencoding: shift_jis\n---\n\x81\x20\xff\n", "a.md", hints)
    with pytest.raises(UndecodableError, match="not an encoding Python knows"):
        normalize(b"---\nencoding: martian\n---\n\xe9\n", "a.md", hints)


def test_an_unknown_configured_encoding_is_a_config_error(home: Path) -> None:
    (home / "config" / "newsdrop.toml").write_text(
        '[normalize]\nencoding = { "old" = "klingon-8" }\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="'klingon-8' \\(for 'old'\\) is not an encoding"):
        load_settings(home)


def test_a_configured_folder_encoding_reaches_the_worker(home: Path, run: CliRun) -> None:
    (home / "config" / "newsdrop.toml").write_text(
        '[normalize]\nencoding = { "ru" = "koi8-r" }\n', encoding="utf-8"
    )
    (home / "seeds" / "ru").mkdir()
    (home / "seeds" / "ru" / "a.md").write_bytes("# Мир\n\nТекст.\n".encode("koi8-r"))
    assert run("ingest").exit_code == 0 and run("build").exit_code == 0
    assert "<title>Мир</title>" in (home / "feeds" / "atom.xml").read_text(encoding="utf-8")


def test_a_web_page_whose_meta_charset_is_wrong_is_guessed_instead(hints: Hints) -> None:
    page = '<html><head><meta charset="utf-8"><title>Crème brûlée</title></head><body><p>Un café, s’il vous plaît.</p></body></html>'
    assert normalize(page.encode("cp1252"), "page.html", hints).title == "Crème brûlée"


def test_a_meta_charset_label_is_read_as_browsers_read_it(hints: Hints) -> None:
    page = '<html><head><meta charset="iso-8859-1"><title>It’s “quoted”, for €5</title></head><body><p>Café au lait, s’il vous plaît.</p></body></html>'
    entry = normalize(page.encode("cp1252"), "page.html", hints)  # iso-8859-1 means windows-1252
    assert entry.title == "It’s “quoted”, for €5"


def test_a_bytes_codec_is_not_an_encoding(home: Path) -> None:
    (home / "config" / "newsdrop.toml").write_text('[normalize]\nencoding = "base64"\n')
    with pytest.raises(ConfigError, match="'base64' is not an encoding"):
        load_settings(home)
    (home / "config" / "newsdrop.toml").write_text("[normalize]\nencoding = 5\n")
    with pytest.raises(ConfigError, match="must be an encoding's name"):
        load_settings(home)
