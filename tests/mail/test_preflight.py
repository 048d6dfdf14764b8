"""The mail preflight, `newsdrop check --mail`, against a real DNS server on 127.0.0.1
(dnslib's, tests/dnsd.py) and the tests' SMTP relay: a correct zone passes line by line,
and each broken one (no SPF, a wrong DKIM key, DMARC p=reject without alignment, no MX)
fails with the finding that names it. And the SPF evaluation by itself, on records."""

from __future__ import annotations

import shutil
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

import pytest

from dkim_keys import new_dkim_key, public_half
from dnsd import dns_server
from newsdrop.mail import spf

from conftest import CliRun

DOMAIN = "example.org"


def new_key(home: Path, name: str) -> str:
    """A DKIM key written to state/NAME.pem; its public half as a DKIM record's p=."""
    return new_dkim_key(home / "state" / f"{name}.pem", bits=1024)


def zone(p: str, *, spf_record: bool = True, mx: bool = True, dmarc: str = "p=reject") -> str:
    lines = [
        f'nd._domainkey.{DOMAIN}. 300 IN TXT "v=DKIM1; k=rsa; p={p}"',
        f'_dmarc.{DOMAIN}. 300 IN TXT "v=DMARC1; {dmarc}; rua=mailto:dmarc@{DOMAIN}"',
        f"mx.{DOMAIN}. 300 IN A 192.0.2.25",
    ]
    if spf_record:
        lines.append(f'bounces.{DOMAIN}. 300 IN TXT "v=spf1 include:_spf.{DOMAIN} -all"')
        lines.append(f'_spf.{DOMAIN}. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 ~all"')
    if mx:
        lines.append(f"bounces.{DOMAIN}. 300 IN MX 10 mx.{DOMAIN}.")
    return "\n".join(lines) + "\n"


@pytest.fixture
def checking(home: Path, smtp: SmtpServer) -> dict[str, str]:
    """An instance that signs with DKIM and sends from a bounce domain through the relay."""
    new_key(home, "dkim")
    return smtp.env(
        NEWSDROP_MAIL__FROM=f"news@{DOMAIN}",
        NEWSDROP_MAIL__DKIM_SELECTOR="nd",
        NEWSDROP_MAIL__DKIM_DOMAIN=DOMAIN,
        NEWSDROP_MAIL__DKIM_KEY_FILE="state/dkim.pem",
        NEWSDROP_BOUNCES__DOMAIN=f"bounces.{DOMAIN}",
        NEWSDROP_SMTP_PASSWORD=PASSWORD,
    )


def preflight(run: CliRun, env: dict[str, str], records: str) -> tuple[int, dict[str, str]]:
    """Exit code, and each finding's level by its first word (SPF, DKIM, DMARC, MX, ...)."""
    with dns_server(records) as server:
        done = run("check", "--mail", env={**env, "NEWSDROP_BOUNCES__DNS_SERVER": server})
    levels = {}
    for line in done.output.splitlines():
        level, _, message = line.partition(": ")
        if level in ("ok", "warning", "error") and ":" in message:
            levels[message.split(":")[0]] = level
    return done.exit_code, levels


def test_a_correct_zone_passes_every_line(
    home: Path, run: CliRun, checking: dict[str, str]
) -> None:
    assert run("subscribers", "add", "ann@example.com", env=checking).exit_code == 0
    (home / "seeds" / "a.md").write_text("# A story\n\nOf the town, told plainly.\n")
    assert run("ingest", env=checking).exit_code == 0
    code, levels = preflight(run, checking, zone(_published(home)))
    assert code == 0, levels
    wanted = ["SPF", "DKIM", "DMARC", "MX", "size"]
    if shutil.which("spamassassin"):  # (CI installs it) the current digest scores at most 0
        wanted.append("SpamAssassin")
    assert {name: levels.get(name) for name in wanted} == dict.fromkeys(wanted, "ok")


def _published(home: Path) -> str:
    return public_half(home / "state" / "dkim.pem")


