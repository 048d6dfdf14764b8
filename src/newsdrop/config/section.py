"""What every section of the settings is: a frozen pydantic model that refuses unknown
keys; and the checks and readings more than one key makes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def rate_text(value: str) -> str:
    """A rate as the limits library reads it ("5/hour"), or a ValueError that says so."""
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ValueError("must be a rate such as '5/hour', '10/minute' or '100 per day'") from None
    return value


def host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """ "host:port" ("[::1]:53" for IPv6) as (host, port); without a port, ``default_port``.
    A ValueError that says what is expected."""
    host, colon, port = text.rpartition(":")
    if not colon or (":" in host and not host.startswith("[")):  # no port, or bare IPv6
        host, port = text, ""
    if not port and default_port is not None:
        port = str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        example = "'127.0.0.1:2525'" if default_port is None else "'127.0.0.1' or '127.0.0.1:5353'"
        raise ValueError(f"must be an address and port, such as {example}, or empty")
    return host.strip("[]"), int(port)
