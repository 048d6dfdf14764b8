"""Returned mail, read: a delivery status notification (RFC 3464) by its fields, a
complaint from a feedback loop (ARF, RFC 5965), an automatic reply (RFC 3834's
Auto-Submitted, and the vacation headers in common use) to be ignored, a bounce in no
standard form (qmail's, older Exim's, an Exchange server's: found by flufl.bounce, the
detectors Mailman uses, with no status code to go by), or something else. And the bounce address it answers: the envelope recipient it came to, else the
headers a delivering MTA adds, else (a complaint) the Return-Path of the reported
message. Pure: bytes in, a ``Report`` out; what to do about it is ``judge``'s."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from typing import Literal

import flufl.bounce

from newsdrop.mail import smtp_status

log = logging.getLogger(__name__)

_STATUS_NEAR = re.compile(r"\b([45]\.[0-9]{1,3}\.[0-9]{1,3})\b")  # an enhanced status code

Kind = Literal["bounce", "complaint", "auto-reply", "unknown"]
Verdict = Literal["hard", "soft", "ours"]

# Headers an MTA puts on the message it delivers: the envelope recipient (the bounce address).
_DELIVERED_TO = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
# Vacation and list software that does not say Auto-Submitted says one of these.
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a notification reports on."""

    recipient: str  # Final-Recipient's address
    action: str  # "failed", "delayed", ...
    status: str  # the enhanced status code, "5.1.1"
    diagnostic: str  # the remote server's words, if given


@dataclass(frozen=True, slots=True)
class Report:
    kind: Kind
    addressed_to: tuple[str, ...]  # where it may have been sent: our bounce address, if any
    failures: tuple[Failure, ...] = ()
    feedback_type: str = ""  # a complaint's ("abuse", "fraud", ...)


def read(data: bytes, *, envelope_to: str = "") -> Report:
    """What a returned message is. ``envelope_to``: the address it came to, when the
    caller knows it (the listener's RCPT TO, `bounces receive --to`)."""
    message = message_from_bytes(data, policy=email_policy.compat32)
    addressed = ([envelope_to] if envelope_to else []) + _delivered_to(message)
    report_type = (message.get_param("report-type") or "") if message.is_multipart() else ""
    if message.get_content_type() == "multipart/report" and report_type:
        kind = str(report_type).lower()
        if kind == "delivery-status":
            return Report("bounce", tuple(addressed), _failures(message))
        if kind == "feedback-report":
            fields = _feedback_fields(message)
            addressed += [_address(value) for value in fields.get_all("Original-Mail-From", [])]
            original = _original(message)
            if original is not None:
                addressed += [_address(value) for value in original.get_all("Return-Path", [])]
            kind = str(fields.get("Feedback-Type", "abuse")).strip().lower()
            return Report("complaint", tuple(addressed), feedback_type=kind)
    guessed = _guessed_failures(message)
    if guessed:
        return Report("bounce", tuple(addressed), guessed)
    if _automatic(message):
        return Report("auto-reply", tuple(addressed))
    return Report("unknown", tuple(addressed))


def judge(failure: Failure) -> Verdict:
    """What a reported failure means for the subscriber, by smtp_status's one table: the
    recipient's and permanent: bounced at once; the recipient's and temporary (a full
    mailbox, a delay): adds to the soft score; ours or the relay's: nobody's."""
    if failure.action.lower() not in ("failed", "delayed"):
        return "ours"  # delivered, relayed, expanded: nothing went wrong
    status = failure.status or ("5.0.0" if failure.action.lower() == "failed" else "4.0.0")
    code = 550 if status.startswith("5") and failure.action.lower() == "failed" else 450
    found = smtp_status.verdict(code, f"{status} {failure.diagnostic}")
    return "hard" if found == "hard" else "soft" if found == "soft" else "ours"


def _failures(message: Message) -> tuple[Failure, ...]:
    found: list[Failure] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _blocks(part)[1:]:  # [0]: the per-message fields
            recipient = _typed(block.get("Final-Recipient") or block.get("Original-Recipient"))
            if not recipient:
                continue
            found.append(
                Failure(
                    recipient=recipient,
                    action=str(block.get("Action", "")).strip().lower(),
                    status=str(block.get("Status", "")).strip(),
                    diagnostic=_typed(block.get("Diagnostic-Code")),
                )
            )
    return tuple(found)


def _guessed_failures(message: Message) -> tuple[Failure, ...]:
    """The failures flufl.bounce's detectors find in a bounce of no standard form, each
    with the enhanced status code written just after its address (qmail's "(#5.1.1)"), if
    any. Without one, a failure is a bare one ("failed": 5.0.0, "delayed": 4.0.0), which
    the policy counts as soft: a guess never bounces an address at once."""
    try:
        temporary, permanent = flufl.bounce.all_failures(message)
    except Exception:  # a detector's bug on odd input: not a bounce, then
        log.warning("flufl.bounce failed on a returned message", exc_info=True)
        return ()
    text = _first_text(message)
    found = []
    for action, recipients in (("failed", permanent), ("delayed", temporary - permanent)):
        for raw in sorted(recipients):
            recipient = raw.decode("utf-8", "replace")
            at = text.find(recipient)
            status = _STATUS_NEAR.search(text, at, at + 300) if at >= 0 else None
            found.append(Failure(recipient, action, status[1] if status else "", ""))
    return tuple(found)


def _first_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode("utf-8", "replace")
    return ""


def _original(message: Message) -> Message | None:
    """The reported message of a complaint: its message/rfc822 or text/rfc822-headers part."""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822" and _blocks(part):
            return _blocks(part)[0]
        if part.get_content_type() == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return message_from_bytes(payload, policy=email_policy.compat32)
    return None


def _feedback_fields(message: Message) -> Message:
    """The fields of a complaint's message/feedback-report part (empty if it has none)."""
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report" and _blocks(part):
            return _blocks(part)[0]
    return Message()


def _blocks(part: Message) -> list[Message]:
    """The messages (or field blocks) a message/* part holds."""
    payload = part.get_payload()
    return (
        [item for item in payload if isinstance(item, Message)] if isinstance(payload, list) else []
    )


def _automatic(message: Message) -> bool:
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    if any(message.get(name) for name in _AUTO_HEADERS):
        return True
    precedence = str(message.get("Precedence", "")).strip().lower()
    return precedence in ("auto_reply", "bulk", "junk")


def _delivered_to(message: Message) -> list[str]:
    return [_address(value) for name in _DELIVERED_TO for value in message.get_all(name, [])]


def _address(value: object) -> str:
    """The address in ``<a@b>``, ``Name <a@b>`` or ``a@b``."""
    text = str(value).strip()
    if "<" in text and ">" in text:
        text = text[text.rindex("<") + 1 : text.rindex(">")]
    return text.strip()


def _typed(value: object) -> str:
    """The value of a typed DSN field (``rfc822; a@b``, ``smtp; 550 5.1.1 ...``)."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    _, semicolon, rest = text.partition(";")
    return (rest if semicolon else text).strip()
