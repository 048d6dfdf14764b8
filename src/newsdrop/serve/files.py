"""feeds/ as HTTP answers: each file's representation (bytes, a gzip copy, validators), the
files every feed reader polls held in memory (FileCache) and answered by a lean ASGI handler
in front of the app (HotFiles), and the files from disk, never outside feeds/."""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from newsdrop.serve.headers import SECURITY_FIELDS

GZIP_FROM = 256  # smaller bodies grow when compressed


Headers = list[tuple[bytes, bytes]]


def content_type(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    if base == "atom.xml" or base.endswith(".atom.xml"):
        return "application/atom+xml; charset=utf-8"
    if base == "rss.xml" or base.endswith(".rss.xml"):
        return "application/rss+xml; charset=utf-8"
    if base == "feed.json" or (name.startswith("tags/") and base.endswith(".json")):
        return "application/feed+json; charset=utf-8"
    guessed = mimetypes.guess_type(base)[0] or "application/octet-stream"
    textual = guessed.startswith("text/") or guessed.endswith(("xml", "json"))
    return f"{guessed}; charset=utf-8" if textual else guessed


@dataclass(frozen=True, slots=True)
class Representation:
    """One file ready to send: body, gzip copy (None: not worth it) and validators."""

    body: bytes
    gzipped: bytes | None
    etag: str
    modified: datetime  # whole seconds, as Last-Modified says it
    content_type: str
    stamp: tuple[int, int]  # (mtime_ns, size) of the file it was read from

    @property
    def etags(self) -> tuple[str, str]:
        return self.etag, self.etag[:-1] + '-gz"'  # distinct, as the bytes differ

    def headers(self, *, gzipped: bool, cache_control: str) -> dict[str, str]:
        return {
            "etag": self.etags[1] if gzipped else self.etag,
            "last-modified": format_datetime(self.modified, usegmt=True),
            "cache-control": cache_control,
            "vary": "Accept-Encoding",
        }


def read_representation(root: Path, name: str) -> Representation | None:
    """The file ``name`` under ``root`` (an already checked relative path), or None when it
    is not a regular file there. Reads through one descriptor, so that a file replaced by a
    build meanwhile gives its old or its new bytes and their own validators, never a mix."""
    try:  # O_NOFOLLOW: builds write real files; a symbolic link may lead out of feeds/
        with os.fdopen(os.open(root / name, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None
            body = handle.read()
    except OSError:
        return None
    kind = content_type(name)
    compressible = "charset=" in kind and len(body) >= GZIP_FROM
    return Representation(
        body=body,
        gzipped=gzip.compress(body, compresslevel=6, mtime=0) if compressible else None,
        etag=f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"',
        modified=datetime.fromtimestamp(info.st_mtime_ns // 1_000_000_000, UTC),
        content_type=kind,
        stamp=(info.st_mtime_ns, info.st_size),
    )


def is_hot(name: str) -> bool:
    """Files every reader polls: the top level of feeds/ and the tag feeds."""
    return "/" not in name or (name.startswith("tags/") and name.count("/") == 1)


def safe_name(root: Path, path: str, raw_path: bytes | None) -> str | None:
    """The file a URL path names under root, or None for anything that could leave it
    (``..``, encoded slashes, backslashes, NUL, hidden files, symlinks out)."""
    if raw_path is not None and any(bad in raw_path.lower() for bad in (b"%2f", b"%5c", b"%00")):
        return None
    name = path.lstrip("/")
    if not name or name.endswith("/"):
        name += "index.html"
    parts = name.split("/")
    if "\\" in name or "\x00" in name or any(p in ("", ".", "..") or p[0] == "." for p in parts):
        return None
    try:
        real = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root.resolve()) or not real.is_file():
        return None
    return name


REFRESH_PASSES = 4  # a build renaming files faster than they are read is met on the next poll


class FileCache:
    """The hot files in memory. A refresh (in a thread) makes a new table and puts it in
    place in one assignment; the event loop reads whichever table is in place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Representation] = {}
        self.lock = threading.Lock()  # one refresh at a time: each starts from the last

    def refresh(self, names: Iterable[str] | None = None) -> list[str]:
        """Reload these names (None: every hot file on disk whose stamp moved); returns the
        names that changed. They switch at once: a reader never gets a new Atom feed beside
        the old RSS one. The names are read again until a pass finds none moved: a build
        renaming the three head feeds while they were read may have moved one this pass had
        already passed as unchanged (new Atom and RSS beside the old JSON feed, until the
        next poll, once). Blocking file I/O: call it from a thread."""
        with self.lock:
            files = dict(self.files)
            wanted = set(files) | set(self._hot_on_disk()) if names is None else set(names)
            hot = sorted(n for n in wanted if is_hot(n))  # one order: a test can race it
            changed: set[str] = set()
            for _ in range(REFRESH_PASSES):
                moved = self._reload(files, hot)
                if not moved:
                    break
                changed |= moved
            if changed:
                self.files = files
            return sorted(changed)

    def _reload(self, files: dict[str, Representation], names: list[str]) -> set[str]:
        """Bring ``files`` in line with the disk for ``names``; the names that changed."""
        changed = set()
        for name in names:
            old = files.get(name)
            stamp = self._stamp(name)
            if old is not None and stamp is not None and old.stamp == stamp:
                continue
            fresh = read_representation(self.root, name)
            if fresh is None:
                if files.pop(name, None) is not None:
                    changed.add(name)
            else:
                files[name] = fresh
                changed.add(name)
        return changed

    def _stamp(self, name: str) -> tuple[int, int] | None:
        try:
            info = os.stat(self.root / name)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _hot_on_disk(self) -> Iterable[str]:
        # Never through a symbolic link: builds write real files, and a link may lead out.
        for top in _listing(self.root):
            if top.is_file(follow_symlinks=False):
                yield top.name
            elif top.is_dir(follow_symlinks=False) and top.name == "tags":
                for tag in _listing(Path(top.path)):
                    if tag.is_file(follow_symlinks=False):
                        yield f"tags/{tag.name}"


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as items:
            return [item for item in items if not item.name.startswith(".")]
    except OSError:
        return []


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, rep: Representation
) -> bool:
    """RFC 9110 section 13.1: If-None-Match (weak comparison) wins over If-Modified-Since."""
    if if_none_match is not None:
        if if_none_match in rep.etags:  # the usual case: the one tag we sent, sent back
            return True
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or bool(tags & set(rep.etags))
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return rep.modified <= since
    return False


def file_response(request: Request, rep: Representation, cache_control: str) -> Response:
    gz = rep.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding", ""))
    headers = rep.headers(gzipped=gz, cache_control=cache_control)
    inm = request.headers.get("if-none-match")
    if not_modified(inm, request.headers.get("if-modified-since"), rep):
        return Response(status_code=304, headers=headers)
    body = rep.gzipped if gz and rep.gzipped is not None else rep.body
    if gz:
        headers["content-encoding"] = "gzip"
    headers["content-length"] = str(len(body))
    if request.method == "HEAD":
        return Response(b"", headers=headers, media_type=rep.content_type)
    return Response(body, headers=headers, media_type=rep.content_type)


class HotFiles:
    """The files every feed reader polls, answered from memory as raw ASGI in front of the
    app, without routing or a Request; anything else goes on to the app. The header lists
    of each representation are made once, when the file changes."""

    def __init__(self, cache: FileCache, app: ASGIApp, *, cache_control: str) -> None:
        self.cache = cache
        self.app = app
        self.cache_control = cache_control
        self.prepared: dict[str, tuple[Representation, list[Headers]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            answer = self.answer(scope.get("raw_path") or b"/", scope["headers"])
            if answer is not None:
                status, headers, body = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                if scope["method"] == "HEAD":
                    body = b""
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def answer(
        self, raw_path: bytes, request_headers: Headers
    ) -> tuple[int, Headers, bytes] | None:
        """(status, headers, body) for a GET of a cached file; None for anything else (an
        encoded path, a file not in memory), which goes the long way."""
        if b"%" in raw_path:
            return None
        name = raw_path[1:].decode("latin-1") or "index.html"
        rep = self.cache.files.get(name)
        if rep is None:
            return None
        encoding = inm = ims = None
        for key, value in request_headers:
            if key == b"accept-encoding":
                encoding = value
            elif key == b"if-none-match":
                inm = value
            elif key == b"if-modified-since":
                ims = value
        gz = (
            rep.gzipped is not None
            and encoding is not None
            and accepts_gzip(encoding.decode("latin-1"))
        )
        lists = self._headers(name, rep)
        if (inm is not None or ims is not None) and not_modified(
            None if inm is None else inm.decode("latin-1"),
            None if ims is None else ims.decode("latin-1"),
            rep,
        ):
            return 304, lists[gz], b""
        body = rep.gzipped if gz and rep.gzipped is not None else rep.body
        return 200, lists[2 + gz], body

    def _headers(self, name: str, rep: Representation) -> list[Headers]:
        """[304 plain, 304 gzip, 200 plain, 200 gzip] header lists of this representation (the
        200s with the security headers, serve/headers.py)."""
        known = self.prepared.get(name)
        if known is not None and known[0] is rep:
            return known[1]
        lists: list[Headers] = []
        for status in (304, 200):
            for gz in (False, True):
                fields = rep.headers(gzipped=gz, cache_control=self.cache_control)
                if status == 200:
                    body = rep.gzipped if gz and rep.gzipped is not None else rep.body
                    fields["content-type"] = rep.content_type
                    fields["content-length"] = str(len(body))
                    if gz:
                        fields["content-encoding"] = "gzip"
                encoded = [(k.encode(), v.encode()) for k, v in fields.items()]
                lists.append(encoded + SECURITY_FIELDS if status == 200 else encoded)
        self.prepared[name] = (rep, lists)
        return lists
