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

from smtpd import SmtpServer  # noqa: E402  (tests/smtpd.py: a real SMTP server)

from newsdrop.cli.main import cli  # noqa: E402
from newsdrop.config import load_settings  # noqa: E402

pytest_plugins = ["chrome"]  # the `browser` fixture, for every folder
from newsdrop.ingest.run import IngestReport, ingest  # noqa: E402
from newsdrop.model import Hints  # noqa: E402
from newsdrop.publish.build import BuildReport, build  # noqa: E402
from newsdrop.store import Store  # noqa: E402

import pg  # noqa: E402  (tests/pg.py: a real PostgreSQL server)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def corpus_path(*parts: str) -> Path:
    """A folder of ../shared/corpus, or a skip that says why (a user's fresh clone has none)."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test corpus is not beside this clone")
    return path


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd, STARTTLS and AUTH), for this test."""
    server = SmtpServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hints() -> Hints:
    from newsdrop.config import DEFAULT_BOILERPLATE_MARKERS

    return Hints(
        first_seen=NOW,
        tag_authority="news.example.org",
        boilerplate_markers=DEFAULT_BOILERPLATE_MARKERS,
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests in modules marked ``both_stores`` run once on SQLite and once on PostgreSQL."""
    if metafunc.definition.get_closest_marker("both_stores") and "home" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["sqlite", "postgresql"])


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.Server]:
    try:
        server = pg.Server()
    except LookupError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def home(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A new instance made by `newsdrop init`; on PostgreSQL its store is a new database,
    given by NEWSDROP_STORE__URL (which subprocesses inherit, and which a test's own
    ``monkeypatch.undo()`` leaves alone)."""
    with pytest.MonkeyPatch.context() as patch:
        if backend == "postgresql":
            server: pg.Server = request.getfixturevalue("postgres")
            patch.setenv("NEWSDROP_STORE__URL", server.database())
        home = tmp_path / "news"
        result = CliRunner().invoke(cli, ["init", str(home)])
        assert result.exit_code == 0, result.output
        yield home


CliRun = Callable[..., Result]


@pytest.fixture
def run(home: Path) -> CliRun:
    """Run a newsdrop command in-process against the test instance."""

    def invoke(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> Result:
        return CliRunner().invoke(
            cli, ["--home", str(home), *args], env=env, input=input, catch_exceptions=False
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
def do_build(home: Path) -> Callable[..., BuildReport]:
    """Build the test instance at a given moment (default NOW), in full if asked."""

    def go(now: datetime = NOW, *, full: bool = False) -> BuildReport:
        settings = load_settings(home)
        store = Store.open(settings.store_url)
        try:
            return build(settings, store, now=now, full=full)
        finally:
            store.close()

    return go


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store.open(load_settings(home).store_url)
    yield opened
    opened.close()
