"""Whether mail will land, asked of DNS before a digest goes out (``newsdrop check --mail``):
SPF of the envelope domain allows the relay, the DKIM key published is the one that signs,
a DMARC record exists and the From domain aligns with DKIM or SPF, and the bounce domain
has an MX. What Gmail and Yahoo require of bulk senders. Each finding is ok, a warning or
an error, with what to do. DNS through dnspython, at ``[bounces] dns_server`` when set."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from typing import Literal

import dns.exception
import dns.resolver
from publicsuffixlist import PublicSuffixList

from newsdrop.config import Settings
from newsdrop.findings import Finding
from newsdrop.mail import spf

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail shows "[Message clipped]" past this much HTML


class DnsFailure(Exception):
    """The DNS server did not answer (not: it said there is no such record)."""


@dataclass
class Dns:
    """Look-ups through one resolver: none found is an empty list; no answer, DnsFailure."""

    resolver: dns.resolver.Resolver

    @classmethod
    def of(cls, settings: Settings) -> Dns:
        server = settings.bounces.dns_server
        if not server:
            return cls(dns.resolver.Resolver())
        resolver = dns.resolver.Resolver(configure=False)
        host, port = settings.bounces.dns_address()
        resolver.nameservers = [host]
        resolver.port = port
        resolver.lifetime = 5.0
        return cls(resolver)

    def records(self, name: str, kind: str) -> list[str]:
        try:
            answer = self.resolver.resolve(name, kind, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.DNSException as exc:  # a timeout, no server, a broken answer
            raise DnsFailure(f"no answer for {kind} {name}: {exc}") from None
        if kind == "TXT":  # one record may be split into strings of 255 octets
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        if kind == "MX":
            return [str(r.exchange).rstrip(".") for r in answer]
        return [r.to_text() for r in answer]

    def addresses(self, name: str) -> list[str]:
        return self.records(name, "A") + self.records(name, "AAAA")


def preflight(settings: Settings, dns_: Dns) -> list[Finding]:
    """Every DNS finding about the instance's mail, in the order a reader fixes them."""
    from_domain = _domain(settings.mail.from_)
    envelope_domain = settings.bounces.domain or from_domain
    try:
        relay = _relay_addresses(settings)
        found = _spf(envelope_domain, settings.mail.host, relay, dns_)
        spf_state = {"ok": "pass", "warning": "unknown"}.get(found[0].level, "fail")
        found += _dkim(settings, dns_)
        dkim_ok = found[-1].level == "ok"
        found += _dmarc(settings, from_domain, envelope_domain, spf_state, dkim_ok, dns_)
        found += _mx(settings, dns_)
    except DnsFailure as exc:
        server = settings.bounces.dns_server or "the system's resolver"
        return [Finding("error", f"DNS: {server} gave {exc}; check [bounces] dns_server")]
    return found


def _relay_addresses(settings: Settings) -> list[str]:
    """The relay's addresses as a send reaches it (the system's resolver, /etc/hosts too)."""
    try:
        found = socket.getaddrinfo(settings.mail.host, settings.mail.port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(ipaddress.ip_address(info[4][0])) for info in found})


def _spf(domain: str, host: str, relay: list[str], dns_: Dns) -> list[Finding]:
    """The SPF finding: "ok" (allowed), "warning" (cannot be told from here) or "error"."""
    if not relay:
        return [
            Finding(
                "warning",
                f"SPF: the relay {host} has no address here, so whether "
                f"{domain}'s SPF allows it cannot be told; check [mail] host",
            )
        ]
    published = spf.records(domain, dns_.records)
    if not published:
        example = " ".join(
            "ip4:<your MTA's public address>" if _local(a) else f"ip{_version(a)}:{a}"
            for a in relay
        )
        return [
            Finding(
                "error",
                f"SPF: {domain} publishes no SPF record, so receivers cannot tell our mail "
                f'from forgeries; publish a TXT record such as "v=spf1 {example} -all" (or '
                "your relay provider's include:)",
            )
        ]
    verdicts = {address: spf.verdict(domain, address, dns_.records) for address in relay}
    refused = [a for a, v in verdicts.items() if v != "pass"]
    if not refused:
        return [Finding("ok", f"SPF: {domain} allows the relay ({', '.join(relay)})")]
    local = all(_local(a) for a in refused)
    what = ", ".join(f"{a}: {verdicts[a]}" for a in refused)
    if "unevaluated" in verdicts.values():
        return [
            Finding(
                "warning",
                f"SPF: {domain}'s record uses macros, which this check does "
                f"not evaluate ({what}); make sure it allows the relay",
            )
        ]
    if local:  # the address that reaches receivers is the MTA's, which cannot be seen here
        return [
            Finding(
                "warning",
                f"SPF: the relay {host} is on this machine or a private "
                f"network ({what}), so it is the address your MTA sends from that "
                f"{domain}'s SPF must allow; that cannot be told from here",
            )
        ]
    return [
        Finding(
            "error",
            f"SPF: {domain} does not allow the relay ({what}); add ip4:/ip6: "
            f"terms for it (or the relay provider's include:) to {published[0]!r}",
        )
    ]


def _dkim(settings: Settings, dns_: Dns) -> list[Finding]:
    import dkim

    from newsdrop.mail.dkim import dkim_key, dkim_sign

    mail = settings.mail
    if not mail.dkim_selector:
        return [
            Finding(
                "warning",
                "DKIM: mail is not signed; Gmail and Yahoo require DKIM of bulk senders: set "
                "[mail] dkim_selector, dkim_domain and dkim_key_file",
            )
        ]
    name = f"{mail.dkim_selector}._domainkey.{mail.dkim_domain}"
    published = dns_.records(name, "TXT")
    publish = (
        f"publish the public half of {mail.dkim_key_file} there (openssl rsa -in "
        f'{mail.dkim_key_file} -pubout -outform DER | base64 -w0) as "v=DKIM1; k=rsa; p=..."'
    )
    if not published:
        return [Finding("error", f"DKIM: no key is published at {name}; {publish}")]
    probe = (
        b"From: <preflight@"
        + mail.dkim_domain.encode()
        + b">\r\nSubject: preflight\r\n\r\nA probe.\r\n"
    )
    signed = dkim_sign(
        probe, selector=mail.dkim_selector, domain=mail.dkim_domain, key=dkim_key(settings)
    )

    def txt(queried: bytes, timeout: int = 5) -> bytes:
        return "".join(dns_.records(queried.decode().rstrip("."), "TXT")[:1]).encode()

    if not dkim.verify(signed, dnsfunc=txt):
        return [
            Finding(
                "error",
                f"DKIM: the key published at {name} does not match "
                f"{mail.dkim_key_file}: receivers will fail every signature; {publish}",
            )
        ]
    return [Finding("ok", f"DKIM: the key published at {name} verifies our signature")]


