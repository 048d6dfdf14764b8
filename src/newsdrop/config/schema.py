"""The settings schema: a tree of frozen pydantic models with ``extra="forbid"``, one per
section of config/newsdrop.toml, each key with its default and its check. Later features add
their keys here."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from datetime import time
from email.utils import parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from newsdrop.model import WEEKDAYS

CONFIG_FILE = Path("config") / "newsdrop.toml"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SiteSettings(_Section):
    title: str = "newsdrop"
    base_url: str = "http://127.0.0.1:8080/"
    tag_authority: str = ""
    description: str = ""
    author: str = ""
    email: str = ""
    language: str = "en"
    timezone: str = "UTC"

    @field_validator("base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("timezone")
    @classmethod
    def _iana_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as 'Europe/London' or 'UTC'") from None
        return value

    @field_validator("language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", value):
            raise ValueError("must be a language tag such as 'en' or 'en-GB'")
        return value

    @field_validator("tag_authority")
    @classmethod
    def _domain(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", value):
            raise ValueError("must be a domain name such as 'news.example.org'")
        return value.lower()

    @model_validator(mode="after")
    def _default_authority(self) -> SiteSettings:
        if not self.tag_authority:
            host = urlsplit(self.base_url).hostname or "localhost"
            object.__setattr__(self, "tag_authority", host)
        return self

    def local_address_mismatch(self, host: str, port: int) -> str:
        """Why base_url, a local address, is not where this server listens (host, port),
        or "" when it is, or when base_url is a public address (behind a proxy)."""
        parts = urlsplit(self.base_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            return ""
        served = parts.port or (443 if parts.scheme == "https" else 80)
        if served == port:
            return ""
        return (
            f"[site] base_url is {self.base_url} but the server listens on "
            f"{host}:{port}; the links in pages and mails (subscribe, confirm, unsubscribe) "
            "point at base_url: set it to the address readers use"
        )

    @property
    def authority_is_local(self) -> bool:
        """True while ids would be minted with localhost or an IP address (``check`` warns)."""
        if self.tag_authority in ("localhost", "localhost.localdomain"):
            return True
        try:
            ipaddress.ip_address(self.tag_authority)
        except ValueError:
            return False
        return True


class PathSettings(_Section):
    seeds: str = "seeds"
    feeds: str = "feeds"
    state: str = "state"


class StoreSettings(_Section):
    url: str = ""  # empty: sqlite file state/newsdrop.db

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL, or empty")
        return value


DEFAULT_BOILERPLATE_MARKERS = (
    "A Message from ",
    "Dear readers,",
    "Dear reader,",
    "Remind me later",
    "Support our journalism",
    "Support independent journalism",
    "Support us monthly",
    "Please consider supporting",
    "Please consider a donation",
    "Donate now",
    "Make a donation",
    "Become a member",
    "Become a patron",
    "Sign up for our newsletter",
    "Sign up to our newsletter",
    "Subscribe to our newsletter",
    "Get our newsletter",
    "We use cookies",
    "This website uses cookies",
    "This site uses cookies",
    "By continuing to use this site",
    "Accept all cookies",
    "Manage cookie",
    "If you value our",
    "If you enjoyed this article",
    "Thank you for reading",
    "To view the full story",
    "To read the full story",
    "To continue reading",
    "Subscribe now",
    "Already a subscriber",
    "If you're already a subscriber",
    "If you’re already a subscriber",
    "We want to hear what you think",
    "Submit your letter",
    "Do you want to be informed",
    "Download our app",
    "For the latest stories and breaking news",
)


class NormalizeSettings(_Section):
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    strip_boilerplate: bool = True
    boilerplate_markers: tuple[str, ...] = DEFAULT_BOILERPLATE_MARKERS
    learn_boilerplate: bool = False
    detect_language: bool = False
    timeout_s: float = Field(default=30, gt=0, le=3600)  # per document, in a worker process
    max_memory_mb: int = Field(default=512, ge=16)  # per document, beyond the worker's own

    @field_validator("boilerplate_markers", mode="before")
    @classmethod
    def _a_list(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            raise ValueError(
                'must be a TOML array of strings, such as ["Buy now", "Dear readers,"]'
            )
        return value


class FeedSettings(_Section):
    max_entries: int = Field(default=50, ge=1, le=10_000)
    websub_hub: str = ""

    @field_validator("websub_hub")
    @classmethod
    def _hub_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be the hub's http:// or https:// URL, or empty")
        return value


class DigestSettings(_Section):
    send_at: str = "07:00"
    weekday: Literal[WEEKDAYS] = "monday"  # type: ignore[valid-type]
    skip_empty: bool = True
    subject: str = "{{ site.title }}: {{ entries | length }} new for {{ period_label }}"
    interval_seconds: int = Field(default=0, ge=0)  # testing and demonstrations only
    # `instant` subscribers get one mail per new entry, but at most one per this many
    # minutes: entries published meanwhile go together.
    instant_min_minutes: int = Field(default=15, ge=1, le=24 * 60)

    @field_validator("send_at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", value):
            raise ValueError("must be a local time 'HH:MM' or 'HH:MM:SS', such as '07:00'")
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a valid time of day between 00:00 and 23:59:59") from None
        return value

    @property
    def send_time(self) -> time:
        return time.fromisoformat(self.send_at)


class MailSettings(_Section):
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


class WatchSettings(_Section):
    settle_ms: int = Field(default=500, ge=0, le=600_000)  # a file is taken once this quiet
    rescan_minutes: float = Field(default=60.0, gt=0)  # full reconcile scans between events


def _rate(value: str) -> str:
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ValueError("must be a rate such as '5/hour', '10/minute' or '100 per day'") from None
    return value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    cache_control: str = "public, max-age=60"  # for feeds and pages
    confirm_hours: float = Field(default=48.0, gt=0)  # a subscription confirmation link lives
    subscribe_form: bool = True  # the form on the index page (served by `newsdrop run`)
    subscribe_limit_per_client: str = "5/hour"  # POSTs to /subscribe from one address
    subscribe_limit: str = "100/hour"  # POSTs to /subscribe from everyone together
    trusted_proxies: tuple[str, ...] = ()  # reverse proxies whose X-Forwarded-For is believed
    metrics_allow: tuple[str, ...] = ("127.0.0.0/8", "::1")  # who may read /metrics
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)  # to send a request head
    idle_timeout_s: int = Field(default=30, ge=1, le=3600)  # a kept-alive connection's idle

    @field_validator("subscribe_limit_per_client", "subscribe_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        return _rate(value)

    @field_validator("trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            raise ValueError(
                'must be a TOML array of IP addresses or networks, such as ["127.0.0.1"]'
            )
        for item in value:
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class ClusterSettings(_Section):
    instance: str = ""  # this `newsdrop run`'s name among those sharing the store
    lease_seconds: float = Field(default=15.0, ge=1, le=600)  # a dead leader's work moves on

    @field_validator("instance")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError(
                "must be a short name of letters, digits, '.', '_' or '-', such as 'web-2'"
            )
        return value


class BouncesSettings(_Section):
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
        return _rate(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be an address and port, such as '127.0.0.1:2525', or empty")
        return value

    def listen_address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        if value and not re.fullmatch(rf"{label}(?:\.{label})+", value):
            raise ValueError("must be a domain name such as 'bounces.example.org', or empty")
        return value.lower()


class Settings(_Section):
    """The whole validated configuration of one instance, plus where it lives."""

    home: Path
    source: str = str(CONFIG_FILE)
    site: SiteSettings = SiteSettings()
    paths: PathSettings = PathSettings()
    store: StoreSettings = StoreSettings()
    normalize: NormalizeSettings = NormalizeSettings()
    feeds: FeedSettings = FeedSettings()
    digest: DigestSettings = DigestSettings()
    mail: MailSettings = MailSettings()
    bounces: BouncesSettings = BouncesSettings()
    watch: WatchSettings = WatchSettings()
    server: ServerSettings = ServerSettings()
    cluster: ClusterSettings = ClusterSettings()

    @property
    def seeds_dir(self) -> Path:
        return self.home / self.paths.seeds

    @property
    def feeds_dir(self) -> Path:
        return self.home / self.paths.feeds

    @property
    def state_dir(self) -> Path:
        return self.home / self.paths.state

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.state_dir / 'newsdrop.db'}"


SECTIONS = tuple(name for name in Settings.model_fields if name not in ("home", "source"))
