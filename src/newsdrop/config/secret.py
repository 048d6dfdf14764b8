"""The instance secret, the key of unsubscribe tokens and signed links."""

from __future__ import annotations

import os
from collections.abc import Mapping

from newsdrop.config.schema import Settings
from newsdrop.errors import ConfigError

# (bandit B105 takes this for a password: it is the variable's name, not a secret.)
SECRET_ENV = "NEWSDROP_SECRET"  # nosec B105


def instance_secret(settings: Settings, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The key of unsubscribe tokens and signed links: $NEWSDROP_SECRET, else state/secret,
    which is made (private to its owner) the first time it is needed."""
    environ = os.environ if environ is None else environ
    if environ.get(SECRET_ENV):
        return environ[SECRET_ENV].encode()
    path = settings.state_dir / "secret"
    try:
        if not path.exists():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{path}: the instance secret cannot be read or made ({exc.strerror}); "
            f"fix the permissions of {settings.state_dir}, or set {SECRET_ENV}"
        ) from exc
    if len(secret) < 16:
        raise ConfigError(f"{path}: the instance secret is too short; delete it to make a new one")
    return secret.encode()
