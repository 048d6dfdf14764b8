"""The least an ASGI app on uvicorn can do to serve one file, for the serving benchmark's
third column: the same uvicorn, httptools and uvloop as `newsdrop run`, an app that holds
the bytes and their header lists and does nothing else (no bounds, no routing, no
security headers). What is left between it and nginx is uvicorn's own cost per request.

python benchmarks/bare_asgi.py PORT FILE (FILE.gz beside it is the gzip copy)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn

port, path = int(sys.argv[1]), Path(sys.argv[2])
PLAIN = path.read_bytes()
GZIPPED = path.with_name(path.name + ".gz").read_bytes()
ETAG = b'"bare"'
COMMON = [(b"etag", ETAG), (b"cache-control", b"max-age=60"), (b"vary", b"Accept-Encoding")]
TYPE = (b"content-type", b"application/atom+xml; charset=utf-8")
ANSWERS = {
    "304": (304, COMMON, b""),
    "200": (200, [*COMMON, TYPE, (b"content-length", b"%d" % len(PLAIN))], PLAIN),
    "gzip": (
        200,
        [*COMMON, TYPE, (b"content-encoding", b"gzip"), (b"content-length", b"%d" % len(GZIPPED))],
        GZIPPED,
    ),
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = "200"
    for key, value in scope["headers"]:
        if key == b"if-none-match" and value == ETAG:
            kind = "304"
            break
        if key == b"accept-encoding" and b"gzip" in value:
            kind = "gzip"
    status, headers, body = ANSWERS[kind]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )
