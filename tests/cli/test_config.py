"""config: one validated settings object; every mistake named precisely."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from newsdrop.config import SECTIONS, Settings, load_settings
from newsdrop.errors import ConfigError


def write_config(home: Path, text: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "newsdrop.toml").write_text(text, encoding="utf-8")


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.feeds.max_entries == 50
    assert settings.normalize.max_bytes == 5 * 1024 * 1024
    assert settings.mail.transport == "maildir" and settings.mail.from_ == "newsdrop@localhost"
    assert settings.site.tag_authority == "127.0.0.1" and settings.site.authority_is_local
    assert settings.store_url == f"sqlite:///{tmp_path / 'state' / 'newsdrop.db'}"
    assert settings.digest.send_time.hour == 7


def test_file_values_and_env_overrides(tmp_path: Path) -> None:
    write_config(tmp_path, '[site]\nbase_url = "https://news.example.org"\n[mail]\nport = 25\n')
    settings = load_settings(
        tmp_path,
        environ={
            "NEWSDROP_MAIL__PORT": "2525",
            "NEWSDROP_NORMALIZE__BOILERPLATE_MARKERS": '["Buy now"]',
            "NEWSDROP_DIGEST__SEND_AT": "06:30:15",
            "NEWSDROP_HOME": "/ignored",  # not a section override
        },
    )
    assert settings.mail.port == 2525
    assert settings.normalize.boilerplate_markers == ("Buy now",)
    assert settings.site.base_url == "https://news.example.org/"
    assert (
        settings.site.tag_authority == "news.example.org" and not settings.site.authority_is_local
    )
    assert settings.digest.send_at == "06:30:15"


@pytest.mark.parametrize(
    ("toml", "environ", "expected"),
    [
        ("[mail]\nprot = 25\n", {}, "unknown key 'prot' in [mail]; valid keys are transport, from"),
        ("[mial]\n", {}, "unknown section [mial]"),
        ("[mail]\nport = 'abc'\n", {}, "[mail] port = 'abc' is invalid"),
        ("[site]\ntimezone = 'Mars/Base'\n", {}, "must be an IANA time zone"),
        ("[digest]\nsend_at = '25:00'\n", {}, "[digest] send_at = '25:00' is invalid"),
        ("[site]\nbase_url = 'example.org'\n", {}, "must be an absolute http"),
        ("[digest]\nweekday = 'someday'\n", {}, "'monday'"),
        ("[mail]\nfrom = 'not an address'\n", {}, "[mail] from = 'not an address' is invalid"),
        (
            "",
            {"NEWSDROP_MAIL__PORT": "x"},
            "environment variable NEWSDROP_MAIL__PORT: [mail] port = 'x'",
        ),
        (
            "",
            {"NEWSDROP_NOPE__X": "1"},
            "environment variable NEWSDROP_NOPE__X: unknown section 'nope'",
        ),
        ("[site\n", {}, "not valid TOML"),
        (
            "[mail]\ndkim_selector = 'news'\n",
            {},
            "DKIM needs dkim_selector, dkim_domain and dkim_key_file",
        ),
        (
            "[site]\ntag_authority = 'my site.org'\n",
            {},
            "[site] tag_authority = 'my site.org' is invalid",
        ),
        (
            "[normalize]\nboilerplate_markers = 'Buy now'\n",
            {},
            'TOML array of strings, such as ["Buy now"',
        ),
    ],
)
def test_errors_name_the_place_the_key_and_the_fix(
    tmp_path: Path, toml: str, environ: dict[str, str], expected: str
) -> None:
    write_config(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ=environ)
    message = str(caught.value)
    assert expected in message
    if not environ:
        assert str(tmp_path / "config" / "newsdrop.toml") in message


def test_packaged_defaults_document_every_key_and_load_cleanly(tmp_path: Path) -> None:
    text = resources.files("newsdrop").joinpath("defaults/newsdrop.toml").read_text("utf-8")
    documented: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if header := re.match(r"^\[(\w+)\]", line):
            section = header.group(1)
            documented[section] = set()
        elif key := re.match(r"^# (\w+) = ", line):
            documented[section].add(key.group(1))
    assert set(documented) == set(SECTIONS)
    for name in SECTIONS:
        model = Settings.model_fields[name].annotation
        keys = {info.alias or key for key, info in model.model_fields.items()}  # type: ignore[union-attr]
        assert documented[name] == keys, name
    write_config(tmp_path, text)
    assert (
        load_settings(tmp_path, environ={}).site == load_settings(tmp_path / "x", environ={}).site
    )


def test_uncommenting_a_documented_line_gives_the_default_never_something_else(
    tmp_path: Path,
) -> None:
    """The file says: remove the leading '# ' to change a setting. Done to any one line
    as it stands, that must load as the default, or fail loudly (a list too long to
    show), never quietly mean something else."""
    text = resources.files("newsdrop").joinpath("defaults/newsdrop.toml").read_text("utf-8")
    defaults = load_settings(tmp_path / "none", environ={})
    lines = text.splitlines()
    section = ""
    for number, line in enumerate(lines):
        if header := re.match(r"^\[(\w+)\]", line):
            section = header.group(1)
        if not (key := re.match(r"^# (\w+) = ", line)):
            continue
        edited = [*lines[:number], line[2:], *lines[number + 1 :]]
        write_config(tmp_path, "\n".join(edited) + "\n")
        name = key.group(1)
        if name == "boilerplate_markers":
            with pytest.raises(ConfigError, match="not valid TOML"):
                load_settings(tmp_path, environ={})
            continue
        loaded = load_settings(tmp_path, environ={})
        field = "from_" if name == "from" else name
        assert getattr(getattr(loaded, section), field) == getattr(
            getattr(defaults, section), field
        ), f"[{section}] {name}"


def test_env_value_that_looks_like_a_list_is_text_for_a_text_key(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"NEWSDROP_SITE__TITLE": "[1, 2]"})
    assert settings.site.title == "[1, 2]"
