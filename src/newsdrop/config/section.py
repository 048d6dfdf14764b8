"""What every section of the settings is: a frozen pydantic model that refuses unknown
keys; and the checks more than one section makes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def rate_text(value: str) -> str:
    """A rate as the limits library reads it ("5/hour"), or a ValueError that says so."""
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ValueError("must be a rate such as '5/hour', '10/minute' or '100 per day'") from None
    return value
