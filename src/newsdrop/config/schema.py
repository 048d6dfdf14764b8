"""The settings schema: a tree of frozen pydantic models with ``extra="forbid"``, one per
section of config/newsdrop.toml, each key with its default and its check. Later features add
their keys here."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from datetime import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from newsdrop.config.mail import BouncesSettings, MailSettings
from newsdrop.config.section import Section, rate_text
from newsdrop.model import WEEKDAYS

CONFIG_FILE = Path("config") / "newsdrop.toml"


class SiteSettings(Section):
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


class PathSettings(Section):
    seeds: str = "seeds"
    feeds: str = "feeds"
    state: str = "state"


class StoreSettings(Section):
    url: str = ""  # empty: sqlite file state/newsdrop.db

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL, or empty")
        return value


# Phrases that open the appeals and notices closing many web pages; each line says which kind
# of page it serves. Only phrases that many sites use: a site's own wording is for its
# publisher to add (a list set in [normalize] replaces this one).
DEFAULT_BOILERPLATE_MARKERS = (
    # donation and membership appeals: reader-funded news sites, blogs and charities
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
    "If you value our",
    "If you enjoyed this article",
    "Thank you for reading",
    # newsletter sign-up boxes: news sites, blogs, company pages
    "Sign up for our newsletter",
    "Sign up to our newsletter",
    "Subscribe to our newsletter",
    "Get our newsletter",
    # cookie banners captured with the page: any site under EU rules
    "We use cookies",
    "This website uses cookies",
    "This site uses cookies",
    "By continuing to use this site",
    "Accept all cookies",
    "Manage cookie",
    # paywall teasers: subscription news sites that cut the article short
    "To view the full story",
    "To read the full story",
    "To continue reading",
    "Subscribe now",
    "Already a subscriber",
    "If you're already a subscriber",
    "If you’re already a subscriber",
    # app prompts: news sites with a mobile app
    "Download our app",
)


def _known_encoding(name: str) -> bool:
    """A text encoding Python has (base64 and the other bytes-to-bytes codecs are not)."""
    try:
        "".encode(name)
    except LookupError:
        return False
    return True


class NormalizeSettings(Section):
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    strip_boilerplate: bool = True
    boilerplate_markers: tuple[str, ...] = DEFAULT_BOILERPLATE_MARKERS
    learn_boilerplate: bool = False
    detect_language: bool = True  # where a document does not say its language
    favor: Literal["balanced", "precision", "recall"] = "balanced"  # trafilatura's leaning
    # The legacy encoding of documents that are not UTF-8 and do not say theirs: one for all
    # of seeds/, or by folder ({ "archive/ru" = "koi8-r" }); empty: guessed.
    encoding: str | dict[str, str] = ""
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

    @field_validator("encoding", mode="before")
    @classmethod
    def _a_name_or_a_table(cls, value: object) -> object:
        if not isinstance(value, str | dict):
            raise ValueError(
                'must be an encoding\'s name, such as "windows-1251", or a table of folders: '
                '{ "archive/ru" = "koi8-r" }'
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encodings(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        for folder, name in value.items() if isinstance(value, dict) else [("", value)]:
            if name and not _known_encoding(name):
                where = f" (for {folder!r})" if folder else ""
                raise ValueError(
                    f"{name!r}{where} is not an encoding Python knows; write one such as "
                    "windows-1251, koi8-r, iso-8859-2 or shift_jis"
                )
        return value

    def folder_encodings(self) -> tuple[tuple[str, str], ...]:
        """(folder under seeds/, encoding) pairs; the folder "" is all of seeds/."""
        if isinstance(self.encoding, dict):
            return tuple((folder.strip("/"), name) for folder, name in self.encoding.items())
        return (("", self.encoding),) if self.encoding else ()


class FeedSettings(Section):
    max_entries: int = Field(default=50, ge=1, le=10_000)
    websub_hub: str = ""

    @field_validator("websub_hub")
    @classmethod
    def _hub_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("must be the hub's http:// or https:// URL, or empty")
        return value


class DigestSettings(Section):
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


class WatchSettings(Section):
    settle_ms: int = Field(default=500, ge=0, le=600_000)  # a file is taken once this quiet
    rescan_minutes: float = Field(default=60.0, gt=0)  # full reconcile scans between events


class ServerSettings(Section):
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
        return rate_text(value)

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


class ClusterSettings(Section):
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


class Settings(Section):
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
