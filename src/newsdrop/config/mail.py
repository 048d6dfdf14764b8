"""The mail sections of the settings: ``[mail]`` (how digests leave: the transport, the
relay, DKIM) and ``[bounces]`` (how returned mail comes back and what is done with it)."""

from __future__ import annotations

import ipaddress
import re
from email.utils import parseaddr
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from newsdrop.config.section import Section, host_port, rate_text


class MailSettings(Section):
    transport: Literal["maildir", "smtp"] = "maildir"
    from_: str = Field(default="newsdrop@localhost", alias="from")  # no name: the site's title
    reply_to: str = ""  # where replies go, when not to the From address
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str = ""
    password_env: str = "NEWSDROP_SMTP_PASSWORD"
    pool_size: int = Field(default=4, ge=1, le=64)
    rate_per_second: float = Field(default=10.0, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    cafile: str = ""  # CA bundle to check the server's certificate; empty: the system's
    max_attempts: int = Field(default=8, ge=1, le=100)  # per digest, for temporary failures
    retry_base_s: float = Field(default=30.0, gt=0)  # first retry after this, then doubling
    claim_timeout_s: float = Field(default=600.0, gt=0)  # a claim older than this was lost
    dkim_selector: str = ""  # DKIM signing is on when selector, domain and key are all set
    dkim_domain: str = ""
    dkim_key_file: str = ""  # PEM private key, relative to the home
    # Whether the relay carries addresses whose local part is not ASCII (SMTPUTF8): "auto"
    # asks it when `newsdrop check` or a send connects, and remembers; false refuses such
    # addresses when they are added.
    smtputf8: bool | Literal["auto"] = "auto"

    @field_validator("from_", "reply_to")
    @classmethod
    def _sender(cls, value: str, info: ValidationInfo) -> str:
        address = parseaddr(value)[1]
        if info.field_name == "reply_to" and not value:
            return value
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", address):
            raise ValueError(
                "must be an email address, such as 'news@example.org' or "
                "'Town Herald <news@example.org>'"
            )
        return value

    @model_validator(mode="after")
    def _dkim_complete(self) -> MailSettings:
        given = [bool(self.dkim_selector), bool(self.dkim_domain), bool(self.dkim_key_file)]
        if any(given) and not all(given):
            raise ValueError(
                "DKIM needs dkim_selector, dkim_domain and dkim_key_file together (or none of them)"
            )
        return self


class BouncesSettings(Section):
    # Returned mail: with a domain, each message's envelope sender names it (mail/verp.py),
    # and mail sent back to that domain (`newsdrop bounces receive`) is acted on.
    domain: str = ""
    soft_limit: float = Field(default=3.0, gt=0)  # a soft-bounce score past this bounces
    soft_half_life_days: float = Field(default=7.0, gt=0)  # the score halves this often
    max_bytes: int = Field(default=256 * 1024, ge=1024)  # a larger returned mail is refused
    keep_days: int = Field(default=30, ge=1)  # how long returned mail is kept once handled
    # `newsdrop run` takes returned mail over SMTP here ("127.0.0.1:2525"; empty: it does
    # not listen), the operator's MTA relaying [bounces] domain to it ...
    listen: str = ""
    limit_per_client: str = "600/minute"  # ... at most this many messages from one address
    # ... and drains this Maildir (relative to the home; empty: none), for an MTA that
    # delivers returned mail to a mailbox
    maildir: str = ""
    # false: mail for the bounce domain reaches your MTA without an MX of its own (the
    # listener behind it), so `check --mail` does not ask for one
    check_mx: bool = True
    dns_server: str = ""  # `check --mail` asks this DNS server ("127.0.0.1:5353"); "": the system's

    @field_validator("limit_per_client")
    @classmethod
    def _limit(cls, value: str) -> str:
        return rate_text(value)

    @field_validator("listen", "dns_server")
    @classmethod
    def _address(cls, value: str, info: ValidationInfo) -> str:
        if value and info.field_name == "listen":
            host_port(value)
        elif value:  # the resolver is asked by address, as resolv.conf names it
            host, _ = host_port(value, default_port=53)
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(
                    f"{host!r} is not an IP address; name the DNS server by its address, such "
                    "as '127.0.0.1' or '127.0.0.1:5353'"
                ) from None
        return value

    def listen_address(self) -> tuple[str, int]:
        return host_port(self.listen)

    def dns_address(self) -> tuple[str, int]:
        return host_port(self.dns_server, default_port=53)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        if value and not re.fullmatch(rf"{label}(?:\.{label})+", value):
            raise ValueError("must be a domain name such as 'bounces.example.org', or empty")
        return value.lower()
