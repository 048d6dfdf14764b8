"""DKIM keys for the tests: a new RSA key written as PEM, and the public half as a DNS
record's p= value (base64 of the DER SubjectPublicKeyInfo)."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key


def new_dkim_key(path: Path, *, bits: int = 2048) -> str:
    """A new private key written to ``path``; its public half as p=."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return public_half(path)


def public_half(path: Path) -> str:
    """The public half of the PEM key at ``path``, as p=."""
    key = load_pem_private_key(path.read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public).decode()
