"""Who a message says it is from, and the ways to answer it that mailbox providers look for
(Gmail's and Yahoo's rules for bulk senders): From with the site's name as its display
name unless ``[mail] from`` gives one, a Reply-To when ``[mail] reply_to`` is set,
List-Unsubscribe with the https one-click link and, with ``[bounces] domain``, a signed
``mailto:`` too, and a Feedback-ID that Gmail's feedback loop reports by. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

from newsdrop.config import Settings
from newsdrop.mail.verp import unsubscribe_address


@dataclass(frozen=True, slots=True)
class Identity:
    """The headers every message of an instance carries alike (as header values)."""

    sender: str  # From
    reply_to: str  # "" for none
    host: str  # the site's host name: the Feedback-ID's sender part

    def headers(self, kind: str) -> list[tuple[str, str]]:
        """From, Reply-To and Feedback-ID of one kind of message ("digest", "welcome")."""
        found = [("From", self.sender)]
        if self.reply_to:
            found.append(("Reply-To", self.reply_to))
        # Gmail's form, campaign:customer:type:sender; the last is what stays the same
        found.append(("Feedback-ID", f"{kind}:newsdrop:{self.host}"))
        return found


def identity_of(settings: Settings) -> Identity:
    name, address = parseaddr(settings.mail.from_)
    sender = settings.mail.from_ if name else formataddr((settings.site.title, address), "utf-8")
    host = urlsplit(settings.site.base_url).hostname or "localhost"
    return Identity(sender=sender, reply_to=settings.mail.reply_to, host=host)


def list_unsubscribe(settings: Settings, secret: bytes, subscriber_id: int, url: str) -> str:
    """List-Unsubscribe: the https link (RFC 8058's one click), then the mailto: address
    that the bounce listener takes as the same request."""
    mailto = unsubscribe_address(settings, secret, subscriber_id)
    return f"<{url}>" + (f", <mailto:{mailto}?subject=unsubscribe>" if mailto else "")
