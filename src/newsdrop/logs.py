"""Log lines for people and for machines: readable text on a terminal, JSON lines elsewhere.

Every line carries its context as ``extra`` fields (path, delivery, seconds...);
the text format appends them as ``key=value``, the JSON format as keys. Text that
comes from outside (file names, problem reasons) may hold control characters: the
text format shows them escaped (``printable``), so a file name cannot forge a line or
drive the terminal; JSON escapes them itself.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["auto", "text", "json"]

# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional
# overrides and isolates that make a name read as another on screen.
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """``text`` with every control character escaped as Python's repr would (``\\x1b``,
    ``\\n``): one line, shown as it is, whatever a file name holds."""
    return _UNPRINTABLE.sub(_escape, text)


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _logger(record: logging.LogRecord) -> str:
    """The logger's name, but uvicorn's server lines ("Uvicorn running on ...") as
    ``uvicorn``: it logs them all as ``uvicorn.error``, which alarms whoever reads it."""
    if record.name == "uvicorn.error" and record.levelno < logging.WARNING:
        return "uvicorn"
    return record.name


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).astimezone().strftime("%H:%M:%S")
        context = " ".join(f"{k}={printable(str(v))}" for k, v in _context(record).items())
        message = printable(record.getMessage().rstrip())
        line = f"{when} {record.levelname.lower():7} {message}"
        line = f"{line}  {context}" if context else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": _logger(record),
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(fmt: LogFormat, *, level: int = logging.INFO) -> None:
    """Route every logger (newsdrop's, uvicorn's, APScheduler's) to stderr in one format."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = (
        "apscheduler",
        "uvicorn.access",
        "watchfiles",
        "httpx",
        "aiosmtplib",
        "newsdrop.publish.build",
    )
    for name in quiet:  # their lines repeat what the service's own lines say
        logging.getLogger(name).setLevel(logging.WARNING if level >= logging.INFO else level)
    # One-shot commands quiet mail/deliver.py (their summary counts its lines); a service logs
    # each digest's outcome.
    logging.getLogger("newsdrop.mail.deliver").setLevel(logging.NOTSET)


def levels() -> dict[str, int]:
    """The level set on each logger that has one (the root as ""), for a worker process
    to log exactly what this one does."""
    named = logging.Logger.manager.loggerDict.items()
    found = {name: lg.level for name, lg in named if isinstance(lg, logging.Logger) and lg.level}
    return {"": logging.getLogger().level, **found}


def forward(handler: logging.Handler, levels: dict[str, int]) -> None:
    """In a worker process: every line to ``handler`` (a queue to the service), at the
    levels the service's loggers have (``levels``)."""
    logging.getLogger().handlers[:] = [handler]
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def without(reply: str, email: str) -> str:
    """A server's reply for the log, without the address it may quote: log lines name a
    subscriber by id, so that deleting them leaves their address nowhere."""
    return re.sub(re.escape(email), "<their address>", reply, flags=re.IGNORECASE)
