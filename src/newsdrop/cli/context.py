"""What every command shares: the instance it works on (settings read once, the store opened
per use), and the small helpers of their output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from newsdrop.config import CONFIG_FILE, Settings, load_settings
from newsdrop.errors import ConfigError
from newsdrop.store import Store


@dataclass(slots=True)
class Context:
    home: Path
    debug: bool
    verbose: int = 0
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            if not (self.home / CONFIG_FILE).exists() and not (self.home / "seeds").is_dir():
                raise ConfigError(
                    f"{self.home} is not a newsdrop instance (it has no {CONFIG_FILE} and no "
                    f"seeds/); create one with `newsdrop init {self.home}`, or pass --home"
                )
            self._settings = load_settings(self.home)
        return self._settings

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store.open(self.settings.store_url)
        try:
            yield store
        finally:
            store.close()


pass_context = click.make_pass_decorator(Context)


@contextmanager
def progress_bar(*, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing when output is piped."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("ingest", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