@pytest.mark.parametrize(
    ("broken", "finding", "words"),
    [
        ("no SPF", "SPF", "publishes no SPF record"),
        ("a wrong DKIM key", "DKIM", "does not match state/dkim.pem"),
        ("DMARC p=reject without alignment", "DMARC", "aligns with neither DKIM nor SPF"),
        ("no MX", "MX", "has no MX record"),
    ],
)
def test_each_broken_zone_fails_with_the_finding_that_names_it(
    home: Path, run: CliRun, checking: dict[str, str], broken: str, finding: str, words: str
) -> None:
    env, public = dict(checking), _published(home)
    if broken == "no SPF":
        records = zone(public, spf_record=False)
    elif broken == "a wrong DKIM key":
        records = zone(new_key(home, "other"))  # another key's public half is published
    elif broken == "DMARC p=reject without alignment":
        env["NEWSDROP_MAIL__FROM"] = "news@example.net"  # aligns with neither domain
        records = zone(public).replace(f"_dmarc.{DOMAIN}", "_dmarc.example.net")
    else:
        records = zone(public, mx=False)
    with dns_server(records) as server:
        done = run("check", "--mail", env={**env, "NEWSDROP_BOUNCES__DNS_SERVER": server})
    assert done.exit_code == 2, done.output
    errors = [line for line in done.output.splitlines() if line.startswith(f"error: {finding}:")]
    assert len(errors) == 1 and words in errors[0], done.output
    others = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert others == errors, done.output  # nothing else is wrong with the zone


def test_plain_check_shows_the_preflight_but_fails_only_with_mail(
    home: Path, run: CliRun, checking: dict[str, str]
) -> None:
    with dns_server(zone(_published(home), mx=False)) as server:
        env = {**checking, "NEWSDROP_BOUNCES__DNS_SERVER": server}
        plain = run("check", env=env)
    assert plain.exit_code == 0 and "warning: MX:" in plain.output, plain.output
    assert "ok: SPF:" in plain.output
    # The operator says their MTA gets the bounce domain's mail without an MX.
    with dns_server(zone(_published(home), mx=False)) as server:
        env = {**checking, "NEWSDROP_BOUNCES__DNS_SERVER": server}
        told = run("check", "--mail", env={**env, "NEWSDROP_BOUNCES__CHECK_MX": "false"})
    assert told.exit_code == 0 and "ok: MX: not asked" in told.output, told.output


def test_a_dns_server_that_does_not_answer_is_named(
    home: Path, run: CliRun, checking: dict[str, str]
) -> None:
    from smtpd import free_port

    env = {**checking, "NEWSDROP_BOUNCES__DNS_SERVER": f"127.0.0.1:{free_port()}"}
    done = run("check", "--mail", env=env)
    assert done.exit_code == 2
    assert "error: DNS: 127.0.0.1:" in done.output and "[bounces] dns_server" in done.output


RECORDS = {
    ("example.org", "TXT"): ["v=spf1 mx a:relay.example.org include:_spf.example.net ~all"],
    ("example.org", "MX"): ["mx.example.org"],
    ("mx.example.org", "A"): ["192.0.2.10"],
    ("relay.example.org", "A"): ["192.0.2.20"],
    ("_spf.example.net", "TXT"): ["v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 -all"],
    ("redirected.org", "TXT"): ["v=spf1 redirect=example.org"],
    ("two.org", "TXT"): ["v=spf1 -all", "v=spf1 +all"],
    ("loop.org", "TXT"): ["v=spf1 include:loop.org"],
    ("macro.org", "TXT"): ["v=spf1 exists:%{i}.spf.macro.org -all"],
    ("dual.org", "TXT"): ["v=spf1 a:relay.example.org/24//64 -all"],
    ("relay.example.org", "AAAA"): ["2001:db8:1::1"],
    ("bad-cidr.org", "TXT"): ["v=spf1 a/99 -all"],
}


def lookup(name: str, kind: str) -> list[str]:
    return RECORDS.get((name, kind), [])


@pytest.mark.parametrize(
    ("domain", "address", "expected"),
    [
        ("example.org", "192.0.2.10", "pass"),  # mx
        ("example.org", "192.0.2.20", "pass"),  # a:relay
        ("example.org", "198.51.100.7", "pass"),  # include: ip4 range
        ("example.org", "2001:db8::1", "pass"),  # include: ip6 range
        ("example.org", "203.0.113.1", "softfail"),  # ~all
        ("redirected.org", "192.0.2.10", "pass"),
        ("redirected.org", "203.0.113.1", "softfail"),
        ("nothing.org", "192.0.2.10", "none"),
        ("two.org", "192.0.2.10", "permerror"),  # two records
        ("loop.org", "192.0.2.10", "permerror"),  # past ten look-ups
        ("macro.org", "192.0.2.10", "unevaluated"),  # macros are not read
        ("dual.org", "192.0.2.99", "pass"),  # the IPv4 length, /24, on the A record
        ("dual.org", "2001:db8:1::ffff", "pass"),  # the IPv6 length, /64, on the AAAA
        ("dual.org", "2001:db8:2::1", "fail"),
        ("dual.org", "198.51.100.1", "fail"),
        ("bad-cidr.org", "192.0.2.10", "permerror"),  # not a length
    ],
)
def test_spf_verdicts(domain: str, address: str, expected: str) -> None:
    assert spf.verdict(domain, address, lookup) == expected
