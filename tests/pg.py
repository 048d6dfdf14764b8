"""A real PostgreSQL server for the tests: $NEWSDROP_TEST_POSTGRES if set, else a throwaway
cluster started from Debian's `postgresql` binaries (as the `postgres` user when run as
root), else a skip that says how to get one."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ENV = "NEWSDROP_TEST_POSTGRES"  # e.g. postgresql+psycopg://user:pw@127.0.0.1:5432/postgres
HOW = (
    "needs PostgreSQL: install Debian's postgresql package (the tests start a throwaway "
    f"server), or set {ENV} to a server URL whose user may create databases"
)


class Server:
    """``durable``: fsync on, as a production server runs (benchmarks); the tests turn it
    off, since a throwaway server need not survive a power cut."""

    def __init__(self, *, durable: bool = False) -> None:
        self.url = os.environ.get(ENV, "")
        self.folder: Path | None = None
        self.process_owner: list[str] = []
        if not self.url:
            self._start(fsync="on" if durable else "off")

    def _start(self, *, fsync: str) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise LookupError(HOW)
        bin_dir = Path(found[-1]).parent
        self.folder = Path(tempfile.mkdtemp(prefix="newsdrop-pg-"))
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.folder, "postgres", "postgres")
            self.process_owner = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        data = self.folder / "data"
        self._run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", "newsdrop", "--auth=trust", "-E", "UTF8"
        )
        self._run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "log"), "-w", "-o",
            f"-h 127.0.0.1 -p {port} -k {self.folder} -c fsync={fsync} -c max_connections=300",
            "start",
        )  # fmt: skip
        self.bin_dir = bin_dir
        self.url = f"postgresql+psycopg://newsdrop@127.0.0.1:{port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.process_owner, *command], check=True, capture_output=True)

    def database(self) -> str:
        """A new empty database on the server; its URL."""
        name = f"nd_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'create database "{name}"'))
        engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        if self.folder is not None:
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            )
            time.sleep(0.1)
            shutil.rmtree(self.folder, ignore_errors=True)
