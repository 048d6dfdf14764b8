"""The SPF result (RFC 7208) for mail from a domain sent from an address, over any look-up
function: the mechanisms senders' records use (ip4, ip6, a, mx, include, exists, all, and
the redirect modifier, dual CIDR lengths), with the limit of ten DNS-querying terms. A
record that needs a macro gives "unevaluated" (not read here); ptr never matches. pyspf would do it, but it reaches DNS
through a module global and a call dnspython 2 deprecates. Pure, given ``lookup``."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

Lookup = Callable[[str, str], list[str]]  # (name, "TXT" | "A" | "AAAA" | "MX") -> records

LOOKUPS = 10  # RFC 7208 4.6.4: more DNS-querying terms than this is a permanent error
_RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class _PermError(Exception):
    pass


class _Macro(Exception):
    pass


_CIDR = re.compile(r"(?:/([0-9]{1,2}))?(?://([0-9]{1,3}))?")  # a/24//64: ip4, then ip6


def records(domain: str, lookup: Lookup) -> list[str]:
    """The domain's SPF records (a well-formed domain has one)."""
    return [t for t in lookup(domain, "TXT") if re.match(r"v=spf1(\s|$)", t, re.IGNORECASE)]


def verdict(domain: str, address: str, lookup: Lookup) -> str:
    """The result: "pass", "fail", "softfail", "neutral", "none", "permerror", or
    "unevaluated" (a macro on the way)."""
    try:
        return _check(domain, ipaddress.ip_address(address), lookup, [LOOKUPS])
    except _PermError:
        return "permerror"
    except _Macro:
        return "unevaluated"


def _check(domain: str, ip: ipaddress._BaseAddress, lookup: Lookup, budget: list[int]) -> str:
    found = records(domain, lookup)
    if len(found) != 1:
        if not found:
            return "none"
        raise _PermError
    redirect = ""
    for term in found[0].split()[1:]:
        key, equals, value = term.partition("=")
        if equals and ":" not in key:  # a modifier
            redirect = value if key.lower() == "redirect" else redirect
            continue
        qualifier, mechanism = (term[0], term[1:]) if term[0] in _RESULTS else ("+", term)
        if _matches(mechanism, domain, ip, lookup, budget):
            return _RESULTS[qualifier]
    if redirect:
        _spend(budget)
        inner = _check(redirect, ip, lookup, budget)
        if inner == "none":
            raise _PermError
        return inner
    return "neutral"


def _matches(
    mechanism: str, domain: str, ip: ipaddress._BaseAddress, lookup: Lookup, budget: list[int]
) -> bool:
    name, _, argument = mechanism.partition(":")
    name, slash, lengths = name.lower().partition("/")
    if "%" in argument:
        raise _Macro
    if name in ("ip4", "ip6"):
        try:
            return ip in ipaddress.ip_network(argument, strict=False)
        except ValueError:
            raise _PermError from None
    if name == "all":
        return True
    if name not in ("a", "mx", "include", "exists", "ptr"):
        raise _PermError  # an unknown mechanism
    _spend(budget)
    if name == "include":
        inner = _check(argument, ip, lookup, budget)
        if inner == "none":
            raise _PermError
        return inner == "pass"
    if name == "exists":
        return bool(lookup(argument, "A"))
    if name == "ptr":
        return False  # not read: RFC 7208 asks senders not to use it
    target, host_slash, host_lengths = argument.partition("/")
    cidr = _CIDR.fullmatch(slash + lengths if slash else host_slash + host_lengths)
    if cidr is None or int(cidr[1] or 0) > 32 or int(cidr[2] or 0) > 128:
        raise _PermError
    prefix = cidr[1] if ip.version == 4 else cidr[2]  # each family its own length
    hosts = [target or domain] if name == "a" else lookup(target or domain, "MX")
    kind = "A" if ip.version == 4 else "AAAA"
    try:
        return any(
            ip in ipaddress.ip_network(f"{found}/{prefix}" if prefix else found, strict=False)
            for host in hosts
            for found in lookup(host, kind)
        )
    except ValueError:
        raise _PermError from None


def _spend(budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise _PermError
