"""What a check found (``newsdrop check``, the mail preflight): one line each, an error,
a warning or an ok, each naming the file, key or record and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Finding:
    level: Literal["error", "warning", "ok"]
    message: str
