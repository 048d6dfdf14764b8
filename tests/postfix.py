"""A throwaway Postfix (Debian's) on 127.0.0.1 for the tests: its own configuration and
queue in a temporary folder, smtpd on a free port, run in the foreground and stopped after.
Mail for the domains given goes on to the servers given; mail for local.example.net is delivered
locally, where every user is unknown, so Postfix itself returns it with a DSN. Needs root
(Postfix drops to its own user), as CI has; elsewhere the tests that use it are skipped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from smtpd import free_port

import pytest

from live import until

POSTFIX = "/usr/sbin/postfix"

needs_postfix = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(POSTFIX).exists() or shutil.which("postconf") is None,
    reason="needs Debian's postfix and root (CI installs it and runs as root)",
)

LOCAL_DOMAIN = "local.example.net"  # delivered here: every user unknown, so every message bounces


@contextmanager
def running_postfix(routes: dict[str, int]) -> Iterator[int]:
    """Postfix with its smtpd on a free port (yielded), relaying each domain in ``routes``
    to 127.0.0.1 at its port (no TLS, no DNS)."""
    # Not under pytest's temporary folder: that is root's alone, and Postfix's own user
    # must reach its data directory.
    folder = Path(tempfile.mkdtemp(prefix="newsdrop-postfix-"))
    folder.chmod(0o755)
    try:
        yield from _run(folder, routes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, routes: dict[str, int]) -> Iterator[int]:
    config, queue, data = folder / "etc", folder / "spool", folder / "data"
    for path in (config, queue, data):
        path.mkdir(parents=True)
    shutil.chown(data, "postfix")
    port = free_port()
    transports = ", ".join(f"{domain}=smtp:[127.0.0.1]:{p}" for domain, p in routes.items())
    (config / "main.cf").write_text(
        "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {queue}",
                f"data_directory = {data}",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                f"myhostname = mx.{LOCAL_DOMAIN}",
                f"mydomain = {LOCAL_DOMAIN}",
                f"myorigin = {LOCAL_DOMAIN}",
                f"mydestination = {LOCAL_DOMAIN}",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "mynetworks = 127.0.0.0/8",
                "local_recipient_maps =",  # take any local user: local(8) then bounces it
                "alias_maps =",
                "alias_database =",
                f"relay_domains = {', '.join(routes)}",
                f"transport_maps = inline:{{ {transports} }}",
                "smtp_dns_support_level = disabled",
                "smtputf8_enable = no",
                "maillog_file = /dev/stdout",
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "maximal_backoff_time = 2s",
                "",
            ]
        )
    )
    master = (Path("/etc/postfix/master.cf")).read_text().splitlines()
    lines = []
    for line in master:
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "smtp" and fields[1] == "inet":
            line = f"127.0.0.1:{port} inet n - n - - smtpd"
        elif len(fields) >= 8 and not line.startswith(("#", " ")) and fields[4] == "y":
            fields[4] = "n"  # no chroot: the queue is not under /var/spool/postfix
            line = " ".join(fields)
        lines.append(line)
    (config / "master.cf").write_text("\n".join(lines) + "\n")
    log = (folder / "maillog").open("wb")
    process = subprocess.Popen(
        [POSTFIX, "-c", str(config), "start-fg"], stdout=log, stderr=subprocess.STDOUT
    )

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"postfix stopped: {(folder / 'maillog').read_text()[-2000:]}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        until(listening, timeout=20, what="postfix to listen", every=0.1)
        yield port
    finally:
        subprocess.run([POSTFIX, "-c", str(config), "stop"], capture_output=True, timeout=30)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
