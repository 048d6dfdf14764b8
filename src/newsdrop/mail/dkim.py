"""DKIM: the instance's key, checked at start, and signing a message's bytes (dkimpy)."""

from __future__ import annotations

from functools import lru_cache

from newsdrop.config import MailSettings, Settings
from newsdrop.errors import (
    ConfigError,
)

DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)  # fmt: skip  (RFC 8058 asks for both List-Unsubscribe headers to be signed)


def signed(message: bytes, mail: MailSettings, *, key: bytes) -> bytes:
    """The message DKIM-signed when ``[mail] dkim_selector`` is set (``key``: the private
    key, see ``dkim_key``), else as it is. Digests and confirmation mails alike."""
    if not mail.dkim_selector:
        return message
    return dkim_sign(message, selector=mail.dkim_selector, domain=mail.dkim_domain, key=key)


def dkim_sign(message: bytes, *, selector: str, domain: str, key: bytes) -> bytes:
    """The message with a DKIM-Signature header in front (dkimpy, rsa-sha256, relaxed)."""
    import dkim

    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(DKIM_HEADERS),
    )
    return bytes(signature) + message


def dkim_key(settings: Settings) -> bytes:
    """The DKIM private key (empty when signing is off), read and tried on a sample once:
    a missing or broken key is a ConfigError naming the setting, before any digest."""
    mail = settings.mail
    if not mail.dkim_selector:
        return b""
    path = settings.home / mail.dkim_key_file
    setting = f"{settings.source}: [mail] dkim_key_file = {mail.dkim_key_file!r}"
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot read {path} ({exc.strerror}); point it at the PEM private key "
            f"whose public half is published at {mail.dkim_selector}._domainkey.{mail.dkim_domain}"
        ) from exc
    problem = _dkim_key_problem(key, mail.dkim_selector, mail.dkim_domain)
    if problem:
        raise ConfigError(
            f"{setting}: {path} is not a usable PEM private key ({problem}); make one with "
            "openssl genrsa -out dkim.pem 2048"
        )
    return key


@lru_cache(maxsize=4)
def _dkim_key_problem(key: bytes, selector: str, domain: str) -> str:
    """What signing a sample with this key says is wrong, or "" (an RSA signature costs
    milliseconds, and the service composes a Composer at every digest wake-up)."""
    try:
        dkim_sign(
            b"From: a@example.org\r\nSubject: a sample\r\n\r\nA sample.\r\n",
            selector=selector, domain=domain, key=key,
        )  # fmt: skip
    except Exception as exc:  # dkimpy's errors vary by what is wrong with the file
        return str(exc) or exc.__class__.__name__
    return ""
