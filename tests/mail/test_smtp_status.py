"""The table of SMTP replies (RFC 3463 enhanced status codes): whose fault, and for how long."""

from __future__ import annotations

import pytest

from newsdrop.mail.smtp_status import Fault, Status, classify, enhanced_code

RECIPIENT, OURS = Fault.RECIPIENT, Fault.OURS


@pytest.mark.parametrize(
    ("code", "text", "fault", "permanent"),
    [
        (550, "5.1.1 <bob@example.org>: Recipient address rejected: User unknown", RECIPIENT, True),
        (553, "5.1.3 Invalid address syntax", RECIPIENT, True),
        (550, "5.1.10 Null MX: the domain accepts no mail", RECIPIENT, True),
        (553, "5.1.7 The sender address is malformed", OURS, True),  # the sender: ours
        (550, "5.1.8 Bad sender's system address", OURS, True),
        (550, "5.2.1 The email account that you tried to reach is disabled", RECIPIENT, True),
        (552, "5.2.2 Mailbox full", RECIPIENT, False),
        (452, "4.2.2 The recipient's inbox is out of storage space", RECIPIENT, False),
        (
            450,
            "4.2.1 The user you are trying to contact is receiving mail too quickly",
            RECIPIENT,
            False,
        ),
        (552, "5.2.3 Message length exceeds administrative limit", OURS, True),
        (552, "5.3.4 Message size exceeds fixed maximum message size", OURS, True),
        (451, "4.3.0 Mail server temporarily rejected message", OURS, False),
        (554, "5.4.6 Routing loop detected", OURS, True),
        (554, "5.5.0 Protocol error", OURS, True),
        (550, "5.6.0 Message content rejected", OURS, True),
        (554, "5.7.1 Message rejected as spam", OURS, True),
        (421, "4.7.0 Try again later, closing connection", OURS, False),
        # no enhanced code (or x.0.0, "other"): by the basic code, as before
        (550, "No such user here", RECIPIENT, True),
        (550, "5.0.0 User unknown", RECIPIENT, True),
        (554, "Relay access denied", OURS, True),
        (451, "try again later", OURS, False),
        (552, "Requested mail action aborted: exceeded storage allocation", RECIPIENT, True),
    ],
)
def test_every_reply_has_a_fault_and_a_duration(
    code: int, text: str, fault: Fault, permanent: bool
) -> None:
    status = classify(code, text)
    assert (status.fault, status.permanent) == (fault, permanent)


def test_the_basic_code_decides_when_the_enhanced_class_disagrees() -> None:
    """RFC 2034 wants the classes equal; a server that breaks it is retried, not bounced."""
    assert classify(450, "5.1.1 unknown for now").permanent is False
    assert classify(550, "4.3.0 whatever").permanent is True


def test_a_status_names_its_code_for_the_rule_of_replies_in_a_row() -> None:
    assert classify(552, "5.3.4 too big") == Status(
        code=552, enhanced="5.3.4", fault=OURS, permanent=True, subject="mail system"
    )
    assert classify(552, "5.3.4 too big").key == "552 5.3.4"
    assert classify(451, "try again later").key == "451"


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("5.3.4 Message too big", (5, 3, 4)),
        ("  4.2.2 full", (4, 2, 2)),
        ("5.1.10 null MX", (5, 1, 10)),
        ("Requested action aborted 5.3.4", None),  # only at the start (RFC 2034)
        ("5.3 oops", None),
        ("5.3.4.1 not a code", None),
        ("3.0.0 no such class", None),
    ],
)
def test_the_enhanced_code_is_read_from_the_start_of_the_text(
    text: str, found: tuple[int, int, int] | None
) -> None:
    assert enhanced_code(text) == found


def test_only_refusals_are_classified() -> None:
    with pytest.raises(ValueError, match="250 is not a refusal"):
        classify(250, "2.0.0 OK")
