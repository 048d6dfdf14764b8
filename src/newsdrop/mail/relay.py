"""What the relay offers that decides which addresses newsdrop takes: SMTPUTF8, which an
address with a non-ASCII local part needs. ``[mail] smtputf8 = "auto"`` asks the relay
when `newsdrop check` or a send connects, and the answer is remembered in the store, for
every instance and the subscribe page."""

from __future__ import annotations

from newsdrop.config import Settings
from newsdrop.store import Store

REMEMBERED = "relay_smtputf8"  # a counter: 1 the relay offers it, 2 it does not, 0 not asked


def utf8_local_parts(settings: Settings, store: Store) -> bool:
    """Whether an address whose local part is not ASCII may be added: always with the
    Maildir (no relay); as ``[mail] smtputf8`` says; with "auto", unless the relay said it
    lacks SMTPUTF8 (not asked yet: taken, and a send says so if the relay lacks it)."""
    mail = settings.mail
    if mail.transport == "maildir":
        return True
    if mail.smtputf8 != "auto":
        return bool(mail.smtputf8)
    return store.counter(REMEMBERED) != 2


def remember(settings: Settings, store: Store, offered: bool | None) -> None:
    """Keep what the relay said of SMTPUTF8 (None: it was not reached)."""
    if offered is not None and settings.mail.smtputf8 == "auto":
        store.set_counter(REMEMBERED, 1 if offered else 2)
