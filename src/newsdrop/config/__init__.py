"""Settings: config/newsdrop.toml plus ``NEWSDROP_<SECTION>__<KEY>`` overrides, validated
once. schema.py holds the keys (mail.py those of [mail] and [bounces], section.py what every
section is), load.py reads and explains them, secret.py the instance's key."""

from newsdrop.config.load import load_settings
from newsdrop.config.mail import MailSettings
from newsdrop.config.schema import (
    CONFIG_FILE,
    DEFAULT_BOILERPLATE_MARKERS,
    SECTIONS,
    DigestSettings,
    NormalizeSettings,
    ServerSettings,
    Settings,
)
from newsdrop.config.secret import instance_secret

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_BOILERPLATE_MARKERS",
    "SECTIONS",
    "DigestSettings",
    "MailSettings",
    "NormalizeSettings",
    "ServerSettings",
    "Settings",
    "instance_secret",
    "load_settings",
]
