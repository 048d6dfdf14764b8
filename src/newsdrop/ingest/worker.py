"""The worker's side of the sandbox: a process that arms its limits (it dies with its parent,
its memory is bounded), loads the parsers once, then normalises documents and draws SVGs one
frame at a time."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from newsdrop.errors import SourceError
from newsdrop.ingest.frames import HEADER, entry_json, hints_from_json, write_frame
from newsdrop.model import Hints


def serve() -> None:
    """A worker's main loop: one request in from stdin, one answer out, until stdin ends."""
    memory_mb, parent = int(sys.argv[1]), int(sys.argv[2])
    _die_with(parent)
    out = os.dup(1)
    os.dup2(2, 1)  # stray prints must not break the protocol
    from newsdrop.ingest import normalize as normalizing

    _warm_up(normalizing)
    _limit_memory(memory_mb)
    write_frame(out, {"ready": True}, b"")
    source = sys.stdin.buffer
    while True:
        head = source.read(HEADER.size)
        if len(head) < HEADER.size:
            return  # the parent is gone or done
        size, length = HEADER.unpack(head)
        header, payload = json.loads(source.read(size)), source.read(length)
        try:
            answer, data = _handle(normalizing, header, payload)
        except MemoryError:
            write_frame(out, {"memory": True}, b"")
            return  # a fresh worker rather than a fragmented heap
        write_frame(out, answer, data)


def _handle(
    normalizing: Any, header: dict[str, Any], payload: bytes
) -> tuple[dict[str, Any], bytes]:
    name = str(header["name"])
    try:
        if header["op"] == "svg":
            return {"png": True}, _draw_svg(payload, name)
        entry = normalizing.normalize(payload, name, hints_from_json(header["hints"]))
        return {"entry": entry_json(entry)}, b""
    except SourceError as exc:
        return {"problem": str(exc)}, b""
    except MemoryError:
        raise
    except Exception as exc:  # a bug: reported with the document, never fatal to the run
        fault = {"kind": type(exc).__name__, "message": str(exc), "trace": traceback.format_exc()}
        return {"fault": fault}, b""


def _draw_svg(data: bytes, name: str) -> bytes:
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: cairocffi finds no libcairo
        raise SourceError(
            f"{name}: SVG images are published as PNG, and this installation cannot draw "
            f"them ({exc}); install libcairo2 (Debian's package), or use a PNG"
        ) from None

    try:  # unsafe=False: no XML entities, no files or URLs but data: ones (cairosvg >= 2.7)
        png = cairosvg.svg2png(bytestring=data, unsafe=False)
    except MemoryError:
        raise
    except Exception as exc:  # cairosvg raises what its parsers raise
        raise SourceError(
            f"{name}: is not an SVG image newsdrop can draw ({type(exc).__name__}: {exc}); "
            "fix it or use a PNG"
        ) from None
    if not isinstance(png, bytes):
        raise SourceError(f"{name}: drawing it gave no image; fix it or use a PNG")
    return png


def _die_with(parent: int) -> None:
    """SIGKILL when the parent ends (Linux); and end now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)


def _warm_up(normalizing: Any) -> None:
    """Load what the first document would (lazy imports, caches), before the limit is set."""
    hints = Hints(first_seen=datetime(2026, 1, 1, tzinfo=UTC))
    for name, data in (
        ("w.md", b"---\ntitle: T\ndate: 2026-01-01\n---\n# Head\n\nSome *text*.\n"),
        ("w.html", b"<html><head><title>T</title></head><body><p>Text.</p></body></html>"),
        ("w.txt", b"Warm\n\nText."),
    ):
        normalizing.normalize(data, name, hints)


def _limit_memory(memory_mb: int) -> None:
    """RLIMIT_AS: the worker's size after start-up plus the budget of one document."""
    try:
        import resource
    except ImportError:  # not POSIX: no limit, the timeout still holds
        return
    try:
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        size = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    limit = size + memory_mb * 1024 * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
