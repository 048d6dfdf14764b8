"""What a run tells normalize besides the bytes (the hints: the site's authority, language and
zone, the boilerplate learned so far), and the fingerprint of what judges a document, so
that a problem is read again when that changes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from datetime import datetime

from newsdrop.config import Settings
from newsdrop.model import Hints
from newsdrop.store import Store


def judge_fingerprint(settings: Settings) -> str:
    """What decides whether a document can become an entry, besides its bytes: newsdrop's
    version and the settings normalize reads. A problem judged under another is read again,
    so that a raised limit or a fixed bug takes effect."""
    try:
        version = importlib.metadata.version("newsdrop")
    except importlib.metadata.PackageNotFoundError:  # a source tree without an install
        version = "unknown"
    site = settings.site
    judge = {
        "newsdrop": version,
        "normalize": settings.normalize.model_dump(mode="json"),
        "site": [site.timezone, site.tag_authority, site.language],
    }
    return hashlib.sha256(json.dumps(judge, sort_keys=True).encode()).hexdigest()


def hints_for(settings: Settings, *, now: datetime, learned: frozenset[str]) -> Hints:
    n = settings.normalize
    return Hints(
        first_seen=now,
        updated=now,
        tag_authority=settings.site.tag_authority,
        default_lang=settings.site.language,
        timezone=settings.site.timezone,
        max_bytes=n.max_bytes,
        strip_boilerplate=n.strip_boilerplate,
        boilerplate_markers=n.boilerplate_markers,
        learned_boilerplate=learned,
        detect_language=n.detect_language,
        favor=n.favor,
        encodings=n.folder_encodings(),
    )


def learned_boilerplate(settings: Settings, store: Store) -> frozenset[str]:
    return store.learned_boilerplate() if settings.normalize.learn_boilerplate else frozenset()
