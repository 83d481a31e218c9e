"""Electronic signatures for medical records and prescriptions.

What is signed is a SHA-256 hash of the document's canonical JSON (sorted keys, no spaces), together with who
signed it and when. The platform signs with its Ed25519 key on behalf of the doctor, after the doctor has proved
who they are in this session (their password, rule R5); anyone holding the public key
(``GET /api/v1/signing-key``) can verify a signature without trusting our database. A deployment that uses a
certificate authority's doctor certificates replaces ``sign``/``verify`` here and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_key: Ed25519PrivateKey | None = None


def configure(seed_b64: str) -> None:
    global _key
    _key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))


def _private() -> Ed25519PrivateKey:
    if _key is None:
        raise RuntimeError("signing key not configured (create_app does this)")
    return _key


def content_hash(content: dict[str, Any]) -> str:
    """The SHA-256 (hex) of a document's canonical JSON."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _statement(digest: str, signer: str, signed_at: datetime) -> bytes:
    return f"carebridge-signature:v1|{digest}|{signer}|{signed_at.isoformat()}".encode()


def sign(digest: str, *, signer: str, signed_at: datetime) -> str:
    return base64.b64encode(_private().sign(_statement(digest, signer, signed_at))).decode()


def verify(
    signature: str, digest: str, *, signer: str, signed_at: datetime, public: Ed25519PublicKey | None = None
) -> bool:
    key = public or _private().public_key()
    try:
        key.verify(base64.b64decode(signature), _statement(digest, signer, signed_at))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_pem() -> str:
    return (
        _private()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
