"""Shared fixtures: a fresh instance per test, the CLI in-process, and the shared corpus."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT / "benchmarks"))  # scoring.py is shared with the benchmarks

from newsdrop.cli import cli  # noqa: E402
from newsdrop.config import load_settings  # noqa: E402
from newsdrop.ingest import IngestReport, ingest  # noqa: E402
from newsdrop.model import Hints  # noqa: E402
from newsdrop.store import Store  # noqa: E402

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def corpus_path(*parts: str) -> Path:
    """A folder of ../shared/corpus, or a skip that says why (a user's fresh clone has none)."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test corpus is not beside this clone")
    return path


@pytest.fixture
def hints() -> Hints:
    from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS

    return Hints(
        first_seen=NOW,
        tag_authority="news.example.org",
        boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A new instance made by `newsdrop init`."""
    home = tmp_path / "news"
    result = CliRunner().invoke(cli, ["init", str(home)])
    assert result.exit_code == 0, result.output
    return home


CliRun = Callable[..., Result]


@pytest.fixture
def run(home: Path) -> CliRun:
    """Run a newsdrop command in-process against the test instance."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(
            cli, ["--home", str(home), *args], env=env, catch_exceptions=False
        )

    return invoke


@pytest.fixture
def do_ingest(home: Path) -> Callable[..., IngestReport]:
    """Ingest the test instance at a given moment (default NOW) and return the report."""

    def go(now: datetime = NOW) -> IngestReport:
        settings = load_settings(home)
        store = Store.open(settings.store_url)
        try:
            return ingest(settings, store, now=now)
        finally:
            store.close()

    return go


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store.open(load_settings(home).store_url)
    yield opened
    opened.close()
