"""The instance lock (one `newsdrop run` per instance folder) and the status file `newsdrop
status` reads."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Iterator
from typing import Any

from newsdrop.config import Settings
from newsdrop.errors import UsageError

log = logging.getLogger("newsdrop.service")


LOCK_FILE = "run.lock"


STATUS_FILE = "service.json"


def state_file(settings: Settings, name: str) -> str:
    """state/ file names are per instance when [cluster] instance names one."""
    instance = settings.cluster.instance
    return name if not instance else name.replace(".", f"-{instance}.", 1)


@contextlib.contextmanager
def instance_lock(settings: Settings) -> Iterator[None]:
    """One `newsdrop run` per instance: an flock on state/run.lock (run-<instance>.lock
    with [cluster] instance), released by the kernel when the process ends however it
    ends (no stale lock after a SIGKILL)."""
    state = settings.state_dir
    state.mkdir(parents=True, exist_ok=True)
    path = state / state_file(settings, LOCK_FILE)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        other = read_status(settings) or {}
        raise UsageError(
            f"another `newsdrop run` (pid {other.get('pid', '?')}) is already running on "
            f"{settings.home} (it holds {path}); stop it first, or use that one"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def read_status(settings: Settings) -> dict[str, Any] | None:
    try:
        path = settings.state_dir / state_file(settings, STATUS_FILE)
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def running_status(settings: Settings) -> dict[str, Any] | None:
    """What the service running on this instance last reported; None when none runs."""
    path = settings.state_dir / state_file(settings, LOCK_FILE)
    try:
        handle = path.open("r")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_status(settings) or {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
