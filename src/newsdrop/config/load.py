"""Loading: config/newsdrop.toml plus ``NEWSDROP_<SECTION>__<KEY>`` overrides, validated once;
an unknown key, a wrong type or a bad value is one ``ConfigError`` that names the file (or
environment variable), the key, the value and what would be valid."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from newsdrop.config.schema import CONFIG_FILE, SECTIONS, Settings
from newsdrop.errors import ConfigError

ENV_PREFIX = "NEWSDROP_"


def load_settings(home: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``home/config/newsdrop.toml`` (optional), apply env overrides, validate."""
    environ = os.environ if environ is None else environ
    path = home / CONFIG_FILE
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax and retry") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from exc
    origin: dict[tuple[str, str], str] = {}
    for section, value in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{path}: unknown section [{section}]; valid sections are "
                + ", ".join(f"[{s}]" for s in SECTIONS)
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{section}' must be a [section] table, not a value")
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in SECTIONS:
            raise ConfigError(
                f"environment variable {name}: unknown section '{section}'; valid sections are "
                + ", ".join(SECTIONS)
            )
        raw.setdefault(section, {})[key] = _parse_env_value(
            text, list_key=_is_list_key(section, key)
        )
        origin[(section, key)] = f"environment variable {name}"
    try:
        return Settings.model_validate({"home": home, "source": str(path), **raw})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, origin)) from None


def _is_list_key(section: str, key: str) -> bool:
    field = Settings.model_fields.get(section)
    model = field.annotation if field else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        info = model.model_fields.get(key)
        return bool(info and "tuple" in str(info.annotation))
    return False


def _parse_env_value(text: str, *, list_key: bool) -> Any:
    """Env values stay strings (pydantic reads "2525" and "true" for number and flag keys);
    for list keys, a TOML array such as ``["a", "b"]`` is parsed."""
    if list_key:
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    return text


def _explain(exc: ValidationError, path: Path, origin: Mapping[tuple[str, str], str]) -> str:
    """Turn pydantic's report into sentences naming the file or variable, key, value and fix."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        section = loc[0] if loc else ""
        key = loc[1] if len(loc) > 1 else ""
        where = origin.get((section, key), str(path))
        if error["type"] == "extra_forbidden":
            known = ", ".join(_section_keys(section))
            lines.append(f"{where}: unknown key '{key}' in [{section}]; valid keys are {known}")
            continue
        shown = f"[{section}] {'.'.join(loc[1:])}" if key else f"[{section}]"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {shown} = {error.get('input')!r} is invalid: {message}")
    return "; ".join(lines)


def _section_keys(section: str) -> list[str]:
    field = Settings.model_fields.get(section)
    model = field.annotation if field else None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [info.alias or name for name, info in model.model_fields.items()]
    return []
