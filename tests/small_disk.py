"""A small disk for a folder of a test: a tmpfs mounted over it, to fill (mounting needs
root: CI runs as root; elsewhere the tests that use it are skipped, saying why)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="mounts a small tmpfs over a folder of the instance, which needs root (CI runs as root)",
)


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """``folder`` on a tmpfs of ``size`` ("400k", "12m") for the block; what it held is
    copied in first. Unmounted after (lazily: a process may still hold a file there)."""
    before = folder.with_name(f"{folder.name}.before")
    folder.rename(before)
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(before, folder, dirs_exist_ok=True)  # modes too (state/secret)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: str) -> None:
    """Give a small disk more room (or less)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)
