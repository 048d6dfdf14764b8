"""A real DNS server on 127.0.0.1 for the tests (dnslib's, UDP and TCP on one free port),
answering from a zone written in the test: what `newsdrop check --mail` looks up."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from dnslib.server import DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver


def _free_port() -> int:
    """A port free for both UDP and TCP."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


@contextmanager
def dns_server(zone: str) -> Iterator[str]:
    """Serve ``zone`` (master file syntax); yields the server's "127.0.0.1:PORT"."""
    resolver = ZoneResolver(zone)
    port = _free_port()
    quiet = DNSLogger(logf=lambda _: None)  # the tests read findings, not its log
    servers = [
        DNSServer(resolver, address="127.0.0.1", port=port, tcp=tcp, logger=quiet)
        for tcp in (False, True)
    ]
    for server in servers:
        server.start_thread()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()
