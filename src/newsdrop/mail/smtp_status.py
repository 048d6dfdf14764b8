"""What an SMTP reply means for a digest: whose fault, and whether to try again.

One pure table over the enhanced status codes of RFC 3463 (``class.subject.detail``,
which RFC 2034 puts at the start of a reply's text), used for the replies to RCPT and
DATA, and meant for the status lines of returned mail (DSNs) as well. A reply without
an enhanced code (or with ``x.0.0``, "other") is judged by its basic code, as RFC 5321
alone allows: a 4xx is temporary, a 5xx the recipient's, except a refusal to relay.

    subject               detail                        whose      after a 5xx
    x.1 addressing        x.1.7, x.1.8 (the sender's)   ours       permanent
                          any other (x.1.1 no mailbox)  recipient  permanent
    x.2 mailbox           x.2.2 mailbox full            recipient  temporary
                          x.2.3 message too long        ours       permanent
                          any other (x.2.1 disabled)    recipient  permanent
    x.3 mail system, x.4 network and routing,
    x.5 protocol, x.6 content, x.7 security or policy   ours       permanent

After a 4xx every refusal is temporary: the basic code, not the enhanced class, says
whether to try again. "Ours" means ours or the relay's: no subscriber is bounced for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")

# Subjects (RFC 3463 section 3) that are about the recipient, with the exceptions below.
_RECIPIENT_SUBJECTS = frozenset({1, 2})
_OURS = frozenset({(1, 7), (1, 8), (2, 3)})  # bad sender address or system; message too long
_TEMPORARY = frozenset({(2, 2)})  # mailbox full: it may empty (the soft-bounce rule counts)
_SUBJECTS = {
    0: "other",
    1: "addressing",
    2: "mailbox",
    3: "mail system",
    4: "network and routing",
    5: "mail delivery protocol",
    6: "message content",
    7: "security or policy",
}


class Fault(Enum):
    """Whose fault a refusal is."""

    RECIPIENT = "recipient"  # this address: counts towards bouncing it
    OURS = "ours"  # our message, our account or the relay: nobody is bounced


@dataclass(frozen=True, slots=True)
class Status:
    """A refusal, classified. ``enhanced`` is "5.3.4" or "" when the reply had none."""

    code: int
    enhanced: str
    fault: Fault
    permanent: bool
    subject: str  # what RFC 3463 calls the subject: "mailbox", "mail system", ...

    @property
    def key(self) -> str:
        """The code that identifies this kind of refusal: "552 5.3.4", "451"."""
        return f"{self.code} {self.enhanced}".rstrip()


def enhanced_code(text: str) -> tuple[int, int, int] | None:
    """The enhanced status code at the start of a reply's text (RFC 2034), or None."""
    found = _ENHANCED.match(text.lstrip())
    if found is None:
        return None
    klass, subject, detail = (int(part) for part in found.groups())
    return klass, subject, detail


def refuses_relaying(code: int, text: str) -> bool:
    """A refusal to relay (550, 553 or 554 saying "relay"): our account, never the recipient."""
    return code in (550, 553, 554) and "relay" in text.lower()


def classify(code: int, text: str) -> Status:
    """Classify a 4xx or 5xx reply ``code`` with its ``text`` (what follows the code)."""
    if not 400 <= code < 600:
        raise ValueError(f"{code} is not a refusal: only 4xx and 5xx replies are classified")
    temporary_reply = code < 500  # the basic code says what SMTP clients must do
    enhanced = enhanced_code(text)
    if enhanced is None or enhanced[1] == 0 or enhanced[1] not in _SUBJECTS:
        dotted = ".".join(map(str, enhanced)) if enhanced else ""
        ours = temporary_reply or refuses_relaying(code, text)
        return Status(
            code=code,
            enhanced=dotted,
            fault=Fault.OURS if ours else Fault.RECIPIENT,
            permanent=not temporary_reply,
            subject="other",
        )
    klass, subject, detail = enhanced
    recipients = subject in _RECIPIENT_SUBJECTS and (subject, detail) not in _OURS
    # A class that disagrees with the basic code: the basic code decides what to do.
    permanent = not temporary_reply and (subject, detail) not in _TEMPORARY
    return Status(
        code=code,
        enhanced=f"{klass}.{subject}.{detail}",
        fault=Fault.RECIPIENT if recipients else Fault.OURS,
        permanent=permanent,
        subject=_SUBJECTS[subject],
    )


def verdict(code: int, text: str) -> str:
    """What a refusal means for the address, the one policy for refusals during SMTP and
    for returned mail: "hard" (the recipient's and permanent, by an enhanced code of
    addressing or mailbox: 5.1.x, 5.2.1: bounced at once), "soft" (the recipient's but
    temporary, or a refusal without an enhanced code: adds to the soft score) or "ours"
    (our message, account or relay: nobody's address)."""
    status = classify(code, text)
    if status.fault is Fault.OURS:
        return "ours"
    named = status.enhanced and status.subject in ("addressing", "mailbox")
    return "hard" if status.permanent and named else "soft"
