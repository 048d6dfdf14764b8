"""One error hierarchy for newsdrop.

Every message says what failed, with which value, and what to do next; the
CLI prints it as one sentence and exits with the class's ``exit_code``.

    NewsdropError                 (exit 1: failed work)
    ├── ConfigError               (exit 2: fix config/newsdrop.toml or the environment)
    ├── UsageError                (exit 2: a bad argument on the command line)
    ├── SourceError               (a document that cannot become an entry)
    │   ├── TooLargeError
    │   ├── UndecodableError
    │   ├── EmptyDocumentError
    │   └── UnreadableError
    ├── StoreError                (the database cannot be opened, migrated or written)
    │   └── StoreFullError           (its disk is full: free space, run again)
    ├── RenderError               (a template that fails to render)
    ├── DeliveryError             (a message was not accepted)
    │   ├── TemporaryDeliveryError   (4xx, lost connection, timeout: retried)
    │   │   └── RecipientDeferredError  (the recipient's, for now: mailbox full)
    │   ├── RecipientRejectedError   (5xx for this recipient: the digest fails)
    │   ├── MessageRefusedError      (5xx about our message or the relay: fails, bounces nobody)
    │   └── SendingPausedError       (no digest could go out now: sending pauses, uncharged)
    │       └── ServerRejectedError  (5xx about the server or our account)
    └── BuildError                (feeds/ cannot be written; the previous files stay)
"""

from __future__ import annotations

from functools import partial
from typing import Any


class NewsdropError(Exception):
    """Base class: a failure a person can act on."""

    exit_code = 1


class ConfigError(NewsdropError, ValueError):
    """The configuration file or an environment override is invalid."""

    exit_code = 2


class UsageError(NewsdropError, ValueError):
    """A command-line argument is invalid."""

    exit_code = 2


class SourceError(NewsdropError, ValueError):
    """A document in seeds/ cannot become an entry; recorded as a problem, never fatal."""


class TooLargeError(SourceError):
    """The document is bigger than ``[normalize] max_bytes``."""


class UndecodableError(SourceError):
    """The document's text encoding cannot be decided."""


class EmptyDocumentError(SourceError):
    """The document has no text (yet): nothing to publish, and no id is minted for it."""


class UnreadableError(SourceError, OSError):
    """The document could not be read (permissions, vanished mid-read, not a regular file)."""


class StoreError(NewsdropError, RuntimeError):
    """The store cannot be opened, migrated or written."""


class StoreFullError(StoreError):
    """The store cannot be written because its disk (or the database server's) is full.
    ``where`` names the place for pages that must not show paths (``state/``)."""

    def __init__(self, message: str, *, where: str) -> None:
        super().__init__(message)
        self.where = where

    def __reduce__(self) -> tuple[Any, ...]:  # it crosses from the service's workers
        return (partial(StoreFullError, where=self.where), self.args)


class RenderError(NewsdropError, RuntimeError):
    """A template is missing or fails to render."""


class BuildError(NewsdropError, OSError):
    """A file in feeds/ cannot be written (disk full, permissions); the previous one is intact."""


class DeliveryError(NewsdropError):
    """A message was not accepted; ``reply`` is what the server said, ``key`` the code that
    identifies its kind ("552 5.3.4"; "" when there was no reply, as for a lost connection)."""

    def __init__(self, reply: str, *, key: str = "") -> None:
        super().__init__(reply)
        self.reply = reply
        self.key = key


class TemporaryDeliveryError(DeliveryError):
    """Try again later: a 4xx reply, a lost connection or a timeout."""


class RecipientDeferredError(TemporaryDeliveryError):
    """A temporary refusal about the recipient (4.2.x, 5.2.2 mailbox full): retried, and a
    digest that runs out of attempts counts towards bouncing the address."""


class RecipientRejectedError(DeliveryError):
    """A 5xx reply about this recipient (at RCPT or DATA): this digest fails."""


class MessageRefusedError(DeliveryError):
    """A 5xx reply about our message, our system or the relay (RFC 3463 x.3 to x.7): this
    digest fails with the reply recorded, and nobody is bounced."""


class SendingPausedError(DeliveryError):
    """A fault every digest would meet, not this one's: the server cannot be reached, a
    template fails. Sending pauses; the digests wait, queued, and lose no attempt."""


class ServerRejectedError(SendingPausedError):
    """A 5xx reply about the server or our account (greeting, AUTH, sender, relaying):
    nobody is bounced; sending pauses until an operator fixes it."""