def _dmarc(
    settings: Settings,
    from_domain: str,
    envelope_domain: str,
    spf_state: str,
    dkim_ok: bool,
    dns_: Dns,
) -> list[Finding]:
    """``spf_state``: "pass", "fail" or "unknown" (the relay's outbound address cannot be
    seen from here); ``dkim_ok``: the published key verifies our signature."""
    organization = _organization(from_domain)
    record, inherited = "", False
    for where in dict.fromkeys((from_domain, organization)):
        found = [t for t in dns_.records(f"_dmarc.{where}", "TXT") if t.startswith("v=DMARC1")]
        if found:
            record, inherited = found[0], where != from_domain
            break
    if not record:
        return [
            Finding(
                "error",
                f"DMARC: {from_domain} has no DMARC record; Gmail and Yahoo require one of bulk "
                f'senders: publish TXT _dmarc.{organization} "v=DMARC1; p=none; '
                f'rua=mailto:dmarc@{organization}"',
            )
        ]
    tags = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (t.partition("=") for t in record.split(";"))
    )
    # A subdomain under an organization's record: its sp= (RFC 7489 6.3), else p=
    policy = (tags.get("sp") if inherited else None) or tags.get("p", "none")
    policy = policy.lower()
    mail = settings.mail
    by_dkim = dkim_ok and _aligned(from_domain, mail.dkim_domain, tags.get("adkim"))
    spf_aligned = _aligned(from_domain, envelope_domain, tags.get("aspf"))
    by_spf = spf_state == "pass" and spf_aligned
    if not by_dkim and spf_state == "unknown" and spf_aligned:
        return [
            Finding(
                "warning",
                f"DMARC: p={policy}; From ({from_domain}) aligns with the "
                f"SPF domain {envelope_domain}, so mail passes if SPF allows your MTA, "
                "which cannot be told from here; aligned DKIM would make it certain",
            )
        ]
    if by_dkim or by_spf:
        how = " and ".join(
            w
            for w, ok in (
                (f"DKIM d={mail.dkim_domain}", by_dkim),
                (f"the SPF domain {envelope_domain}", by_spf),
            )
            if ok
        )
        return [Finding("ok", f"DMARC: p={policy}; From ({from_domain}) aligns with {how}")]
    fix = (
        f"sign with dkim_domain = {organization} (or a domain under it), or send from a bounce "
        f"domain under {organization} with SPF that allows the relay"
    )
    level: Literal["error", "warning"] = (
        "error" if policy in ("reject", "quarantine") else "warning"
    )
    consequence = "receivers will refuse our mail" if level == "error" else "it would fail"
    return [
        Finding(
            level,
            f"DMARC: p={policy}, but From ({from_domain}) aligns with neither "
            f"DKIM nor SPF, so {consequence}: {fix}",
        )
    ]


def _mx(settings: Settings, dns_: Dns) -> list[Finding]:
    domain = settings.bounces.domain
    if not domain:
        return [
            Finding(
                "warning",
                "bounces: [bounces] domain is not set, so returned mail and complaints go to "
                "[mail] from and nothing acts on them; set it, with an MX to your MTA",
            )
        ]
    if not settings.bounces.check_mx:
        return [Finding("ok", f"MX: not asked of {domain} ([bounces] check_mx = false)")]
    exchanges = dns_.records(domain, "MX")
    if exchanges:
        return [Finding("ok", f"MX: returned mail to {domain} goes to {', '.join(exchanges)}")]
    return [
        Finding(
            "error",
            f"MX: {domain} has no MX record, so returned mail cannot reach us; publish one "
            "pointing at your MTA, which relays it to [bounces] listen or pipes it to "
            "`newsdrop bounces receive` (or, if your MTA gets it otherwise, set [bounces] "
            "check_mx = false)",
        )
    ]


def digest_size(data: bytes) -> Finding:
    """The digest's HTML against Gmail's clip."""
    from email import message_from_bytes
    from email import policy as email_policy

    message = message_from_bytes(data, policy=email_policy.default)
    html = message.get_body(preferencelist=("html",))
    size = len(str(html.get_content()).encode()) if html is not None else 0
    if size > GMAIL_CLIP_BYTES:
        return Finding(
            "warning",
            f"size: the current digest's HTML is {size / 1024:.0f} KB; "
            "Gmail clips past 102 KB; digests are made to fit under 95 KB, so it is the "
            "instance's own templates in digest/ that make it larger: trim them",
        )
    return Finding(
        "ok", f"size: the current digest's HTML is {size / 1024:.0f} KB (Gmail clips past 102 KB)"
    )


def _local(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower()


@lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list packaged with the library: no download


def _organization(domain: str) -> str:
    """The organizational domain (RFC 7489 3.2): the public suffix and one label more."""
    return _suffixes().privatesuffix(domain) or domain


def _aligned(from_domain: str, other: str, mode: str | None) -> bool:
    """DMARC alignment: strict ("s") the same name; relaxed, the same organization."""
    if (mode or "r").lower() == "s":
        return from_domain == other.lower()
    return _organization(from_domain) == _organization(other.lower())
