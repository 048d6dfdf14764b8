"""Time-zone abbreviations in written dates ("November 19, 2019, 07:47 PM EST"), pure.

dateutil reads a date and its zone's name, but knows no abbreviation beyond UTC and the
machine's own zone: anything else it drops in silence, and the time is read in the site's
zone, hours off. This table gives the common ones their offsets. Some are ambiguous (IST is
India, Ireland or Israel); those are read by the document's language or country where it
says so ("en-IN", "he", "ga"), else by the first reading listed, and the choice is said.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reading:
    """One meaning of an abbreviation: its offset from UTC and who writes it so."""

    minutes: int  # east of UTC
    name: str
    languages: frozenset[str] = frozenset()  # language subtags ("he") or regions ("IN")

    def offset(self) -> str:
        sign = "+" if self.minutes >= 0 else "−"
        hours, minutes = divmod(abs(self.minutes), 60)
        return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _one(minutes: int, name: str) -> tuple[Reading, ...]:
    return (Reading(minutes, name),)


ABBREVIATIONS: dict[str, tuple[Reading, ...]] = {
    # North America
    "EST": _one(-300, "Eastern Standard Time"),
    "EDT": _one(-240, "Eastern Daylight Time"),
    "CST": (
        Reading(-360, "Central Standard Time (North America)", frozenset({"US", "CA", "MX"})),
        Reading(480, "China Standard Time", frozenset({"zh", "CN", "TW", "HK", "MO"})),
        Reading(-300, "Cuba Standard Time", frozenset({"CU"})),
    ),
    "CDT": (
        Reading(-300, "Central Daylight Time (North America)", frozenset({"US", "CA", "MX"})),
        Reading(-240, "Cuba Daylight Time", frozenset({"CU"})),
    ),
    "MST": _one(-420, "Mountain Standard Time"),
    "MDT": _one(-360, "Mountain Daylight Time"),
    "PST": _one(-480, "Pacific Standard Time"),
    "PDT": _one(-420, "Pacific Daylight Time"),
    "AKST": _one(-540, "Alaska Standard Time"),
    "AKDT": _one(-480, "Alaska Daylight Time"),
    "HST": _one(-600, "Hawaii Standard Time"),
    "AST": (
        Reading(-240, "Atlantic Standard Time", frozenset({"CA", "PR", "BM"})),
        Reading(180, "Arabia Standard Time", frozenset({"ar", "SA", "KW", "IQ", "QA", "BH", "YE"})),
    ),
    "ADT": _one(-180, "Atlantic Daylight Time"),
    "NST": _one(-210, "Newfoundland Standard Time"),
    "NDT": _one(-150, "Newfoundland Daylight Time"),
    # South America
    "ART": _one(-180, "Argentina Time"),
    "BRT": _one(-180, "Brasília Time"),
    "CLT": _one(-240, "Chile Standard Time"),
    "COT": _one(-300, "Colombia Time"),
    "PET": _one(-300, "Peru Time"),
    # Europe and Africa
    "GMT": _one(0, "Greenwich Mean Time"),
    "UTC": _one(0, "Coordinated Universal Time"),
    "UT": _one(0, "Universal Time"),
    "Z": _one(0, "Zulu (UTC)"),
    "WET": _one(0, "Western European Time"),
    "WEST": _one(60, "Western European Summer Time"),
    "BST": (
        Reading(60, "British Summer Time", frozenset({"GB", "IE"})),
        Reading(360, "Bangladesh Standard Time", frozenset({"bn", "BD"})),
    ),
    "IST": (
        Reading(330, "India Standard Time", frozenset({"hi", "bn", "ta", "te", "mr", "IN"})),
        Reading(60, "Irish Standard Time", frozenset({"ga", "IE"})),
        Reading(120, "Israel Standard Time", frozenset({"he", "iw", "IL"})),
    ),
    "IDT": _one(180, "Israel Daylight Time"),
    "CET": _one(60, "Central European Time"),
    "CEST": _one(120, "Central European Summer Time"),
    "MET": _one(60, "Middle European Time"),
    "MEST": _one(120, "Middle European Summer Time"),
    "EET": _one(120, "Eastern European Time"),
    "EEST": _one(180, "Eastern European Summer Time"),
    "MSK": _one(180, "Moscow Time"),
    "TRT": _one(180, "Turkey Time"),
    "WAT": _one(60, "West Africa Time"),
    "CAT": _one(120, "Central Africa Time"),
    "EAT": _one(180, "East Africa Time"),
    "SAST": _one(120, "South Africa Standard Time"),
    # Asia and Oceania
    "GST": _one(240, "Gulf Standard Time"),
    "PKT": _one(300, "Pakistan Standard Time"),
    "NPT": _one(345, "Nepal Time"),
    "ICT": _one(420, "Indochina Time"),
    "WIB": _one(420, "Western Indonesia Time"),
    "HKT": _one(480, "Hong Kong Time"),
    "SGT": _one(480, "Singapore Time"),
    "PHT": _one(480, "Philippine Time"),
    "AWST": _one(480, "Australian Western Standard Time"),
    "JST": _one(540, "Japan Standard Time"),
    "KST": _one(540, "Korea Standard Time"),
    "ACST": _one(570, "Australian Central Standard Time"),
    "ACDT": _one(630, "Australian Central Daylight Time"),
    "AEST": _one(600, "Australian Eastern Standard Time"),
    "AEDT": _one(660, "Australian Eastern Daylight Time"),
    "NZST": _one(720, "New Zealand Standard Time"),
    "NZDT": _one(780, "New Zealand Daylight Time"),
}


@dataclass(frozen=True, slots=True)
class ZoneGuess:
    reading: Reading
    note: str  # empty when the abbreviation means one thing


def read_abbreviation(abbreviation: str, language: str) -> ZoneGuess | None:
    """The offset an abbreviation stands for, in a document of ``language`` (a tag such as
    "en-IN"); None for an abbreviation not in the table."""
    readings = ABBREVIATIONS.get(abbreviation.upper())
    if not readings:
        return None
    if len(readings) == 1:
        return ZoneGuess(readings[0], "")
    parts = language.replace("_", "-").split("-")
    subtags = {parts[0].lower(), *(p.upper() for p in parts[1:] if len(p) == 2)}
    for reading in readings:
        if reading.languages & subtags:
            return ZoneGuess(
                reading,
                f"{abbreviation} read as {reading.name} ({reading.offset()}), by the "
                f"document's language {language}",
            )
    default = readings[0]
    others = ", ".join(f"{r.name} ({r.offset()})" for r in readings[1:])
    telling = ", ".join(sorted(code for r in readings[1:] for code in r.languages)[:6])
    return ZoneGuess(
        default,
        f"{abbreviation} read as {default.name} ({default.offset()}), the default; it can also "
        f"be {others}: write the offset itself, or give the document a language or country "
        f"that says which ({telling})",
    )
