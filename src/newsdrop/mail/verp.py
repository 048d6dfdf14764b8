"""Bounce addresses that say which message came back (VERP): with ``[bounces] domain`` set,
each message's envelope sender is ``b+<kind><id>.<signature>@<domain>``, where the kind is
``d`` (a digest: the delivery id) or a subscriber's own mail (``c`` confirmation, ``w``
welcome, ``a`` account link, ``n`` a new address's link: the subscriber id). The same
form, kind ``u`` with the subscriber id, is the ``mailto:`` of List-Unsubscribe: a mail to
it unsubscribes (``unsubscribe_address``). The signature
is an HMAC with the instance secret, 80 bits in lower-case base32 (some servers fold the
case of a local part), so a forged bounce names nothing. Pure functions."""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache

from newsdrop.config import Settings

KINDS = {
    "d": "digest",
    "c": "confirm",
    "w": "welcome",
    "a": "account",
    "n": "address",
    "u": "unsubscribe",
}
_LETTER = {kind: letter for letter, kind in KINDS.items()}
_SIGNATURE_BYTES = 10  # 80 bits: at least the 64 the issue asks for
_LOCAL = re.compile(r"b\+([a-z])([0-9]{1,18})\.([a-z2-7]{16})")


@dataclass(frozen=True, slots=True)
class Returned:
    """What a bounce address names: the kind of mail and its id (a delivery's for a
    digest, else the subscriber's)."""

    kind: str  # a value of KINDS
    id: int


def bounce_address(secret: bytes, domain: str, kind: str, number: int) -> str:
    """The envelope sender of one message (at most 64 characters before the @)."""
    letter = _LETTER[kind]
    return f"b+{letter}{number}.{_signature(secret, letter, number)}@{domain}"


def unsubscribe_address(settings: Settings, secret: bytes, subscriber_id: int) -> str | None:
    """The address a mail to which unsubscribes this subscriber (List-Unsubscribe's
    ``mailto:``), or None without ``[bounces] domain`` (nothing would receive it)."""
    domain = settings.bounces.domain
    return bounce_address(secret, domain, "unsubscribe", subscriber_id) if domain else None


def envelope_sender(settings: Settings, secret: bytes, kind: str, number: int) -> str:
    """MAIL FROM of one message: its bounce address with ``[bounces] domain``, else the
    address of ``[mail] from``."""
    domain = settings.bounces.domain
    if domain:
        return bounce_address(secret, domain, kind, number)
    return _address_of(settings.mail.from_)


@lru_cache(maxsize=4)
def _address_of(sender: str) -> str:  # (once a run, not once a message)
    return parseaddr(sender)[1]


def returned_to(secret: bytes, domain: str, address: str) -> Returned | None:
    """The message a bounce address names, or None when it is not one of ours, is for
    another domain, or its signature does not verify (compared in constant time)."""
    local, _, at = address.strip().strip("<>").rpartition("@")
    found = _LOCAL.fullmatch(local.lower())
    if found is None or at.lower() != domain.lower():
        return None
    letter, number, signature = found.groups()
    if letter not in KINDS:
        return None
    expected = _signature(secret, letter, int(number))
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    return Returned(KINDS[letter], int(number))


def _signature(secret: bytes, letter: str, number: int) -> str:
    digest = hmac.digest(secret, f"verp:{letter}{number}".encode(), "sha256")
    return base64.b32encode(digest[:_SIGNATURE_BYTES]).decode().lower()
