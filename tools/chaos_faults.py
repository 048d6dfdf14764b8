"""The chaos run's faults beyond the mail relay: full disks, a flood of renamed files,
idle connections and pathological documents. Each says what it did, so that the run can
tell a fault that happened from one that was only scheduled.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# --- full disks ----------------------------------------------------------------------------


def tmpfs_unavailable() -> str:
    """Why no tmpfs can be mounted here ("" when it can be tried)."""
    if os.geteuid() != 0:
        return "not root: mounting a tmpfs needs root (CI runs as root)"
    if shutil.which("mount") is None:
        return "no mount command"
    return ""


@dataclass
class Disk:
    """A folder of the instance on its own small tmpfs, which a ballast file fills.

    The tmpfs is mounted large (a limit, not memory); to fill it, it is remounted at
    what it holds plus a few MB and the ballast takes the rest, so that a full disk costs
    a few MB of memory, not the whole limit."""

    folder: Path
    mounted: bool = False
    why_not: str = ""
    fills: int = 0
    enospc: int = 0  # fills that ended in ENOSPC, as they must
    ballast_bytes: list[int] = field(default_factory=list)
    full_seconds: float = 0.0
    size: str = "1g"

    @property
    def ballast(self) -> Path:
        return self.folder / ".chaos-ballast"

    def mount(self) -> bool:
        """Mount a tmpfs over the folder, keeping what it holds. False (and why_not) if not."""
        self.why_not = tmpfs_unavailable()
        if self.why_not:
            return False
        aside = self.folder.with_name(self.folder.name + ".before-tmpfs")
        self.folder.mkdir(parents=True, exist_ok=True)
        os.rename(self.folder, aside)
        self.folder.mkdir()
        options = f"size={self.size},mode=0755"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            self.folder.rmdir()
            os.rename(aside, self.folder)
            self.why_not = f"mount failed: {done.stderr.strip() or done.returncode}"
            return False
        self.mounted = True
        for item in aside.iterdir():
            shutil.move(str(item), str(self.folder / item.name))
        aside.rmdir()
        return True

    def _remount(self, size: str) -> bool:
        done = subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(self.folder)], capture_output=True
        )
        return done.returncode == 0

    def fill(self) -> None:
        """Fill the disk to the last byte with the ballast file (ENOSPC expected)."""
        self.fills += 1
        for margin in (4, 16, 64):  # the service may write meanwhile: a bigger margin then
            used = shutil.disk_usage(self.folder).used
            if self._remount(f"{(used >> 20) + margin}m"):
                break
        chunk = b"\0" * (1 << 20)
        written = 0
        try:
            with self.ballast.open("ab", buffering=0) as handle:
                while True:
                    try:
                        written += handle.write(chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        if len(chunk) == 4096:  # the last page went too: full
                            self.enospc += 1
                            break
                        chunk = chunk[: max(4096, len(chunk) // 16)]
        except OSError as exc:  # opening it may meet ENOSPC already (no inode, no block)
            if exc.errno != errno.ENOSPC:
                raise
            self.enospc += 1
        self.ballast_bytes.append(written)

    def empty(self) -> None:
        self.ballast.unlink(missing_ok=True)
        self._remount(self.size)

    def unmount(self, *, keep: bool) -> None:
        """Unmount (after copying what it holds back to the folder beneath, with ``keep``)."""
        if not self.mounted:
            return
        self.ballast.unlink(missing_ok=True)
        kept = self.folder.with_name(self.folder.name + ".kept")
        if keep:
            shutil.copytree(self.folder, kept, symlinks=True)
        subprocess.run(["umount", "-l", str(self.folder)], check=False)
        self.mounted = False
        if keep:
            shutil.rmtree(self.folder, ignore_errors=True)
            os.rename(kept, self.folder)

    def figures(self) -> dict[str, object]:
        if not self.mounted and not self.fills:
            return {"skipped": self.why_not or "not scheduled"}
        return {
            "filled": self.fills,
            "ENOSPC seen by the ballast": self.enospc,
            "ballast MB": [round(b / 2**20, 1) for b in self.ballast_bytes],
            "full for s": round(self.full_seconds, 1),
        }


# --- idle connections ---------------------------------------------------------------------


@dataclass
class IdleConnections:
    """Connections that send nothing (or half a request head) and wait, held for a while;
    any the service closes are counted, any a kill took are opened again."""

    port: int
    count: int = 500
    half_heads: int = 100  # of them send the start of a request and never finish it
    opened: int = 0
    refused: int = 0
    closed_by_service: int = 0
    lost_to_kills: int = 0
    most_held: int = 0
    first_closed_after_s: float | None = None

    def hold(
        self,
        seconds: float,
        *,
        up: Callable[[], bool],
        kills: Callable[[], int],
        lifted: threading.Event,
    ) -> None:
        held: dict[socket.socket, tuple[float, int]] = {}  # socket -> (opened at, kills then)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and not lifted.is_set():
                if up():
                    self._top_up(held, kills())
                self.most_held = max(self.most_held, len(held))
                if not held:
                    time.sleep(0.2)
                    continue
                readable, _, _ = select.select(list(held), [], [], 0.5)
                for sock in readable:
                    try:
                        gone = sock.recv(4096) == b""  # an answer to a half head is not a close
                    except OSError:
                        gone = True
                    if not gone:
                        continue
                    opened_at, kills_then = held.pop(sock)
                    sock.close()
                    if kills() != kills_then:
                        self.lost_to_kills += 1
                    else:
                        self.closed_by_service += 1
                        if self.first_closed_after_s is None:
                            self.first_closed_after_s = round(time.monotonic() - opened_at, 1)
        finally:
            for sock in held:
                sock.close()

    def _top_up(self, held: dict[socket.socket, tuple[float, int]], kills: int) -> None:
        """Open connections until ``count`` are held; those the service closed stay closed."""
        every = max(1, self.count // max(1, self.half_heads))
        for _ in range(self.count - self.closed_by_service - len(held)):
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            except OSError:
                self.refused += 1
                return  # down again, or refusing: try on the next round
            if self.half_heads and self.opened % every == 0:
                sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: chaos")
            sock.setblocking(False)
            held[sock] = (time.monotonic(), kills)
            self.opened += 1


# --- documents ----------------------------------------------------------------------------


def flood_documents(count: int, seed: int) -> list[tuple[str, bytes, str]]:
    """(name under seeds/, bytes, title) of ``count`` good small Markdown documents."""
    out = []
    for n in range(count):
        title = f"Flood story {n:04d} of run {seed}"
        body = f"Story {n} of the flood. " * 12
        out.append(
            (f"flood/flood-{n:04d}.md", f"---\ntitle: {title}\n---\n{body}\n".encode(), title)
        )
    return out


def write_flood(seeds: Path, documents: list[tuple[str, bytes, str]]) -> tuple[int, float]:
    """Write each as NAME.part, then rename them all into place at once; (renamed, seconds
    the renames took)."""
    for name, data, _ in documents:
        partial = seeds / (name + ".part")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
    started, renamed = time.monotonic(), 0
    for name, _, _ in documents:
        os.replace(seeds / (name + ".part"), seeds / name)
        renamed += 1
    return renamed, time.monotonic() - started


PATHOLOGICAL_TITLES = ("Pathological attributes", "Pathological paragraphs")


def many_attributes(count: int = 40_000) -> bytes:
    """One element with ``count`` attributes (about 430 KB at 40,000): 43 s to normalise
    before the bounds of issue #13."""
    attributes = " ".join(f'a{n}="v"' for n in range(count))
    return (
        "<!doctype html><html><head><title>Pathological attributes</title></head><body>"
        f"<article><h1>Pathological attributes</h1><p {attributes}>A paragraph.</p>"
        "</article></body></html>"
    ).encode()


def many_paragraphs(megabytes: float = 2.5) -> bytes:
    """Markdown of paragraphs that are each the letter p (seconds and GB to parse)."""
    return b"---\ntitle: Pathological paragraphs\n---\n" + b"p\n\n" * int(megabytes * 2**20 / 3)
