"""What the sandbox and its workers say to each other: frames (a header of two lengths, a JSON
part, a payload) over pipes, and hints and entries as JSON."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from dataclasses import asdict, fields, replace
from datetime import datetime
from typing import Any

from newsdrop.model import Entry, Hints


class WorkerFault(Exception):
    """A bug in newsdrop that a document set off inside a worker: class, message, traceback."""

    def __init__(self, kind: str, message: str, trace: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.trace = kind, message, trace


HEADER = struct.Struct("!II")  # JSON length, payload length


def read_frame(fd: int, deadline: float) -> tuple[dict[str, Any] | None, bytes]:
    """One answer, or (None, b"") at the deadline or at the end of the pipe."""
    head = _read_exact(fd, HEADER.size, deadline)
    if head is None:
        return None, b""
    size, length = HEADER.unpack(head)
    body = _read_exact(fd, size + length, deadline)
    if body is None:
        return None, b""
    return json.loads(body[:size]), body[size:]


def _read_exact(fd: int, size: int, deadline: float) -> bytes | None:
    chunks, missing = [], size
    while missing:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def hints_json(hints: Hints) -> dict[str, Any]:
    """Without taken_slugs (every slug of the store): claim_slug applies them here instead.
    A run passes the same hints for every new document: made once for them."""
    global _last_hints  # one tuple, read and replaced whole: safe between threads
    last = _last_hints
    if last is not None and last[0] is hints:
        return last[1]
    encoded = _encode_hints(hints)
    _last_hints = (hints, encoded)
    return encoded


_last_hints: tuple[Hints, dict[str, Any]] | None = None


def _encode_hints(hints: Hints) -> dict[str, Any]:
    values = asdict(replace(hints, taken_slugs=frozenset()))
    values["learned_boilerplate"] = sorted(hints.learned_boilerplate)
    values["taken_slugs"] = []
    for key in ("first_seen", "updated"):
        values[key] = values[key].isoformat() if values[key] else None
    return values


def hints_from_json(values: dict[str, Any]) -> Hints:
    values = dict(values)
    values["first_seen"] = datetime.fromisoformat(values["first_seen"])
    values["updated"] = datetime.fromisoformat(values["updated"]) if values["updated"] else None
    values["boilerplate_markers"] = tuple(values["boilerplate_markers"])
    values["encodings"] = tuple((str(folder), str(code)) for folder, code in values["encodings"])
    values["learned_boilerplate"] = frozenset(values["learned_boilerplate"])
    values["taken_slugs"] = frozenset()
    return Hints(**values)


def entry_json(entry: Entry) -> dict[str, Any]:
    values = asdict(entry)
    values["published"] = entry.published.isoformat()
    values["updated"] = entry.updated.isoformat()
    return values


_ENTRY_FIELDS = {f.name: str(f.type) for f in fields(Entry)}


def entry_from_json(values: dict[str, Any]) -> Entry:
    """An Entry from a worker's answer, field by field with its type checked."""
    kinds = _ENTRY_FIELDS
    if values.keys() != kinds.keys():
        raise WorkerFault("ProtocolError", f"unexpected answer fields {sorted(values)}", "")
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = kinds[key]
        if kind == "datetime":
            out[key] = datetime.fromisoformat(str(value))
        elif kind.startswith("tuple"):
            out[key] = tuple(str(v) for v in value)
        elif kind == "int":
            out[key] = int(value)
        elif kind == "bool":
            out[key] = bool(value)
        else:
            out[key] = str(value)
    return Entry(**out)


def write_frame(fd: int, header: dict[str, Any], payload: bytes) -> None:
    body = json.dumps(header).encode()
    data = memoryview(HEADER.pack(len(body), len(payload)) + body + payload)
    while data:
        data = data[os.write(fd, data) :]
